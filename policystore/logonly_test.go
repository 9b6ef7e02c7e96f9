package policystore

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
)

// snapshotOfLines builds a snapshot of one policy per line, named
// policy<line>, keeping only the lines keep admits and prefixing the ones
// mark admits with @enforcement("log_only").
func snapshotOfLines(t *testing.T, lines []string, keep, mark func(int) bool) *Snapshot {
	t.Helper()
	policies := map[cedar.PolicyID]*cedar.Policy{}
	for i, line := range lines {
		if !keep(i) {
			continue
		}
		if mark(i) {
			line = `@enforcement("log_only") ` + line
		}
		var p cedar.Policy
		if err := p.UnmarshalCedar([]byte(line)); err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		policies[cedar.PolicyID(fmt.Sprintf("policy%d", i))] = &p
	}
	return newSnapshot("test", "test", policies, nil, nil)
}

// TestLogOnlyNeverChangesDecisions: over generated policy sets with random
// log-only marks, every decision equals the decision of the set without
// the marked policies, and WouldHave is set exactly when enforcing them
// would have changed the answer.
func TestLogOnlyNeverChangesDecisions(t *testing.T) {
	t.Parallel()
	all := func(int) bool { return true }
	none := func(int) bool { return false }
	for seed := range uint64(64) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			g := newGen(seed)
			lines := strings.Split(strings.TrimSpace(g.policies(60)), "\n")
			marked := make([]bool, len(lines))
			for i := range marked {
				marked[i] = g.r.IntN(3) == 0
			}
			isMarked := func(i int) bool { return marked[i] }
			entities := g.entities()
			withMarks := snapshotOfLines(t, lines, all, isMarked)
			withMarks.setEntities(mustStore(entities))
			without := snapshotOfLines(t, lines, func(i int) bool { return !marked[i] }, none)
			without.setEntities(mustStore(entities))
			enforcedAll := snapshotOfLines(t, lines, all, none)
			enforcedAll.setEntities(mustStore(entities))
			if got, want := len(withMarks.LogOnlyPolicies()), slices.Index(marked, true); want >= 0 && got == 0 {
				t.Fatalf("LogOnlyPolicies is empty although policy%d is marked", want)
			}
			for i := range 60 {
				req := g.request()
				what := fmt.Sprintf("seed %d request %d", seed, i)
				marksReq := req
				marksReq.Entities = cloneEntities(req.Entities)
				got, err := withMarks.Decide(t.Context(), marksReq)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				want := compareDecide(t, without, req, what)
				if g, w := summary(got), summary(want); g != w {
					t.Fatalf("%s: log-only policies changed the decision\nwith marks: %s\nwithout:    %s", what, g, w)
				}
				full := compareDecide(t, enforcedAll, req, what)
				if changed := full.Allow != got.Allow; changed != (len(got.WouldHave) > 0) {
					t.Fatalf("%s: enforcing every policy gives allow=%v, enforced set allow=%v, but would_have=%v",
						what, full.Allow, got.Allow, got.WouldHave)
				}
				for _, id := range got.WouldHave {
					var n int
					fmt.Sscanf(id, "policy%d", &n)
					if !marked[n] {
						t.Fatalf("%s: would_have names %s, which is enforced", what, id)
					}
				}
			}
		})
	}
}

func TestLogOnlyWouldHave(t *testing.T) {
	t.Parallel()
	s := snapshotOf(t, []byte(`
permit(principal == User::"a", action, resource);
@enforcement("log_only") forbid(principal, action, resource == Doc::"secret");
@enforcement("log_only") permit(principal == User::"b", action, resource);
forbid(principal, action, resource == Doc::"locked");
`), nil)
	if got := s.LogOnlyPolicies(); !slices.Equal(got, []string{"policy1", "policy2"}) {
		t.Fatalf("LogOnlyPolicies = %v", got)
	}
	read := cedar.NewEntityUID("Action", "read")
	for _, tc := range []struct {
		principal, resource string
		allow               bool
		wouldHave           []string
	}{
		{"a", "plain", true, nil},
		{"a", "secret", true, []string{"policy1"}}, // a log-only forbid matched an allow
		{"b", "plain", false, []string{"policy2"}}, // a log-only permit alone would have allowed
		{"b", "secret", false, nil},                // log-only permit and forbid: still a deny
		{"b", "locked", false, nil},                // an enforced forbid: nothing to change
		{"c", "plain", false, nil},
	} {
		d, err := s.Decide(t.Context(), Request{
			Principal: cedar.NewEntityUID("User", cedar.String(tc.principal)), Action: read,
			Resource: cedar.NewEntityUID("Doc", cedar.String(tc.resource)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow != tc.allow || !slices.Equal(d.WouldHave, tc.wouldHave) {
			t.Errorf("%s on %s: allow=%v would_have=%v, want %v %v", tc.principal, tc.resource, d.Allow, d.WouldHave, tc.allow, tc.wouldHave)
		}
		for _, r := range d.Reasons {
			if r.PolicyID == "policy1" || r.PolicyID == "policy2" {
				t.Errorf("%s on %s: log-only %s among the reasons", tc.principal, tc.resource, r.PolicyID)
			}
		}
	}
}
