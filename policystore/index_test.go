package policystore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/internal/testutil/cedarcorpus"
)

// The index and the ancestor closures must not change any decision: these
// tests run the same requests through Decide and through flat evaluation
// (every policy, the entities as given) and require identical results.

// flatDecide is Decide without the index and the closures.
func flatDecide(s *Snapshot, req Request) Decision {
	var entities types.EntityGetter = s.entities
	var ignored []IgnoredEntity
	if len(req.Entities) > 0 {
		var used types.EntityMap
		used, ignored = s.screen(req)
		entities = layeredEntities{bundle: s.entities, request: used}
	}
	cedarCtx, err := req.CedarContext()
	if err != nil {
		panic(err) // generated requests never set a reserved key
	}
	allow, diag := cedar.Authorize(s, entities, cedar.Request{
		Principal: req.Principal, Action: req.Action, Resource: req.Resource, Context: cedarCtx,
	})
	d := Decision{Allow: allow == cedar.Allow, Revision: s.revision, Ignored: ignored}
	for _, r := range diag.Reasons {
		d.Reasons = append(d.Reasons, Reason{PolicyID: string(r.PolicyID), Annotations: s.policy(r.PolicyID).annotationMap()})
	}
	for _, e := range diag.Errors {
		d.Errors = append(d.Errors, EvalError{PolicyID: string(e.PolicyID), Message: e.Message})
	}
	return d
}

// summary renders a decision for comparison.
func summary(d Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "allow=%v reasons=", d.Allow)
	for _, r := range d.Reasons {
		fmt.Fprintf(&b, "%s,", r.PolicyID)
	}
	b.WriteString(" errors=")
	for _, e := range d.Errors {
		// cedar-go evaluates set elements in map order, so which of several
		// failing elements a message describes varies between runs; its
		// kind before the first colon does not.
		kind, _, _ := strings.Cut(e.Message, ":")
		fmt.Fprintf(&b, "%s:%s,", e.PolicyID, kind)
	}
	// merge reports ignored parents in set order, which varies.
	var ignored []string
	for _, ig := range d.Ignored {
		ignored = append(ignored, fmt.Sprintf("%s:%s", ig.UID, ig.Detail))
	}
	slices.Sort(ignored)
	fmt.Fprintf(&b, " ignored=%s", strings.Join(ignored, ","))
	return b.String()
}

// compareDecide decides req both ways, each on its own copy of the request
// entities (merge may rewrite them), and fails on any difference.
func compareDecide(t *testing.T, s *Snapshot, req Request, what string) Decision {
	t.Helper()
	flatReq := req
	flatReq.Entities = cloneEntities(req.Entities)
	want := flatDecide(s, flatReq)
	req.Entities = cloneEntities(req.Entities)
	got, err := s.Decide(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: Decide: %v", what, err)
	}
	if g, w := summary(got), summary(want); g != w {
		t.Fatalf("%s: indexed and flat evaluation differ\nindexed: %s\nflat:    %s", what, g, w)
	}
	return got
}

