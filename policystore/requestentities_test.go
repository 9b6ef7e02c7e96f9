package policystore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
)

func uid(typ, id string) types.EntityUID {
	return types.NewEntityUID(types.EntityType(typ), types.String(id))
}

// TestForgedTaskIsIgnored makes up a live task assigned to an agent outside
// every team. Ignored, the task is an entity no one defines: the write
// policy's condition fails to evaluate and is skipped, and the request is
// denied.
func TestForgedTaskIsIgnored(t *testing.T) {
	t.Parallel()
	snap, err := policystore.Compile(exampleBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	intern, task := uid("Agent", "intern-bot"), uid("Task", "T-fake")
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	req := policystore.Request{
		Principal: intern, Action: uid("Action", "write_file"), Resource: uid("Repository", "payments-api"),
		Intent: policystore.Intent{Purpose: "onboarding"}, Context: types.RecordMap{"task": task}, Now: now,
		Entities: types.EntityMap{task: {UID: task, Attributes: types.NewRecord(types.RecordMap{
			"assignee":   intern,
			"project":    uid("Project", "payments"),
			"expires_at": types.NewDatetime(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)),
		})}},
	}
	d, err := snap.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || len(d.Ignored) != 1 || d.Ignored[0].UID != task || !strings.Contains(d.Ignored[0].Detail, "authoritative for type Task") {
		t.Fatalf("allow %v, ignored %v; want a deny with the task ignored", d.Allow, d.Ignored)
	}
	if len(d.Errors) != 1 || d.Errors[0].PolicyID != "task-grants" {
		t.Errorf("errors %v; want task-grants skipped for the undefined task", d.Errors)
	}
	req.RejectOverrides = true
	var override *policystore.EntityOverrideError
	if _, err := snap.Decide(context.Background(), req); !errors.As(err, &override) || !errors.Is(err, policystore.ErrInvalidRequest) {
		t.Errorf("reject mode: err = %v, want an EntityOverrideError", err)
	}
}

// TestAuthoritativeTypes covers the manifest's authoritative_types and its
// default, with and without a schema.
func TestAuthoritativeTypes(t *testing.T) {
	t.Parallel()
	const schema = `
entity User { level: Long };
entity Doc { owner: User };
entity Session;
action edit appliesTo { principal: [User], resource: [Doc] };`
	const policy = `@id("owner") permit (principal, action, resource) when { resource.owner == principal };`
	const entities = `[
  {"uid": {"type": "User", "id": "alice"}, "attrs": {"level": 1}, "parents": []},
  {"uid": {"type": "Doc", "id": "d0"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "alice"}}}, "parents": []}
]`
	mallory, doc := uid("User", "mallory"), uid("Doc", "d1")
	req := policystore.Request{
		Principal: mallory, Action: uid("Action", "edit"), Resource: doc,
		Entities: types.EntityMap{doc: {UID: doc, Attributes: types.NewRecord(types.RecordMap{"owner": mallory})}},
	}
	cases := []struct {
		name     string
		manifest string
		schema   bool
		allow    bool
	}{
		{"schema default: types with bundle entities", ``, true, false},
		{"explicit list", `{"authoritative_types": ["Doc"]}`, true, false},
		{"explicit list without the type", `{"authoritative_types": ["Session"]}`, true, true},
		{"explicit empty list", `{"authoritative_types": []}`, true, true},
		{"no schema, no list", ``, false, true},
		{"no schema, explicit list", `{"authoritative_types": ["Doc"]}`, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"p.cedar": policy, "entities.json": entities}
			if c.schema {
				files["s.cedarschema"] = schema
			}
			if c.manifest != "" {
				files["manifest.json"] = c.manifest
			}
			snap, err := policystore.Compile(bundle(files))
			if err != nil {
				t.Fatal(err)
			}
			d, err := snap.Decide(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != c.allow || len(d.Ignored) != map[bool]int{true: 0, false: 1}[c.allow] {
				t.Fatalf("allow %v ignored %v; want allow %v", d.Allow, d.Ignored, c.allow)
			}
		})
	}
}

