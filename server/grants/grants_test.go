package grants_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grants"
)

// clock is a fake PDP clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func uid(t, id string) types.EntityUID {
	return types.NewEntityUID(types.EntityType(t), types.String(id))
}

func exampleStore(t testing.TB, opts ...policystore.StoreOption) *policystore.Store {
	t.Helper()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	s := policystore.NewStore(opts...)
	if _, err := s.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return s
}

// writeSpec is the README's grant: deployer may write to payments-api.
func writeSpec(task string, ttl time.Duration, uses int64) grants.Spec {
	return grants.Spec{
		TaskID: task, Assignee: uid("Agent", "deployer"),
		Actions: []types.EntityUID{uid("Action", "write")}, Scope: []types.EntityUID{uid("Repository", "payments-api")},
		Purpose: "fix-build", ApprovedBy: uid("User", "mia"), TTL: ttl, MaxUses: uses,
	}
}

func create(t testing.TB, s *grants.Store, spec grants.Spec) grants.Grant {
	t.Helper()
	g, err := s.Grant(spec)
	if err != nil {
		t.Fatal(err)
	}
	if g, err = s.Create(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	return g
}

type fixture struct {
	clock *clock
	store *grants.Store
	eng   *engine.Engine
}

func newFixture(t testing.TB, opts ...grants.Option) *fixture {
	c := newClock()
	gs := grants.NewMemory(append([]grants.Option{grants.WithClock(c.now)}, opts...)...)
	eng := engine.New(exampleStore(t), engine.WithClock(c.now), engine.WithEnricher(gs), engine.WithConsumer(gs))
	return &fixture{clock: c, store: gs, eng: eng}
}

func write(task string) policystore.Request {
	return policystore.Request{
		Principal: uid("Agent", "deployer"), Action: uid("Action", "write_file"),
		Resource: uid("Document", "payments-api/README.md"), Intent: policystore.Intent{TaskID: task, Purpose: "fix-build"},
	}
}

func (f *fixture) decide(t testing.TB, req policystore.Request) policystore.Decision {
	t.Helper()
	res, err := f.eng.Evaluate(context.Background(), "test", req)
	if err != nil {
		t.Fatal(err)
	}
	return res.Decision
}

func TestGrantWindowByThePDPClock(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create(t, f.store, writeSpec("T-9", 15*time.Minute, 0))
	if d := f.decide(t, write("T-9")); !d.Allow || d.Reasons[0].PolicyID != "task-grants" {
		t.Fatalf("live grant: %+v", d)
	}
	if d := f.decide(t, write("T-other")); d.Allow {
		t.Fatal("an unknown task id allowed")
	}
	f.clock.advance(15*time.Minute - time.Nanosecond)
	if d := f.decide(t, write("T-9")); !d.Allow {
		t.Fatal("denied just before expires_at")
	}
	f.clock.advance(time.Nanosecond)
	if d := f.decide(t, write("T-9")); d.Allow {
		t.Fatal("allowed at expires_at")
	}
	if _, st, _ := f.store.Get("T-9"); st != grants.Expired {
		t.Errorf("state %s, want expired", st)
	}
}

func TestTaskStateOfEveryDecision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create(t, f.store, writeSpec("T-live", time.Hour, 0))
	create(t, f.store, writeSpec("T-revoked", time.Hour, 0))
	create(t, f.store, writeSpec("T-short", time.Minute, 0))
	if _, err := f.store.Revoke(context.Background(), "T-revoked"); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(2 * time.Minute)
	for task, want := range map[string]grants.State{
		"T-live": grants.Live, "T-revoked": grants.Revoked, "T-short": grants.Expired, "T-none": grants.Unknown,
	} {
		req, err := f.store.Enrich(context.Background(), write(task))
		if err != nil {
			t.Fatal(err)
		}
		if req.TaskState != string(want) || (req.Task != nil) != (want == grants.Live) {
			t.Errorf("%s: state %q, task %v; want %s", task, req.TaskState, req.Task, want)
		}
	}
}