func cloneEntities(m types.EntityMap) types.EntityMap {
	if m == nil {
		return nil
	}
	out := make(types.EntityMap, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func snapshotOf(t *testing.T, policyText []byte, entities types.EntityMap) *Snapshot {
	t.Helper()
	list, err := cedar.NewPolicyListFromBytes("policies.cedar", policyText)
	if err != nil {
		t.Fatalf("parse policies: %v", err)
	}
	policies := map[cedar.PolicyID]*cedar.Policy{}
	for i, p := range list {
		// The corpus names policies as cedar.NewPolicySetFromBytes does.
		policies[cedar.PolicyID(fmt.Sprintf("policy%d", i))] = p
	}
	return newSnapshot("test", "test", policies, entities, nil)
}

func TestIndexMatchesFlatEvaluationOnCorpus(t *testing.T) {
	t.Parallel()
	tests, err := cedarcorpus.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) < 1000 {
		t.Fatalf("corpus has only %d tests; expected thousands", len(tests))
	}
	// Shards keep the subtest count, and so the test's overhead, small.
	const shards = 8
	for shard := range shards {
		t.Run(fmt.Sprintf("shard%d", shard), func(t *testing.T) {
			t.Parallel()
			for i := shard * corpusStride; i < len(tests); i += shards * corpusStride {
				runCorpusTest(t, tests[i])
			}
		})
	}
}

func runCorpusTest(t *testing.T, ct cedarcorpus.Test) {
	t.Helper()
	var entities types.EntityMap
	if err := entities.UnmarshalJSON(ct.Entities); err != nil {
		t.Fatalf("%s: entities: %v", ct.Name, err)
	}
	s := snapshotOf(t, ct.Policies, entities)
	for _, r := range ct.Requests {
		got := compareDecide(t, s, Request{Principal: r.Principal, Action: r.Action, Resource: r.Resource, Context: r.Context.Map()},
			ct.Name+": "+r.Description)
		// Agreement alone could hide a shared mistake: check the corpus's
		// expected decision too.
		if got.Allow != r.Allow {
			t.Fatalf("%s: %s: allow=%v, corpus expects %v", ct.Name, r.Description, got.Allow, r.Allow)
		}
	}
}

func TestIndexMatchesFlatEvaluationOnRandomSets(t *testing.T) {
	t.Parallel()
	for seed := range uint64(64) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			g := newGen(seed)
			s := snapshotOf(t, []byte(g.policies(60)), g.entities())
			if seed%2 == 1 {
				// Request folders are then ignored, and so are the groups
				// of every fourth seed.
				s.authoritative = map[types.EntityType]bool{"Folder": true, "Group": seed%4 == 3}
			}
			for i := range 60 {
				compareDecide(t, s, g.request(), fmt.Sprintf("seed %d request %d", seed, i))
			}
		})
	}
}

// FuzzIndexMatchesFlatEvaluation explores generated policy sets beyond the
// fixed seeds: go test -fuzz FuzzIndexMatchesFlatEvaluation ./policystore
func FuzzIndexMatchesFlatEvaluation(f *testing.F) {
	for seed := range uint64(4) {
		f.Add(seed + 1000)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		g := newGen(seed)
		s := snapshotOf(t, []byte(g.policies(40)), g.entities())
		for i := range 20 {
			compareDecide(t, s, g.request(), fmt.Sprintf("seed %d request %d", seed, i))
		}
	})
}

// gen makes small random entity graphs, policy sets and requests over a
// few types, so that scopes, groups and request entities collide often.
type gen struct{ r *rand.Rand }

func newGen(seed uint64) gen { return gen{rand.New(rand.NewPCG(seed, 0x1d3))} }

var (
	genTypes   = []string{"User", "Group", "Doc", "Folder"}
	genActions = []string{"read", "write", "delete", "readOnly", "all"}
)

func (g gen) uid(typ string) types.EntityUID {
	return types.NewEntityUID(types.EntityType(typ), types.String(fmt.Sprint(g.r.IntN(6))))
}

func (g gen) anyUID() types.EntityUID { return g.uid(genTypes[g.r.IntN(len(genTypes))]) }

func (g gen) action() types.EntityUID {
	return types.NewEntityUID("Action", types.String(genActions[g.r.IntN(len(genActions))]))
}

// entities defines most, not all, of the possible entities, with random
// parents (cycles included) and an owner attribute.
func (g gen) entities() types.EntityMap {
	m := types.EntityMap{}
	for _, typ := range genTypes {
		for id := range 6 {
			if g.r.IntN(5) == 0 {
				continue
			}
			uid := types.NewEntityUID(types.EntityType(typ), types.String(fmt.Sprint(id)))
			m[uid] = g.entity(uid)
		}
	}
	groups := map[string][]string{"read": {"readOnly", "all"}, "write": {"all"}, "delete": {"all"}, "readOnly": {"all"}}
	for a, parents := range groups {
		var ps []types.EntityUID
		for _, p := range parents {
			ps = append(ps, types.NewEntityUID("Action", types.String(p)))
		}
		uid := types.NewEntityUID("Action", types.String(a))
		m[uid] = types.Entity{UID: uid, Parents: types.NewEntityUIDSet(ps...)}
	}
	return m
}

