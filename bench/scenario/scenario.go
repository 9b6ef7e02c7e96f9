// Package scenario defines intentpdp's benchmark scenarios as data: a
// multi-tenant agent policy bundle of a given size and queries that carry
// their expected decisions. Every runner (Go benchmarks, the load
// generator) builds its workload from here.
package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// Spec sizes a scenario.
type Spec struct {
	// Name identifies the scenario in benchmark names.
	Name string
	// Policies is the number of policies, about ten per tenant: most of
	// them concern tenants other than the one a query is about.
	Policies int
	// Entities is the entity store size to reach with documents on top of
	// the tenants' own agents, teams, folders and tools.
	Entities int
	// ContextFields is the number of extra context fields per query.
	ContextFields int
}

// Specs is the standard matrix: policy counts 10 to 100,000, entity
// stores of 1,000 and 100,000, small and larger contexts; and one scale
// point, a million policies, whose tenants bring 1.6 million entities.
var Specs = []Spec{
	{Name: "p10-e1k", Policies: 10, Entities: 1_000},
	{Name: "p1k-e1k", Policies: 1_000, Entities: 1_000},
	{Name: "p1k-e100k", Policies: 1_000, Entities: 100_000},
	{Name: "p10k-e1k", Policies: 10_000, Entities: 1_000}, // the tenants alone bring 16,000
	{Name: "p10k-e100k", Policies: 10_000, Entities: 100_000},
	{Name: "p10k-e100k-ctx50", Policies: 10_000, Entities: 100_000, ContextFields: 50},
	{Name: "p100k-e100k", Policies: 100_000, Entities: 100_000},
	{Name: "p1m-e1m", Policies: 1_000_000, Entities: 1_000_000}, // the tenants alone bring 1.6 million
}

