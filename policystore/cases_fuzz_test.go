package policystore_test

import (
	"testing"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
)

// FuzzParseCases feeds arbitrary bytes to the tests/ case parser, which
// reads bundle content: it must return cases or an error, never panic, and
// every case it accepts must run.
func FuzzParseCases(f *testing.F) {
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b.Files["tests/cases.json"])
	f.Add([]byte(`[{"name":"x","now":"2026-01-01T00:00:00Z","expect":{"decision":"deny"},"context":{"a":{"__extn":{"fn":"decimal","arg":"1.5"}}}}]`))
	snap, err := policystore.Compile(b)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := policystore.ParseCases(data); err != nil {
			return
		}
		policystore.RunCases(&policystore.Bundle{Files: map[string][]byte{"tests/f.json": data}}, snap)
	})
}
