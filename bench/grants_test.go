package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grants"
)

func grantsExample(b *testing.B) *policystore.Store {
	bundle, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		b.Fatal(err)
	}
	s := policystore.NewStore()
	if _, err := s.Activate(context.Background(), bundle); err != nil {
		b.Fatal(err)
	}
	return s
}

func grantSpec(task string) grants.Spec {
	return grants.Spec{
		TaskID: task, Assignee: types.NewEntityUID("Agent", "deployer"),
		Actions: []types.EntityUID{types.NewEntityUID("Action", "write")},
		Scope:   []types.EntityUID{types.NewEntityUID("Repository", "payments-api")},
		Purpose: "fix-build", ApprovedBy: types.NewEntityUID("User", "mia"), TTL: time.Hour,
	}
}

func fillGrants(b *testing.B, s *grants.Store, n int) {
	for i := range n {
		g, err := s.Grant(grantSpec(fmt.Sprintf("T-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Create(context.Background(), g); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGrantDecision is one decision through the engine: a write only a
// grant allows (with_grant), against the same request denied for want of
// one (without_grants: no grant store at all; unknown_task: grants on, the
// task id names nothing), with 10 to 100,000 live grants.
func BenchmarkGrantDecision(b *testing.B) {
	store := grantsExample(b)
	req := policystore.Request{
		Principal: types.NewEntityUID("Agent", "deployer"), Action: types.NewEntityUID("Action", "write_file"),
		Resource: types.NewEntityUID("Repository", "payments-api"), Intent: policystore.Intent{Purpose: "fix-build", TaskID: "T-7"},
	}
	run := func(b *testing.B, eng *engine.Engine, req policystore.Request, allow bool) {
		if res, err := eng.Evaluate(context.Background(), "bench", req); err != nil || res.Decision.Allow != allow {
			b.Fatalf("allow %v, err %v; want allow %v", res.Decision.Allow, err, allow)
		}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = eng.Evaluate(context.Background(), "bench", req)
		}
	}
	b.Run("without_grants", func(b *testing.B) { run(b, engine.New(store), req, false) })
	for _, n := range []int{10, 1_000, 100_000} {
		gs := grants.NewMemory()
		fillGrants(b, gs, n)
		eng := engine.New(store, engine.WithEnricher(gs), engine.WithConsumer(gs))
		b.Run(fmt.Sprintf("with_grant/grants=%d", n), func(b *testing.B) { run(b, eng, req, true) })
		unknown := req
		unknown.Intent.TaskID = "T-none"
		b.Run(fmt.Sprintf("unknown_task/grants=%d", n), func(b *testing.B) { run(b, eng, unknown, false) })
	}
}

// BenchmarkGrantLookup is the enrich step alone.
func BenchmarkGrantLookup(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000} {
		gs := grants.NewMemory()
		fillGrants(b, gs, n)
		req := policystore.Request{Intent: policystore.Intent{TaskID: "T-7"}}
		b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = gs.Enrich(context.Background(), req)
			}
		})
	}
}

// TestGrantMemory reports the heap a live grant costs (the README grant:
// one action, one scope entity, no attributes).
func TestGrantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	gs := grants.NewMemory()
	for i := range n {
		g, err := gs.Grant(grantSpec(fmt.Sprintf("T-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gs.Create(context.Background(), g); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d live grants: %.0f bytes of heap per grant", n, float64(after.HeapAlloc-before.HeapAlloc)/n)
	runtime.KeepAlive(gs)
}