func (g gen) entity(uid types.EntityUID) types.Entity {
	var parents []types.EntityUID
	for range g.r.IntN(3) {
		parents = append(parents, g.uid(genTypes[1+g.r.IntN(3)]))
	}
	return types.Entity{
		UID:        uid,
		Parents:    types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{"owner": g.uid("User"), "level": types.Long(g.r.IntN(3))}),
	}
}

func (g gen) scope(v string, action bool) string {
	pick := g.anyUID
	if action {
		pick = g.action
	}
	switch g.r.IntN(6) {
	case 0:
		return v
	case 1:
		return fmt.Sprintf("%s == %s", v, pick())
	case 2:
		if action {
			return fmt.Sprintf("%s in [%s, %s]", v, pick(), pick())
		}
		return fmt.Sprintf("%s is %s", v, genTypes[g.r.IntN(len(genTypes))])
	case 3:
		if action {
			return fmt.Sprintf("%s in []", v)
		}
		return fmt.Sprintf("%s is %s in %s", v, genTypes[g.r.IntN(len(genTypes))], pick())
	default:
		return fmt.Sprintf("%s in %s", v, pick())
	}
}

var genConditions = []string{
	"",
	" when { principal in resource }",
	" when { resource.owner == principal }",
	" when { resource.level > 0 }", // errors where resource has no level
	" when { context.n == 1 }",
	" unless { principal in resource.owner }",
	" when { principal.owner in resource }",
}

func (g gen) policies(n int) string {
	var b strings.Builder
	for range n {
		effect := "permit"
		if g.r.IntN(4) == 0 {
			effect = "forbid"
		}
		fmt.Fprintf(&b, "%s(%s, %s, %s)%s;\n", effect, g.scope("principal", false), g.scope("action", true),
			g.scope("resource", false), genConditions[g.r.IntN(len(genConditions))])
	}
	return b.String()
}

// request sometimes brings entities: new ones, ones the bundle defines, and
// parents that reach into the bundle.
func (g gen) request() Request {
	req := Request{
		Principal: g.anyUID(),
		Action:    g.action(),
		Resource:  g.anyUID(),
		Context:   types.RecordMap{"n": types.Long(g.r.IntN(2))},
		Now:       time.Unix(0, 0),
	}
	if g.r.IntN(2) == 0 {
		req.Entities = types.EntityMap{}
		for range 1 + g.r.IntN(4) {
			uid := g.anyUID()
			if g.r.IntN(3) == 0 {
				uid = types.NewEntityUID(types.EntityType(genTypes[g.r.IntN(len(genTypes))]), "req")
			}
			req.Entities[uid] = g.entity(uid)
		}
		if g.r.IntN(4) == 0 {
			uid := g.action()
			req.Entities[uid] = types.Entity{UID: uid, Parents: types.NewEntityUIDSet(g.action())}
		}
	}
	return req
}

func TestCloseEntitiesHandlesCycles(t *testing.T) {
	t.Parallel()
	a, b, c := types.NewEntityUID("G", "a"), types.NewEntityUID("G", "b"), types.NewEntityUID("G", "c")
	m := types.EntityMap{
		a: {UID: a, Parents: types.NewEntityUIDSet(b)},
		b: {UID: b, Parents: types.NewEntityUIDSet(a, c)},
		c: {UID: c},
	}
	closed := closeEntities(m)
	for _, uid := range []types.EntityUID{a, b} {
		got := closed[uid].Parents
		if !got.Contains(c) || !got.Contains(a) && uid != a || !got.Contains(b) && uid != b {
			t.Errorf("closure of %s = %v, want a, b and c", uid, slices.Collect(got.All()))
		}
	}
	if closed[c].Parents.Len() != 0 {
		t.Errorf("closure of c = %v, want none", slices.Collect(closed[c].Parents.All()))
	}
	if m[a].Parents.Len() != 1 {
		t.Errorf("closeEntities modified its input")
	}
}

