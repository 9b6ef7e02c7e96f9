package shadow_test

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intentpdp/intentpdp/internal/testutil/agentrequests"
	"github.com/intentpdp/intentpdp/internal/testutil/candidate"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/decisionlog"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
	"github.com/intentpdp/intentpdp/server/shadow"
)

func store(t testing.TB, bundle func() (*policystore.Bundle, error)) *policystore.Store {
	t.Helper()
	b, err := bundle()
	if err != nil {
		t.Fatal(err)
	}
	s := policystore.NewStore()
	if _, err := s.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return s
}

type example struct {
	name string
	req  policystore.Request
}

func examples(t testing.TB) []example {
	t.Helper()
	reqs, err := agentrequests.Load()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]example, len(reqs))
	for i, r := range reqs {
		req, err := grpcapi.DecodeRequest(r.Request, engine.DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		out[i] = example{r.Name, req}
	}
	return out
}

// fixedClock keeps context.now, and so every decision, the same between
// the engines compared.
func fixedClock() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }

// run starts c's workers for the test's lifetime.
func run(t testing.TB, c *shadow.Comparer) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestShadowChangesNoAnswer: under concurrent load, with a shadow bundle
// that disagrees on one request, every answer equals the answer without a
// shadow, and exactly that request is counted and logged as differing.
func TestShadowChangesNoAnswer(t *testing.T) {
	t.Parallel()
	active, shadowStore := store(t, candidate.Active), store(t, candidate.Flipped)
	var logBuf bytes.Buffer
	dl, err := decisionlog.New(&logBuf, decisionlog.WithQueueSize(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c, err := shadow.New(shadowStore, shadow.WithDecisionLog(dl), shadow.WithRegisterer(reg), shadow.WithQueueSize(1<<16), shadow.WithWorkers(2))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	plain := engine.New(active, engine.WithClock(fixedClock))
	shadowed := engine.New(active, engine.WithClock(fixedClock), engine.WithShadow(c), engine.WithDecisionLog(dl))
	exs := examples(t)
	const rounds = 200
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range rounds {
				ex := exs[(g+i)%len(exs)]
				want, err1 := plain.Evaluate(t.Context(), "test", ex.req)
				got, err2 := shadowed.Evaluate(t.Context(), "test", ex.req)
				if err1 != nil || err2 != nil {
					t.Errorf("%s: %v, %v", ex.name, err1, err2)
					return
				}
				if got.Decision.Allow != want.Decision.Allow || !equal(got.Decision.PolicyIDs(), want.Decision.PolicyIDs()) {
					t.Errorf("%s: shadow changed the answer: %v %v, want %v %v", ex.name,
						got.Decision.Allow, got.Decision.PolicyIDs(), want.Decision.Allow, want.Decision.PolicyIDs())
				}
			}
		})
	}
	wg.Wait()
	c.Wait()
	st := c.Stats()
	flips := 0
	for g := range 4 {
		for i := range rounds {
			if exs[(g+i)%len(exs)].name == candidate.FlippedRequest {
				flips++
			}
		}
	}
	if st.Compared != 4*rounds || st.Differing != uint64(flips) || st.AllowToDeny != uint64(flips) || st.DenyToAllow != 0 || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want %d compared, %d allow→deny", st, 4*rounds, flips)
	}
	if got := counterOf(t, reg, "allow", "deny"); got != float64(flips) {
		t.Errorf("intentpdp_shadow_decisions_total{active=allow,shadow=deny} = %v, want %d", got, flips)
	}
	if err := dl.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var shadowLines int
	for line := range bytes.Lines(logBuf.Bytes()) {
		l, err := decisionlog.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		if l.Kind != decisionlog.KindShadow {
			continue
		}
		shadowLines++
		if !l.Allow() || l.Shadow.Allow() || !equal(l.Shadow.PolicyIDs(), []string{candidate.FlippedPolicy}) ||
			l.Revision != "agents-example-v1" || l.Shadow.Revision != "agents-candidate-flipped" || l.Principal.ID != "code-reviewer" {
			t.Errorf("shadow record = %s", line)
		}
	}
	if shadowLines != flips {
		t.Errorf("%d shadow records, want %d", shadowLines, flips)
	}
}

func counterOf(t *testing.T, reg *prometheus.Registry, active, shadowOutcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "intentpdp_shadow_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["active"] == active && labels["shadow"] == shadowOutcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series active=%s shadow=%s", active, shadowOutcome)
	return 0
}

