package bundlesrc_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

// eventually polls cond until it holds, failing the test after a generous
// bound; it synchronises with asynchronous reloads without fixed sleeps.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// example returns the example bundle with the given manifest revision.
func example(t *testing.T, revision string) *policystore.Bundle {
	t.Helper()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	b.Files["manifest.json"] = []byte(`{"revision": "` + revision + `"}`)
	return b
}

func tarGz(t *testing.T, b *policystore.Bundle) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bundlesrc.WriteTarGz(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func revision(t *testing.T, s *policystore.Store) string {
	t.Helper()
	snap, err := s.Current()
	if err != nil {
		return ""
	}
	return snap.Revision()
}

var bg = context.Background()

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(bg)
	t.Cleanup(cancel)
	return ctx, cancel
}

func flipRequest(t *testing.T) policystore.Request {
	t.Helper()
	return policystore.Request{
		Principal: types.NewEntityUID("Agent", "a"),
		Action:    types.NewEntityUID("Action", "read"),
		Resource:  types.NewEntityUID("Doc", "d"),
		Now:       time.Unix(0, 0),
	}
}
