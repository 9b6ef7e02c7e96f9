package policystore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
)

// mixedExample is the example bundle with all but the first of its policies
// moved from policies.cedar to policies.cedar.json, Cedar's JSON policy-set
// format, as cedar-go writes it. The JSON keys differ from the @id
// annotations, so the annotations must win for the decisions to match.
func mixedExample(t *testing.T) *policystore.Bundle {
	t.Helper()
	b := exampleBundle(t)
	list, err := cedar.NewPolicyListFromBytes("policies.cedar", b.Files["policies.cedar"])
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 2 {
		t.Fatalf("example has %d policies; the test needs two or more", len(list))
	}
	moved := cedar.NewPolicySet()
	for i, p := range list[1:] {
		moved.Add(cedar.PolicyID(fmt.Sprintf("key%d", i)), p)
	}
	data, err := moved.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	b.Files["policies.cedar"] = list[0].MarshalCedar()
	b.Files["policies.cedar.json"] = data
	return b
}

// exampleRequests are the example bundle's test cases plus a grid over its
// agents, actions, resources and a few contexts, denials and evaluation
// errors included.
func exampleRequests(t *testing.T, snap *policystore.Snapshot, b *policystore.Bundle) []policystore.Request {
	t.Helper()
	cases, err := policystore.ParseCases(b.Files["tests/cases.json"])
	if err != nil {
		t.Fatal(err)
	}
	var reqs []policystore.Request
	for _, c := range cases {
		var fields types.RecordMap
		if c.Context != nil {
			fields = c.Context.Map()
		}
		intent := policystore.Intent{Purpose: c.Intent.Purpose, TaskID: c.Intent.TaskID, Tool: c.Intent.Tool}
		if c.Intent.Attributes != nil {
			intent.Attributes = c.Intent.Attributes.Map()
		}
		reqs = append(reqs, policystore.Request{
			Principal: c.Principal, Action: c.Action, Resource: c.Resource,
			Intent: intent, Context: fields, Now: c.Now, Entities: c.Entities,
		})
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	contexts := []types.RecordMap{
		nil,
		{"task": types.NewEntityUID("Task", "T-1042")},
		{"task": types.NewEntityUID("Task", "T-0999")},
	}
	intents := []policystore.Intent{
		{Purpose: "code-review"},
		{Purpose: "release", TaskID: "T-1042", Attributes: types.RecordMap{"approval_ticket": types.String("CHG-1")}},
		{Purpose: "incident-response", TaskID: "T-0999"},
	}
	var resources []types.EntityUID
	for _, typ := range []types.EntityType{"Repository", "Document", "Secret", "Environment"} {
		resources = append(resources, snap.EntitiesOfType(typ)...)
	}
	for _, principal := range snap.EntitiesOfType("Agent") {
		for _, action := range snap.Actions("Agent", "") {
			for _, resource := range resources {
				for i, fields := range contexts {
					reqs = append(reqs, policystore.Request{
						Principal: principal, Action: action, Resource: resource,
						Intent: intents[i], Context: fields, Now: now,
					})
				}
			}
		}
	}
	return reqs
}

func TestJSONPoliciesDecideAsText(t *testing.T) {
	t.Parallel()
	store := policystore.NewStore()
	text, err := policystore.Compile(exampleBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	mixed := mustActivate(t, store, mixedExample(t)) // runs the bundle's own cases too
	if mixed.PolicyCount() != text.PolicyCount() {
		t.Fatalf("mixed bundle has %d policies, text %d", mixed.PolicyCount(), text.PolicyCount())
	}
	reqs := exampleRequests(t, text, exampleBundle(t))
	if len(reqs) < 100 {
		t.Fatalf("only %d requests", len(reqs))
	}
	allowed := 0
	for _, req := range reqs {
		want, werr := text.Decide(context.Background(), req)
		got, gerr := mixed.Decide(context.Background(), req)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%v %v %v: errors %v (text) and %v (mixed)", req.Principal, req.Action, req.Resource, werr, gerr)
		}
		want.Revision, got.Revision = "", ""
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%v %v %v:\n mixed %+v\n text  %+v", req.Principal, req.Action, req.Resource, got, want)
		}
		if want.Allow {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(reqs) {
		t.Errorf("%d of %d requests allowed; the comparison needs both outcomes", allowed, len(reqs))
	}
}

func TestJSONPolicyIDs(t *testing.T) {
	t.Parallel()
	snap, err := policystore.Compile(bundle(map[string]string{
		"p.cedar.json": `{"staticPolicies": {
			"by-key": {"effect": "permit", "principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}},
			"ignored-key": {"effect": "permit", "annotations": {"id": "by-annotation", "owner": "sec"},
				"principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}}
		}, "templates": {}, "templateLinks": []}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	d, err := snap.Decide(context.Background(), policystore.Request{
		Principal: types.NewEntityUID("User", "a"),
		Action:    types.NewEntityUID("Action", "view"),
		Resource:  types.NewEntityUID("Doc", "d"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.PolicyIDs(); !reflect.DeepEqual(got, []string{"by-annotation", "by-key"}) {
		t.Errorf("reasons %v, want [by-annotation by-key]", got)
	}
	if got := d.Reasons[0].Annotations["owner"]; got != "sec" {
		t.Errorf("annotation owner = %q, want sec", got)
	}
}

func TestJSONPolicyProblemsNameTheFile(t *testing.T) {
	t.Parallel()
	const permitAll = `{"effect": "permit", "principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}}`
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"not JSON", map[string]string{"bad.cedar.json": `{"staticPolicies": `}, []string{"bad.cedar.json: parse policies:"}},
		{"bad policy", map[string]string{
			"bad.cedar.json": `{"staticPolicies": {"p": {"effect": "allow", "principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}}}}`,
		}, []string{"bad.cedar.json: parse policies:", "/staticPolicies/p", "allow"}},
		{"not a policy set", map[string]string{"bad.cedar.json": permitAll}, []string{"bad.cedar.json: parse policies:"}},
		{"templates", map[string]string{
			"t.cedar.json": `{"staticPolicies": {}, "templates": {"t": ` + permitAll + `}, "templateLinks": []}`,
		}, []string{"t.cedar.json: parse policies:", "templates and template links are not supported"}},
		{"duplicate id, text first", map[string]string{
			"a.cedar":      `@id("p") permit (principal, action, resource);`,
			"b.cedar.json": `{"staticPolicies": {"p": ` + permitAll + `}}`,
		}, []string{`b.cedar.json: duplicate policy id "p" (first at a.cedar:1:1)`}},
		{"duplicate id, JSON first", map[string]string{
			"a.cedar.json": `{"staticPolicies": {"k": {"effect": "permit", "annotations": {"id": "p"}, "principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}}}}`,
			"b.cedar":      `@id("p") forbid (principal, action, resource);`,
		}, []string{`b.cedar:1:1: duplicate policy id "p" (first at a.cedar.json)`}},
		{"duplicate id within JSON", map[string]string{
			"a.cedar.json": `{"staticPolicies": {"p": ` + permitAll + `, "q": {"effect": "forbid", "annotations": {"id": "p"}, "principal": {"op": "All"}, "action": {"op": "All"}, "resource": {"op": "All"}}}}`,
		}, []string{`a.cedar.json: duplicate policy id "p" (first at a.cedar.json)`}},
		{"fails validation", map[string]string{
			"s.cedarschema": "entity User { name: String };\naction view appliesTo { principal: User, resource: User };",
			"p.cedar.json": `{"staticPolicies": {"typo": {"effect": "permit", "principal": {"op": "All"},
				"action": {"op": "==", "entity": {"type": "Action", "id": "view"}}, "resource": {"op": "All"},
				"conditions": [{"kind": "when", "body": {"==": {"left": {".": {"left": {"Var": "principal"}, "attr": "nmae"}}, "right": {"Value": "x"}}}}]}}}`,
		}, []string{`p.cedar.json: policy "typo" does not validate`}},
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

// TestSchemaJSONIsNotAPolicyFile: *.cedarschema.json is the schema, never
// parsed as policies.
func TestSchemaJSONIsNotAPolicyFile(t *testing.T) {
	t.Parallel()
	schemaJSON, err := json.Marshal(map[string]any{"": map[string]any{
		"entityTypes": map[string]any{"User": map[string]any{}},
		"actions":     map[string]any{"view": map[string]any{"appliesTo": map[string]any{"principalTypes": []string{"User"}, "resourceTypes": []string{"User"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policystore.Compile(bundle(map[string]string{
		"s.cedarschema.json": string(schemaJSON),
		"p.cedar":            `permit (principal, action, resource);`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if snap.PolicyCount() != 1 || snap.Schema() == nil {
		t.Errorf("%d policies, schema %v", snap.PolicyCount(), snap.Schema() != nil)
	}
}
