package policystore_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/intentpdp/intentpdp/policystore"
)

// generatedBundle generates n policies over a schema, n agents in teams and a
// test case, so that activation does every step it does in production.
func generatedBundle(n int) *policystore.Bundle {
	var pol, ents strings.Builder
	ents.WriteString("[")
	for i := range n {
		fmt.Fprintf(&pol, "@id(\"p-%d\")\npermit (principal == Agent::\"a%d\", action == Action::\"read\", resource in Team::\"t%d\")\nwhen { context.intent.purpose == \"task-%d\" };\n", i, i, i%100, i)
		if i > 0 {
			ents.WriteString(",")
		}
		fmt.Fprintf(&ents, `{"uid":{"type":"Agent","id":"a%d"},"attrs":{},"parents":[{"type":"Team","id":"t%d"}]}`, i, i%100)
	}
	ents.WriteString("]")
	return &policystore.Bundle{Source: "generated", Files: map[string][]byte{
		"manifest.json":      []byte(`{"revision":"large"}`),
		"schema.cedarschema": []byte("entity Team; entity Agent in [Team] { };\naction read appliesTo { principal: [Agent], resource: [Team, Agent], context: { intent: { purpose: String, task_id: String, tool: String, attributes: {} }, now: __cedar::datetime } };"),
		"policies.cedar":     []byte(pol.String()),
		"entities.json":      []byte(ents.String()),
		"tests/cases.json": []byte(`[{"name": "a7 reads t7 for its task", "principal": {"type": "Agent", "id": "a7"},
			"action": {"type": "Action", "id": "read"}, "resource": {"type": "Team", "id": "t7"},
			"intent": {"purpose": "task-7"}, "now": "2026-11-23T00:00:00Z",
			"expect": {"decision": "allow", "reasons": ["p-7"]}}]`),
	}}
}

// BenchmarkActivate measures a full activation (parse, schema validation,
// entity parsing, test cases, swap) of a generated bundle.
func BenchmarkActivate(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			bundle := generatedBundle(n)
			s := policystore.NewStore()
			if snap, err := s.Activate(b.Context(), bundle); err != nil || snap.PolicyCount() != n {
				b.Fatalf("activate: %v", err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Activate(b.Context(), bundle); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
