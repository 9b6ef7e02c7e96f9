package policystore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
)

func bundle(files map[string]string) *policystore.Bundle {
	b := &policystore.Bundle{Source: "test", Files: map[string][]byte{}}
	for k, v := range files {
		b.Files[k] = []byte(v)
	}
	return b
}

func exampleBundle(t *testing.T) *policystore.Bundle {
	t.Helper()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCurrentBeforeActivate(t *testing.T) {
	t.Parallel()
	if _, err := policystore.NewStore().Current(); !errors.Is(err, policystore.ErrNoSnapshot) {
		t.Fatalf("err = %v, want ErrNoSnapshot", err)
	}
}

func TestFailedActivationKeepsServing(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	store := policystore.NewStore(policystore.WithClock(func() time.Time { return clock }))
	good, err := store.Activate(context.Background(), exampleBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if !good.ActivatedAt().Equal(clock) {
		t.Errorf("activated at %v, want %v", good.ActivatedAt(), clock)
	}
	broken := exampleBundle(t)
	broken.Files["policies.cedar"] = []byte("permit (principal, action, resource) when { ")
	if _, err := store.Activate(context.Background(), broken); err == nil {
		t.Fatal("broken bundle activated")
	}
	cur, err := store.Current()
	if err != nil || cur != good {
		t.Fatalf("current = %v, %v; want the last good snapshot", cur, err)
	}
}

func TestBundleProblemsAreLocated(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"syntax error", map[string]string{
			"a.cedar": "permit (principal, action, resource);\nforbid (principal, action resource);",
		}, []string{"a.cedar:2"}},
		{"duplicate ids", map[string]string{
			"a.cedar": `@id("p") permit (principal, action, resource);`,
			"b.cedar": `@id("p") forbid (principal, action, resource);`,
		}, []string{`b.cedar:1:1: duplicate policy id "p"`}},
		{"invalid schema", map[string]string{
			"s.cedarschema": "entity User in [Missing];",
			"a.cedar":       "permit (principal, action, resource);",
		}, []string{"s.cedarschema"}},
		{"two schemas", map[string]string{
			"a.cedarschema":      "entity User;",
			"b.cedarschema.json": "{}",
		}, []string{"at most one schema"}},
		{"policy fails validation", map[string]string{
			"s.cedarschema": "entity User { name: String };\naction view appliesTo { principal: User, resource: User };",
			"a.cedar":       "permit (principal, action, resource);\n\n@id(\"typo\")\npermit (principal, action == Action::\"view\", resource) when { principal.nmae == \"x\" };",
		}, []string{`a.cedar:3:1: policy "typo" does not validate`}},
		{"entity fails validation", map[string]string{
			"s.cedarschema": "entity User { name: String };",
			"entities.json": `[{"uid": {"type": "User", "id": "a"}, "attrs": {"name": 42}, "parents": []}]`,
		}, []string{`entities.json: entity [0] User::"a": attribute "name"`}},
		{"malformed entities", map[string]string{"entities.json": `[{"uid": 3}]`}, []string{"entities.json"}},
		{"bad manifest", map[string]string{"manifest.json": `{"validation": "lenient"}`}, []string{"manifest.json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := policystore.Compile(bundle(c.files))
			var verr *policystore.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRevision(t *testing.T) {
	t.Parallel()
	files := map[string]string{"a.cedar": "permit (principal, action, resource);"}
	s1, err := policystore.Compile(bundle(files))
	if err != nil {
		t.Fatal(err)
	}
	files["a.cedar"] = "forbid (principal, action, resource);"
	s2, _ := policystore.Compile(bundle(files))
	if !strings.HasPrefix(s1.Revision(), "sha256:") || s1.Revision() == s2.Revision() {
		t.Errorf("content-hash revisions %q and %q", s1.Revision(), s2.Revision())
	}
	files["manifest.json"] = `{"revision": "v42"}`
	s3, _ := policystore.Compile(bundle(files))
	if s3.Revision() != "v42" {
		t.Errorf("manifest revision = %q", s3.Revision())
	}
}

func TestDefaultPolicyIDsAreFileAndPosition(t *testing.T) {
	t.Parallel()
	snap, err := policystore.Compile(bundle(map[string]string{
		"dir/a.cedar": "permit (principal, action, resource);\n  forbid (principal, action, resource) when { false };",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range snap.All() {
		ids = append(ids, string(id))
	}
	if strings.Join(ids, " ") != "dir/a.cedar:1:1 dir/a.cedar:2:3" {
		t.Errorf("ids = %v", ids)
	}
}

func TestDecideRequestEntities(t *testing.T) {
	t.Parallel()
	snap, err := policystore.Compile(bundle(map[string]string{
		"p.cedar": `
@id("admins") permit (principal in Role::"admin", action, resource);
@id("owner") permit (principal, action == Action::"edit", resource) when { resource has owner && resource.owner == principal };
@id("readers") permit (principal, action in Action::"read", resource);`,
		"entities.json": `[
  {"uid": {"type": "Role", "id": "admin"}, "attrs": {}, "parents": []},
  {"uid": {"type": "User", "id": "alice"}, "attrs": {"level": 1}, "parents": []},
  {"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": [{"type": "Group", "id": "ext"}]},
  {"uid": {"type": "Action", "id": "read"}, "attrs": {}, "parents": []}
]`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	uid := func(typ, id string) types.EntityUID {
		return types.NewEntityUID(types.EntityType(typ), types.String(id))
	}
	ent := func(u types.EntityUID, parents ...types.EntityUID) types.Entity {
		return types.Entity{UID: u, Parents: types.NewEntityUIDSet(parents...)}
	}
	alice, mallory, tmp := uid("User", "alice"), uid("User", "mallory"), uid("Group", "tmp")
	admin, doc := uid("Role", "admin"), uid("Doc", "d1")

	cases := []struct {
		name    string
		req     policystore.Request
		allow   bool
		ignored int
	}{
		{"bundle entity cannot gain a role", policystore.Request{
			Principal: alice, Action: uid("Action", "x"), Resource: doc,
			Entities: types.EntityMap{alice: ent(alice, admin)},
		}, false, 1},
		{"unknown principal cannot join a bundle role", policystore.Request{
			Principal: mallory, Action: uid("Action", "x"), Resource: doc,
			Entities: types.EntityMap{mallory: ent(mallory, admin)},
		}, false, 1},
		{"nor through a request group", policystore.Request{
			Principal: mallory, Action: uid("Action", "x"), Resource: doc,
			Entities: types.EntityMap{mallory: ent(mallory, tmp), tmp: ent(tmp, admin)},
		}, false, 1},
		{"nor through a group the bundle names but leaves undefined", policystore.Request{
			Principal: uid("User", "bob"), Action: uid("Action", "x"), Resource: doc,
			Entities: types.EntityMap{uid("Group", "ext"): ent(uid("Group", "ext"), admin)},
		}, false, 1},
		{"request cannot put an action in a group", policystore.Request{
			Principal: mallory, Action: uid("Action", "delete"), Resource: doc,
			Entities: types.EntityMap{uid("Action", "delete"): ent(uid("Action", "delete"), uid("Action", "read"))},
		}, false, 1},
		{"request entities the bundle lacks are used", policystore.Request{
			Principal: mallory, Action: uid("Action", "edit"), Resource: doc,
			Entities: types.EntityMap{doc: {UID: doc, Attributes: types.NewRecord(types.RecordMap{"owner": mallory})}},
		}, true, 0},
		{"identical bundle data is not reported", policystore.Request{
			Principal: alice, Action: uid("Action", "x"), Resource: doc,
			Entities: types.EntityMap{admin: ent(admin)},
		}, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, err := snap.Decide(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != c.allow || len(d.Ignored) != c.ignored {
				t.Fatalf("allow %v ignored %v; want allow %v with %d ignored", d.Allow, d.Ignored, c.allow, c.ignored)
			}
			c.req.RejectOverrides = true
			_, err = snap.Decide(context.Background(), c.req)
			if rejected := errors.Is(err, policystore.ErrInvalidRequest); rejected != (c.ignored > 0) {
				t.Errorf("reject mode: err = %v", err)
			}
		})
	}
}

// TestDecideAddsReservedContextKeys: policies see the caller's context
// with context.intent and context.now added, and a caller cannot set either.
func TestDecideAddsReservedContextKeys(t *testing.T) {
	t.Parallel()
	snap, err := policystore.Compile(bundle(map[string]string{"p.cedar": `@id("p") permit (principal, action, resource) when {
		context.env == "prod" && context.intent.purpose == "release" && context.intent.task_id == "T-1" &&
		context.intent.tool == "argo" && context.intent.attributes.ticket == 7 &&
		context.now == datetime("2026-11-23T10:00:00Z")
	};`}))
	if err != nil {
		t.Fatal(err)
	}
	req := policystore.Request{
		Principal: types.NewEntityUID("Agent", "a"), Action: types.NewEntityUID("Action", "deploy"), Resource: types.NewEntityUID("Env", "prod"),
		Intent:  policystore.Intent{Purpose: "release", TaskID: "T-1", Tool: "argo", Attributes: types.RecordMap{"ticket": types.Long(7)}},
		Context: types.RecordMap{"env": types.String("prod")},
		Now:     time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	}
	if d, err := snap.Decide(context.Background(), req); err != nil || !d.Allow {
		t.Fatalf("decision %+v, err %v", d, err)
	}
	if len(req.Context) != 1 {
		t.Errorf("Decide modified the caller's context: %v", req.Context)
	}
	for _, k := range []types.String{"intent", "now"} {
		forged := req
		forged.Context = types.RecordMap{k: types.True}
		if _, err := snap.Decide(context.Background(), forged); !errors.Is(err, policystore.ErrInvalidRequest) {
			t.Errorf("reserved key %q: err = %v", k, err)
		}
	}
}