// Find returns the spec named name.
func Find(name string) (Spec, bool) {
	for _, s := range Specs {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Query is one request with the decision the layout implies for it.
type Query struct {
	Name    string
	Request *pdpv1.AuthorizeRequest
	Allow   bool
}

// Scenario is a generated bundle with its queries.
type Scenario struct {
	Spec     Spec
	Bundle   *policystore.Bundle
	Tenants  int
	Entities int // entities written to entities.json
	Queries  []Query
}

// policiesPerTenant is what tenantPolicies writes for each tenant.
const policiesPerTenant = 10

// writers is the number of agents (and folders) with a write policy each.
const writers = 5

// Build generates the scenario for spec. It is deterministic.
func Build(spec Spec) *Scenario {
	tenants := max(1, spec.Policies/policiesPerTenant)
	var pol bytes.Buffer
	pol.WriteString(`@id("global-suspended")
forbid (principal, action, resource) when { context has suspended && context.suspended };
`)
	for t := range tenants {
		tenantPolicies(&pol, t)
	}
	ents := newEntityWriter()
	docs := writeEntities(ents, tenants, spec.Entities)
	s := &Scenario{
		Spec:    spec,
		Tenants: tenants,
		Bundle: &policystore.Bundle{
			Source: "scenario:" + spec.Name,
			Files: map[string][]byte{
				"policies.cedar":         pol.Bytes(),
				policystore.EntitiesFile: ents.bytes(),
				policystore.ManifestFile: []byte(fmt.Sprintf(`{"revision": %q}`, spec.Name)),
			},
		},
		Entities: ents.n,
	}
	for _, t := range []int{0, tenants / 2, tenants - 1} {
		s.Queries = append(s.Queries, queries(t, (t+1)%max(tenants, 2), docs > t, spec.ContextFields)...)
	}
	return s
}

// tenantPolicies writes tenant t's policies: reads by any agent of the
// tenant, tool calls by its dev team, a guarded production deploy, an admin,
// a protected archive and one writer per folder.
func tenantPolicies(w *bytes.Buffer, t int) {
	fmt.Fprintf(w, `@id("t%[1]d-read")
permit (principal in Tenant::"t%[1]d", action in Action::"readActions", resource in Tenant::"t%[1]d")
when { context.intent.purpose != "" };
@id("t%[1]d-tools")
permit (principal in Team::"t%[1]d-dev", action == Action::"call_tool", resource is Tool in Tenant::"t%[1]d")
when { context.risk < 5 };
@id("t%[1]d-deploy-guard")
@obligation("human_approval")
forbid (principal, action == Action::"call_tool", resource == Tool::"t%[1]d-deploy")
unless { context.intent.task_id != "" && context has approved && context.approved };
@id("t%[1]d-admin")
permit (principal == Agent::"t%[1]d-admin", action, resource in Tenant::"t%[1]d");
@id("t%[1]d-archive")
forbid (principal in Tenant::"t%[1]d", action == Action::"delete", resource in Folder::"t%[1]d-archive");
`, t)
	for k := range writers {
		fmt.Fprintf(w, `@id("t%[1]d-write-%[2]d")
permit (principal == Agent::"t%[1]d-a%[2]d", action == Action::"write", resource in Folder::"t%[1]d-f%[2]d")
when { context.intent.tool == "editor" };
`, t, k)
	}
}

// entityWriter writes Cedar entity JSON without building it in memory
// first, since large scenarios have 100,000 entities or more.
type entityWriter struct {
	buf bytes.Buffer
	n   int
}

func newEntityWriter() *entityWriter {
	w := &entityWriter{}
	w.buf.WriteString("[")
	return w
}

func (w *entityWriter) add(typ, id string, attrs map[string]any, parents ...[2]string) {
	if w.n > 0 {
		w.buf.WriteString(",\n")
	}
	w.n++
	ps := make([]map[string]string, len(parents))
	for i, p := range parents {
		ps[i] = map[string]string{"type": p[0], "id": p[1]}
	}
	if attrs == nil {
		attrs = map[string]any{}
	}
	data, _ := json.Marshal(map[string]any{ // only strings, numbers and maps: cannot fail
		"uid":     map[string]string{"type": typ, "id": id},
		"attrs":   attrs,
		"parents": ps,
	})
	w.buf.Write(data)
}

func (w *entityWriter) bytes() []byte {
	w.buf.WriteString("]\n")
	return w.buf.Bytes()
}

// writeEntities writes the action hierarchy, each tenant's structure, then
// documents spread over the tenants' folders until total is reached. It
// returns the number of documents.
func writeEntities(w *entityWriter, tenants, total int) int {
	w.add("Action", "readActions", nil)
	for _, a := range []string{"read", "list"} {
		w.add("Action", a, nil, [2]string{"Action", "readActions"})
	}
	for _, a := range []string{"write", "delete", "call_tool"} {
		w.add("Action", a, nil)
	}
	for t := range tenants {
		tenant := [2]string{"Tenant", fmt.Sprintf("t%d", t)}
		dev := [2]string{"Team", fmt.Sprintf("t%d-dev", t)}
		w.add(tenant[0], tenant[1], map[string]any{"tier": "standard"})
		w.add(dev[0], dev[1], nil, tenant)
		w.add("Agent", fmt.Sprintf("t%d-admin", t), nil, tenant)
		for k := range writers {
			w.add("Agent", fmt.Sprintf("t%d-a%d", t, k), map[string]any{"model": "m1"}, dev)
			w.add("Folder", fmt.Sprintf("t%d-f%d", t, k), nil, tenant)
		}
		w.add("Folder", fmt.Sprintf("t%d-archive", t), nil, tenant)
		w.add("Tool", fmt.Sprintf("t%d-search", t), map[string]any{"risk": 1}, tenant)
		w.add("Tool", fmt.Sprintf("t%d-deploy", t), map[string]any{"risk": 4}, tenant)
	}
	docs := 0
	for ; w.n < total; docs++ {
		t := docs % tenants
		w.add("Doc", fmt.Sprintf("t%d-d%d", t, docs), map[string]any{"size": docs},
			[2]string{"Folder", fmt.Sprintf("t%d-f%d", t, docs/tenants%writers)})
	}
	return docs
}

// queries are tenant t's workload; other is another tenant. Document
// number t belongs to tenant t (in its first folder) when hasDoc says it
// exists; otherwise reads target the first folder itself.
func queries(t, other int, hasDoc bool, contextFields int) []Query {
	agent := fmt.Sprintf("t%d-a1", t)
	doc := func(tenant int) *pdpv1.EntityRef {
		if !hasDoc {
			return ref("Folder", fmt.Sprintf("t%d-f0", tenant))
		}
		return ref("Doc", fmt.Sprintf("t%d-d%d", tenant, tenant))
	}
	q := func(name, principal, action string, resource *pdpv1.EntityRef, intent *pdpv1.Intent, ctx map[string]*pdpv1.Value, allow bool) Query {
		intent.Action = proto.String(action)
		return Query{
			Name:  fmt.Sprintf("t%d-%s", t, name),
			Allow: allow,
			Request: &pdpv1.AuthorizeRequest{
				Principal: ref("Agent", principal),
				Intent:    intent,
				Resource:  resource,
				Context:   &pdpv1.Record{Fields: withFiller(ctx, contextFields)},
			},
		}
	}
	folder1 := ref("Folder", fmt.Sprintf("t%d-f1", t))
	tool := func(name string) *pdpv1.EntityRef { return ref("Tool", fmt.Sprintf("t%d-%s", t, name)) }
	return []Query{
		q("read-own", agent, "read", doc(t), &pdpv1.Intent{Purpose: "support"}, nil, true),
		q("read-other-tenant", agent, "read", doc(other), &pdpv1.Intent{Purpose: "support"}, nil, false),
		q("read-no-purpose", agent, "list", folder1, &pdpv1.Intent{}, nil, false),
		q("tool-low-risk", agent, "call_tool", tool("search"), &pdpv1.Intent{Tool: "search"},
			map[string]*pdpv1.Value{"risk": long(2)}, true),
		q("deploy-unapproved", agent, "call_tool", tool("deploy"), &pdpv1.Intent{Tool: "deploy"},
			map[string]*pdpv1.Value{"risk": long(2)}, false),
		q("deploy-approved", agent, "call_tool", tool("deploy"), &pdpv1.Intent{Tool: "deploy", TaskId: "CHG-1"},
			map[string]*pdpv1.Value{"risk": long(2), "approved": {Kind: &pdpv1.Value_BoolValue{BoolValue: true}}}, true),
		q("admin-delete-archive", fmt.Sprintf("t%d-admin", t), "delete", ref("Folder", fmt.Sprintf("t%d-archive", t)),
			&pdpv1.Intent{}, nil, false),
		q("write-editor", agent, "write", folder1, &pdpv1.Intent{Tool: "editor"}, nil, true),
		q("write-shell", agent, "write", folder1, &pdpv1.Intent{Tool: "shell"}, nil, false),
		q("suspended", agent, "read", folder1, &pdpv1.Intent{Purpose: "support"},
			map[string]*pdpv1.Value{"suspended": {Kind: &pdpv1.Value_BoolValue{BoolValue: true}}}, false),
	}
}

// withFiller adds n context fields no policy reads, to measure the cost of
// carrying context.
func withFiller(ctx map[string]*pdpv1.Value, n int) map[string]*pdpv1.Value {
	if ctx == nil {
		ctx = map[string]*pdpv1.Value{}
	}
	for i := range n {
		if i%2 == 0 {
			ctx[fmt.Sprintf("f%d", i)] = long(int64(i))
		} else {
			ctx[fmt.Sprintf("f%d", i)] = &pdpv1.Value{Kind: &pdpv1.Value_StringValue{StringValue: fmt.Sprintf("value-%d", i)}}
		}
	}
	return ctx
}

func ref(typ, id string) *pdpv1.EntityRef { return &pdpv1.EntityRef{Type: typ, Id: id} }

func long(v int64) *pdpv1.Value { return &pdpv1.Value{Kind: &pdpv1.Value_LongValue{LongValue: v}} }