func equal(a, b []string) bool { return slices.Equal(a, b) }

// TestFullQueueDropsAndCounts: with no worker running and a queue of one,
// every offer past the first is dropped and counted, and every answer is
// still made and unchanged.
func TestFullQueueDropsAndCounts(t *testing.T) {
	t.Parallel()
	active, shadowStore := store(t, candidate.Active), store(t, candidate.Flipped)
	c, err := shadow.New(shadowStore, shadow.WithQueueSize(1))
	if err != nil {
		t.Fatal(err)
	}
	plain := engine.New(active, engine.WithClock(fixedClock))
	shadowed := engine.New(active, engine.WithClock(fixedClock), engine.WithShadow(c))
	exs := examples(t)
	for _, ex := range exs {
		want, _ := plain.Evaluate(t.Context(), "test", ex.req)
		got, err := shadowed.Evaluate(t.Context(), "test", ex.req)
		if err != nil || got.Decision.Allow != want.Decision.Allow {
			t.Fatalf("%s: %v allow=%v, want allow=%v", ex.name, err, got.Decision.Allow, want.Decision.Allow)
		}
	}
	if st := c.Stats(); st.Dropped != uint64(len(exs)-1) || st.QueueDepth != 1 || st.Compared != 0 {
		t.Fatalf("stats = %+v, want %d dropped and one queued", st, len(exs)-1)
	}
}

// TestClearedShadowStopsComparisons: once the shadow store is cleared,
// nothing more is compared or queued.
func TestClearedShadowStopsComparisons(t *testing.T) {
	t.Parallel()
	active, shadowStore := store(t, candidate.Active), store(t, candidate.Flipped)
	c, err := shadow.New(shadowStore)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	eng := engine.New(active, engine.WithShadow(c))
	exs := examples(t)
	for _, ex := range exs {
		if _, err := eng.Evaluate(t.Context(), "test", ex.req); err != nil {
			t.Fatal(err)
		}
	}
	c.Wait()
	before := c.Stats()
	if before.Compared != uint64(len(exs)) {
		t.Fatalf("compared %d, want %d", before.Compared, len(exs))
	}
	shadowStore.Clear()
	for _, ex := range exs {
		if _, err := eng.Evaluate(t.Context(), "test", ex.req); err != nil {
			t.Fatal(err)
		}
	}
	c.Wait()
	if after := c.Stats(); after != before {
		t.Fatalf("after clearing: %+v, before: %+v", after, before)
	}
}

func TestSampleShare(t *testing.T) {
	t.Parallel()
	shadowStore := store(t, candidate.Flipped)
	if _, err := shadow.New(shadowStore, shadow.WithSample(1.5)); err == nil {
		t.Fatal("sample 1.5 accepted")
	}
	c, err := shadow.New(shadowStore, shadow.WithSample(0), shadow.WithQueueSize(8))
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(store(t, candidate.Active), engine.WithShadow(c))
	for _, ex := range examples(t) {
		if _, err := eng.Evaluate(t.Context(), "test", ex.req); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.QueueDepth != 0 || st.Dropped != 0 {
		t.Fatalf("sample 0 offered requests: %+v", st)
	}
}

// BenchmarkEvaluate measures what the shadow step adds to a decision: the
// same example requests with no shadow, and with every decision offered
// to a comparer whose worker decides it again.
func BenchmarkEvaluate(b *testing.B) {
	active := store(b, candidate.Active)
	exs := examples(b)
	bench := func(b *testing.B, eng *engine.Engine) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := eng.Evaluate(context.Background(), "bench", exs[i%len(exs)].req); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	b.Run("no-shadow", func(b *testing.B) { bench(b, engine.New(active)) })
	b.Run("shadow", func(b *testing.B) {
		c, err := shadow.New(store(b, candidate.Flipped), shadow.WithQueueSize(1<<16))
		if err != nil {
			b.Fatal(err)
		}
		run(b, c)
		bench(b, engine.New(active, engine.WithShadow(c)))
		b.StopTimer()
		st := c.Stats()
		b.ReportMetric(float64(st.Dropped)/float64(max(st.Dropped+st.Compared, 1)), "dropped/op")
	})
}

func resultOf(t *testing.T, s *policystore.Store, req policystore.Request) engine.Result {
	t.Helper()
	res, err := engine.New(s).Evaluate(t.Context(), "test", req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
