package scenario_test

import (
	"context"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/bench/scenario"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// TestQueriesDecideAsExpected checks the small scenarios' queries against
// the decisions the layout implies; benchmarks check the large ones once
// before timing.
func TestQueriesDecideAsExpected(t *testing.T) {
	t.Parallel()
	for _, spec := range []scenario.Spec{
		{Name: "one-tenant", Policies: 10, Entities: 100},
		{Name: "many-tenants", Policies: 300, Entities: 2_000, ContextFields: 5},
		{Name: "no-documents", Policies: 300, Entities: 10},
	} {
		t.Run(spec.Name, func(t *testing.T) {
			t.Parallel()
			s := scenario.Build(spec)
			snap, err := policystore.Compile(s.Bundle)
			if err != nil {
				t.Fatal(err)
			}
			if snap.PolicyCount() < spec.Policies {
				t.Errorf("%d policies, want at least %d", snap.PolicyCount(), spec.Policies)
			}
			if snap.EntityCount() < spec.Entities {
				t.Errorf("%d entities, want at least %d", snap.EntityCount(), spec.Entities)
			}
			allows := 0
			for _, q := range s.Queries {
				req, err := grpcapi.DecodeRequest(q.Request, engine.DefaultLimits)
				if err != nil {
					t.Fatalf("%s: %v", q.Name, err)
				}
				req.Now = time.Now()
				d, err := snap.Decide(context.Background(), req)
				if err != nil {
					t.Fatalf("%s: %v", q.Name, err)
				}
				if d.Allow != q.Allow || len(d.Errors) > 0 {
					t.Errorf("%s: allow=%v errors=%v, want allow=%v and no errors", q.Name, d.Allow, d.Errors, q.Allow)
				}
				if d.Allow {
					allows++
				}
			}
			if allows == 0 || allows == len(s.Queries) {
				t.Errorf("%d of %d queries allowed: want a mix", allows, len(s.Queries))
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	t.Parallel()
	spec := scenario.Spec{Policies: 50, Entities: 500}
	a, b := scenario.Build(spec).Bundle.ContentHash(), scenario.Build(spec).Bundle.ContentHash()
	if a != b {
		t.Fatalf("two builds of one spec differ: %s and %s", a, b)
	}
}