func TestRevocationIsImmediate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create(t, f.store, writeSpec("T-9", time.Hour, 0))
	create(t, f.store, writeSpec("T-10", time.Hour, 0))
	if d := f.decide(t, write("T-9")); !d.Allow {
		t.Fatal("live grant denied")
	}
	if _, err := f.store.Revoke(context.Background(), "T-9"); err != nil {
		t.Fatal(err)
	}
	if d := f.decide(t, write("T-9")); d.Allow {
		t.Fatal("allowed after Revoke")
	}
	revoked, err := f.store.RevokePrincipal(context.Background(), uid("Agent", "deployer"))
	if err != nil || len(revoked) != 1 || revoked[0].TaskID != "T-10" {
		t.Fatalf("RevokePrincipal: %v, %v", revoked, err)
	}
	if d := f.decide(t, write("T-10")); d.Allow {
		t.Fatal("allowed after RevokePrincipal")
	}
	// A revoked task id may be granted again.
	create(t, f.store, writeSpec("T-9", time.Hour, 0))
	if d := f.decide(t, write("T-9")); !d.Allow {
		t.Fatal("re-granted task denied")
	}
}

// TestRevokedBetweenEnrichAndConsume: an allow decided with a grant that
// is revoked (and its id re-granted) before the consume step is a deny.
func TestRevokedBetweenEnrichAndConsume(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create(t, f.store, writeSpec("T-9", time.Hour, 0))
	req, _ := f.store.Enrich(context.Background(), write("T-9"))
	if _, err := f.store.Revoke(context.Background(), "T-9"); err != nil {
		t.Fatal(err)
	}
	create(t, f.store, writeSpec("T-9", time.Hour, 0))
	req, d := f.store.Consume(context.Background(), req, policystore.Decision{Allow: true})
	if d.Allow || req.TaskState != string(grants.Revoked) || d.Errors[0].PolicyID != grants.GrantPolicyID {
		t.Fatalf("decision %+v, state %s", d, req.TaskState)
	}
}

func TestOneShotGrantIsUsedExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create(t, f.store, writeSpec("T-once", time.Hour, 1))
	const racers = 64
	var allows atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range racers {
		wg.Go(func() {
			<-start
			if f.decide(t, write("T-once")).Allow {
				allows.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if allows.Load() != 1 {
		t.Fatalf("%d allows of a one-shot grant, want 1", allows.Load())
	}
	if g, st, _ := f.store.Get("T-once"); st != grants.Exhausted || g.UsesLeft != 0 {
		t.Errorf("state %s, uses left %d", st, g.UsesLeft)
	}
}

// TestDenyDoesNotConsume: a use is taken only by the allow that used it.
func TestDenyDoesNotConsume(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create(t, f.store, writeSpec("T-once", time.Hour, 1))
	other := write("T-once")
	other.Principal = uid("Agent", "code-reviewer") // not the assignee
	if f.decide(t, other).Allow {
		t.Fatal("a grant served another agent")
	}
	deploy := write("T-once")
	deploy.Action, deploy.Resource = uid("Action", "deploy_service"), uid("Environment", "payments-staging")
	if f.decide(t, deploy).Allow {
		t.Fatal("a write grant allowed a deploy")
	}
	if !f.decide(t, write("T-once")).Allow {
		t.Fatal("the one use was taken by a deny")
	}
	if f.decide(t, write("T-once")).Allow {
		t.Fatal("a one-shot grant allowed twice")
	}
}

// TestRequestsCannotForgeGrants: with grants, context.task is the PDP's and
// request entities of the task type are ignored.
func TestRequestsCannotForgeGrants(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	req := write("T-fake")
	req.Context = types.RecordMap{"task": uid("Task", "T-fake")}
	if _, err := f.eng.Evaluate(context.Background(), "test", req); !errors.Is(err, policystore.ErrInvalidRequest) {
		t.Fatalf("context.task from the request: err %v, want invalid request", err)
	}
	create(t, f.store, writeSpec("T-9", time.Hour, 0))
	req = write("T-9")
	req.Action = uid("Action", "deploy_service")
	req.Resource = uid("Environment", "payments-staging")
	req.Intent.Purpose = "release"
	task := uid("Task", "T-9")
	req.Entities = types.EntityMap{task: {UID: task, Attributes: types.NewRecord(types.RecordMap{
		"assignee": uid("Agent", "deployer"), "actions": types.NewSet(uid("Action", "deploy")),
		"scope": types.NewSet(uid("Project", "payments")),
	})}}
	d := f.decide(t, req)
	if d.Allow || len(d.Ignored) != 1 || !strings.Contains(d.Ignored[0].Detail, "task grants") {
		t.Fatalf("forged grant content: allow %v, ignored %v", d.Allow, d.Ignored)
	}
}

func TestBundleMayNotDefineTasksWithGrants(t *testing.T) {
	t.Parallel()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	b.Files[policystore.EntitiesFile] = []byte(`[{"uid": {"type": "Task", "id": "T-1"}, "attrs": {}, "parents": []}]`)
	delete(b.Files, "agents.cedarschema")
	delete(b.Files, "tests/cases.json")
	b.Files["manifest.json"] = []byte(`{"revision": "tasks"}`)
	s := policystore.NewStore(policystore.WithRuntimeEntityTypes(grants.TaskType))
	if _, err := s.Activate(context.Background(), b); err == nil || !strings.Contains(err.Error(), "task grants") {
		t.Fatalf("bundle with a Task entity: %v, want refused", err)
	}
	if _, err := policystore.NewStore().Activate(context.Background(), b); err != nil {
		t.Fatalf("without grants the bundle owns its tasks: %v", err)
	}
}

func TestGrantLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, grants.WithMaxTTL(time.Hour))
	if _, err := f.store.Grant(writeSpec("T-1", 2*time.Hour, 0)); !errors.Is(err, grants.ErrInvalid) {
		t.Errorf("ttl over the maximum: %v", err)
	}
	if g, err := f.store.Grant(writeSpec("T-1", 0, 0)); err != nil || g.ExpiresAt.Sub(g.NotBefore) != time.Hour {
		t.Errorf("default ttl: %v, %v", g, err)
	}
	bad := writeSpec("T-1", time.Minute, 0)
	bad.Scope = nil
	if _, err := f.store.Grant(bad); !errors.Is(err, grants.ErrInvalid) {
		t.Errorf("no scope: %v", err)
	}
	create(t, f.store, writeSpec("T-1", time.Minute, 0))
	g, _ := f.store.Grant(writeSpec("T-1", time.Minute, 0))
	if _, err := f.store.Create(context.Background(), g); !errors.Is(err, grants.ErrExists) {
		t.Errorf("live task id granted twice: %v", err)
	}
}

func TestListGrantsPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, id := range []string{"T-1", "T-2", "T-3"} {
		create(t, f.store, writeSpec(id, time.Hour, 0))
	}
	page, next := f.store.List(types.EntityUID{}, "", 2)
	if len(page) != 2 || next != "T-2" {
		t.Fatalf("first page %d, next %q", len(page), next)
	}
	page, next = f.store.List(uid("Agent", "deployer"), next, 2)
	if len(page) != 1 || page[0].TaskID != "T-3" || next != "" {
		t.Fatalf("second page %v, next %q", page, next)
	}
	if page, _ := f.store.List(uid("Agent", "nobody"), "", 10); len(page) != 0 {
		t.Errorf("filter by principal: %v", page)
	}
}

func TestSweepForgetsEndedGrants(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	create(t, f.store, writeSpec("T-1", time.Minute, 0))
	f.clock.advance(5 * time.Minute)
	f.store.Sweep(context.Background())
	if _, st, _ := f.store.Get("T-1"); st != grants.Expired {
		t.Fatalf("recently expired grant: %s", st)
	}
	f.clock.advance(time.Hour)
	f.store.Sweep(context.Background())
	if _, _, err := f.store.Get("T-1"); !errors.Is(err, grants.ErrNotFound) {
		t.Fatalf("swept grant: %v", err)
	}
}
