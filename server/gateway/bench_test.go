package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// BenchmarkCheck measures a gateway check (route match, identity, context,
// Evaluate) against the bare Snapshot.Decide of the same question, so the
// mapping's overhead can be read off.
func BenchmarkCheck(b *testing.B) {
	store := policystore.NewStore()
	bundle, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		b.Fatal(err)
	}
	snap, err := store.Activate(context.Background(), bundle)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	svc := engine.New(store, engine.WithClock(func() time.Time { return now }))
	cfg, err := gateway.LoadConfig("../../examples/gateway/agents.json")
	if err != nil {
		b.Fatal(err)
	}
	checker, err := gateway.NewChecker(svc, cfg)
	if err != nil {
		b.Fatal(err)
	}
	req := gateway.Request{
		Method: "GET", Path: "/repos/payments-api/issues?state=open", Host: "api.example.org",
		Header:        http.Header{"X-Agent-Id": {"code-reviewer"}, "User-Agent": {"agent/1.0"}},
		SourceAddress: "10.0.0.7",
	}
	if a := checker.Check(context.Background(), req); !a.Allow {
		b.Fatalf("benchmark request denied: %s", a.Body)
	}
	b.Run("decide", func(b *testing.B) {
		dreq := policystore.Request{
			Principal: types.NewEntityUID("Agent", "code-reviewer"),
			Action:    types.NewEntityUID("Action", "list_issues"),
			Resource:  types.NewEntityUID("Repository", "payments-api"),
			Now:       now,
		}
		if d, err := snap.Decide(context.Background(), dreq); err != nil || !d.Allow {
			b.Fatalf("decide: %+v %v", d, err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = snap.Decide(context.Background(), dreq)
		}
	})
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = checker.Check(context.Background(), req)
		}
	})
}