// TestPrincipalCannotJoinAuthoritativeType places a request principal
// under a team the bundle does not define but whose type it owns, as a
// policy names it.
func TestPrincipalCannotJoinAuthoritativeType(t *testing.T) {
	t.Parallel()
	snap, err := policystore.Compile(bundle(map[string]string{
		"p.cedar":       `@id("contractors") permit (principal in Team::"contractors", action, resource);`,
		"entities.json": `[{"uid": {"type": "Team", "id": "staff"}, "attrs": {}, "parents": []}]`,
		"manifest.json": `{"authoritative_types": ["Team"]}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	session, team := uid("Session", "s1"), uid("Team", "contractors")
	d, err := snap.Decide(context.Background(), policystore.Request{
		Principal: session, Action: uid("Action", "a"), Resource: uid("R", "r"),
		Entities: types.EntityMap{session: {UID: session, Parents: types.NewEntityUIDSet(team)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || len(d.Ignored) != 1 || !strings.Contains(d.Ignored[0].Detail, "authoritative for type Team") {
		t.Fatalf("allow %v ignored %v; want a deny with the parent ignored", d.Allow, d.Ignored)
	}
}

func TestAuthoritativeTypesMustBeEntityTypes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, manifest string
		schema         bool
		want           string
	}{
		{"not in the schema", `{"authoritative_types": ["Doc", "Tsak"]}`, true, `declares no entity type "Tsak"`},
		{"action type", `{"authoritative_types": ["Action"]}`, true, `action entities always come from the bundle`},
		{"not a name", `{"authoritative_types": ["Doc!"]}`, false, `"Doc!" is not an entity type name`},
		{"not a list", `{"authoritative_types": "Doc"}`, false, `manifest.json`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"p.cedar": `permit (principal, action, resource);`, "manifest.json": c.manifest}
			if c.schema {
				files["s.cedarschema"] = `entity Doc; action edit appliesTo { principal: [Doc], resource: [Doc] };`
			}
			_, err := policystore.Compile(bundle(files))
			var verr *policystore.ValidationError
			if !errors.As(err, &verr) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a ValidationError containing %q", err, c.want)
			}
		})
	}
}

// chain returns n request entities G::"0" … G::"n-1", each the parent of
// the one before; with cycle the last one's parent is the first.
func chain(n int, cycle bool) types.EntityMap {
	m := types.EntityMap{}
	for i := range n {
		e := types.Entity{UID: uid("G", fmt.Sprint(i))}
		switch {
		case i+1 < n:
			e.Parents = types.NewEntityUIDSet(uid("G", fmt.Sprint(i+1)))
		case cycle:
			e.Parents = types.NewEntityUIDSet(uid("G", "0"))
		}
		m[e.UID] = e
	}
	return m
}

func TestRequestEntityDepthLimit(t *testing.T) {
	t.Parallel()
	snap, err := policystore.Compile(bundle(map[string]string{
		"p.cedar": `@id("top") permit (principal in G::"top", action, resource);`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	const limit = policystore.MaxRequestEntityDepth
	cases := []struct {
		name    string
		n       int
		cycle   bool
		refused bool
	}{
		{"chain at the limit", limit, false, false},
		{"chain past the limit", limit + 1, false, true},
		{"long chain", 1000, false, true},
		{"cycle at the limit", limit, true, false},
		{"cycle past the limit", limit + 1, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ents := chain(c.n, c.cycle)
			// The top of the chain sits in the bundle's group: the
			// principal at the bottom is allowed when the chain is closed.
			top := uid("G", fmt.Sprint(c.n-1))
			if !c.cycle {
				e := ents[top]
				e.Parents = types.NewEntityUIDSet(uid("G", "top"))
				ents[top] = e
			}
			req := policystore.Request{Principal: uid("G", "0"), Action: uid("Action", "a"), Resource: uid("R", "r"), Entities: ents}
			d, err := snap.Decide(context.Background(), req)
			if c.refused {
				if !errors.Is(err, policystore.ErrInvalidRequest) || !strings.Contains(err.Error(), fmt.Sprint(limit)) {
					t.Fatalf("err = %v, want ErrInvalidRequest naming the limit", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != !c.cycle {
				t.Errorf("allow = %v", d.Allow)
			}
		})
	}
}

// cancelAfter is a context whose Err reports Canceled from its nth call
// on, so that a test can cancel in the middle of the work without timing.
type cancelAfter struct {
	context.Context
	calls, n atomic.Int64
}

func (c *cancelAfter) Err() error {
	if c.calls.Add(1) >= c.n.Load() {
		return context.Canceled
	}
	return nil
}

func TestDecideStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	snap, err := policystore.Compile(bundle(map[string]string{"p.cedar": `permit (principal, action, resource);`}))
	if err != nil {
		t.Fatal(err)
	}
	// Many request entities, each below the next in a shallow tree: the
	// context is consulted between them.
	ents := types.EntityMap{}
	for i := range 500 {
		e := types.Entity{UID: uid("G", fmt.Sprint(i))}
		if i > 0 {
			e.Parents = types.NewEntityUIDSet(uid("G", fmt.Sprint((i-1)/2)))
		}
		ents[e.UID] = e
	}
	req := policystore.Request{Principal: uid("G", "499"), Action: uid("Action", "a"), Resource: uid("R", "r"), Entities: ents}

	for _, n := range []int64{1, 2, 100} {
		ctx := &cancelAfter{Context: context.Background()}
		ctx.n.Store(n)
		if _, err := snap.Decide(ctx, req); !errors.Is(err, context.Canceled) {
			t.Errorf("canceled after %d checks: err = %v, want context.Canceled", n, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := snap.Decide(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: err = %v", err)
	}
	if d, err := snap.Decide(context.Background(), req); err != nil || !d.Allow {
		t.Errorf("live context: %v, %v", d.Allow, err)
	}
}