// TestIndexSelectsFewPolicies guards the point of the index: a request
// about one tenant does not evaluate the other tenants' policies.
func TestIndexSelectsFewPolicies(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	entities := types.EntityMap{}
	for i := range 200 {
		tenant := types.NewEntityUID("Tenant", types.String(fmt.Sprint(i)))
		agent := types.NewEntityUID("Agent", types.String(fmt.Sprint(i)))
		entities[tenant] = types.Entity{UID: tenant}
		entities[agent] = types.Entity{UID: agent, Parents: types.NewEntityUIDSet(tenant)}
		fmt.Fprintf(&b, "permit(principal in %s, action, resource in %s);\n", tenant, tenant)
	}
	b.WriteString("forbid(principal, action, resource) when { context.n == 1 };\n")
	s := snapshotOf(t, b.Bytes(), entities)
	req := Request{Principal: types.NewEntityUID("Agent", "7"), Action: types.NewEntityUID("Action", "read"), Resource: types.NewEntityUID("Tenant", "7")}
	for name, got := range map[string][]int32{
		"walked":      s.index.candidates(new(decideScratch), bundleAncestors(s.closed), req.Principal, req.Action, req.Resource),
		"precomputed": s.index.candidatesInBundle(new(decideScratch), req.Principal, req.Action, req.Resource),
	} {
		if len(got) != 2 {
			t.Fatalf("%s candidates = %v, want tenant 7's policy and the unconstrained forbid", name, got)
		}
	}
	d := compareDecide(t, s, req, "tenant 7")
	if !d.Allow {
		t.Fatalf("tenant 7's agent denied: %s", summary(d))
	}
}

// TestConcurrentDecisionsShareNoScratch: decisions made at once, each in
// memory earlier decisions worked in, equal the same decisions made one
// at a time, and keep their value after later decisions reuse that
// memory; the race detector checks that no Decision refers to it.
func TestConcurrentDecisionsShareNoScratch(t *testing.T) {
	t.Parallel()
	g := newGen(7)
	s := snapshotOf(t, []byte(g.policies(60)), g.entities())
	s.logOnly = make([]bool, len(s.policies))
	for i := range s.logOnly {
		s.logOnly[i] = i%3 == 0
	}
	render := func(d Decision) string { return fmt.Sprintf("%s would=%v", summary(d), d.WouldHave) }
	reqs := make([]Request, 40)
	want := make([]string, len(reqs))
	for i := range reqs {
		reqs[i] = g.request()
		d, err := s.Decide(context.Background(), reqs[i])
		if err != nil {
			t.Fatal(err)
		}
		want[i] = render(d)
	}
	const workers, rounds = 4, 5
	got := make([][]Decision, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds * len(reqs) {
				i := (r*(w+1) + w) % len(reqs)
				d, err := s.Decide(context.Background(), reqs[i])
				if err != nil {
					t.Error(err)
					return
				}
				got[w] = append(got[w], d)
			}
		})
	}
	wg.Wait()
	for w := range workers {
		for r, d := range got[w] {
			if i := (r*(w+1) + w) % len(reqs); render(d) != want[i] {
				t.Fatalf("worker %d, request %d: %s, want %s", w, i, render(d), want[i])
			}
		}
	}
}

// TestClosureOfLongChain covers ancestor sets past the small-set size.
func TestClosureOfLongChain(t *testing.T) {
	t.Parallel()
	const n = 3 * smallSet
	m := types.EntityMap{}
	uid := func(i int) types.EntityUID { return types.NewEntityUID("G", types.String(fmt.Sprint(i))) }
	for i := range n {
		e := types.Entity{UID: uid(i)}
		if i+1 < n {
			// Two edges to the same parent and one skipping ahead.
			e.Parents = types.NewEntityUIDSet(uid(i+1), uid(min(i+2, n-1)))
		}
		m[e.UID] = e
	}
	closed := closeEntities(m)
	for i := range n {
		if got := closed[uid(i)].Parents.Len(); got != n-1-i {
			t.Fatalf("entity %d has %d ancestors, want %d", i, got, n-1-i)
		}
	}
	// The same chain as request entities, under a bundle that defines none.
	request := cloneEntities(m)
	if err := closeRequestEntities(context.Background(), layeredEntities{bundle: types.EntityMap{}, request: request}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got := request[uid(i)].Parents.Len(); got != n-1-i {
			t.Fatalf("request entity %d has %d ancestors, want %d", i, got, n-1-i)
		}
	}
}
