package mcpgw

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grants"
)

// The typed tools of schemaServer: go-sdk derives their input schemas
// from these structs, as a Go MCP server's author would have it.
type (
	createIssueArgs struct {
		Owner  string   `json:"owner"`
		Repo   string   `json:"repo"`
		Title  string   `json:"title"`
		Labels []string `json:"labels,omitempty"`
		Draft  bool     `json:"draft,omitempty"`
	}
	listIssuesArgs struct {
		Repo   string  `json:"repo"`
		Limit  int     `json:"limit,omitempty"`
		Filter *filter `json:"filter,omitempty"`
		Score  float64 `json:"score,omitempty"` // a number: left out
	}
	filter struct {
		State   string `json:"state"`
		Authors []struct {
			Login string `json:"login"`
		} `json:"authors,omitempty"`
	}
)

// schemaServer is a real MCP server whose tools have input schemas of
// every kind the schema writer meets: typed structs, raw schemas with
// enums, unions, untyped and boolean schemas, names Cedar must quote.
func schemaServer(t *testing.T) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "schema", Version: "1"}, nil)
	done := func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	}
	mcp.AddTool(s, &mcp.Tool{Name: "create_issue", Description: "Create an issue.\nSecond line */ ignored"},
		func(context.Context, *mcp.CallToolRequest, createIssueArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "list_issues"},
		func(context.Context, *mcp.CallToolRequest, listIssuesArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
		})
	raw := map[string]string{
		"repo.delete": `{"type":"object","properties":{"repo":{"type":"string"},"confirm":{"const":"yes"}},"required":["repo","confirm"]}`,
		"search": `{"type":"object","properties":{
			"query": {"type": ["string", "null"]},
			"sort": {"enum": ["stars", "updated"]},
			"in": {"type": "string"},
			"page-size": {"type": "integer"},
			"target": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
			"anything": {},
			"flag": true,
			"mixed": {"type": ["string", "integer"]},
			"ids": {"type": "array", "items": {"type": "integer"}},
			"bag": {"type": "array"},
			"weights": {"type": "array", "items": {"type": "number"}},
			"meta": {"type": "object"},
			"ref": {"$ref": "#/$defs/x"}
		},"required":["query","in"]}`,
		"ping":  `{"type":"object"}`,
		"label": `{"type":"object","properties":{"options":{"type":"object","properties":{"color":{"type":"string"}}}}}`,
	}
	for name, schema := range raw {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(schema)}, done)
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// schemaPolicies read every kind of declared input: strings, optional
// Longs and Bools behind has, sets, nested records, quoted names, and the
// reserved keys.
const schemaPolicies = `
@id("issue-titles")
permit (principal is Agent, action == Action::"create_issue", resource)
when {
  context.input.title like "*bug*" && context.input.repo != "" &&
  context.input has labels && context.input.labels.contains("triage")
}
unless { context.input has draft && context.input.draft };

@id("list-small")
permit (principal is Agent, action == Action::"list_issues", resource)
when { context.input has limit && context.input.limit <= 50 }
unless { context.input has filter && context.input.filter.state != "open" };

@id("search")
permit (principal is Agent, action == Action::"search", resource)
when {
  context.input["in"] == "title" && context.input has "page-size" && context.input["page-size"] < 100 &&
  context.input has ids && context.input.ids.containsAll([1, 2])
}
unless { context.input has sort && context.input.sort != "stars" };

@id("never-delete")
@reason("repositories are never deleted by agents")
forbid (principal, action == Action::"repo.delete", resource)
when { context.input.confirm == "yes" };

@id("in-task")
permit (principal is Agent, action, resource)
when {
  context has task && context.task.assignee == principal && action in context.task.actions &&
  resource in context.task.scope && context.now < context.task.expires_at &&
  context.intent.purpose == context.task.purpose
}
unless { context has identity && context.identity.caller != "" };

@id("approvers")
permit (principal is User, action == Action::"grant", resource is Task)
when { context.ttl_seconds <= 3600 && context.assignee is Agent };
`

func activate(t *testing.T, files map[string]string) (*policystore.Store, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	b, err := policystore.LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	store := policystore.NewStore(policystore.WithRuntimeEntityTypes(grants.TaskType))
	_, err = store.Activate(t.Context(), b)
	return store, err
}

// TestSchemaFromUpstreamValidates reads a real MCP server's tools, writes
// their schema and activates it with policies that read the arguments: the
// project's own activation validates them in strict mode. Then calls
// through the gateway are decided as those policies say, so the declared
// types are the ones policies meet.
func TestSchemaFromUpstreamValidates(t *testing.T) {
	url := schemaServer(t)
	schema := upstreamSchema(t, "github", url)
	for _, want := range []string{
		`action "repo.delete" appliesTo`,
		`"in": String,`,
		`"page-size"?: Long,`,
		`query: String,`,
		`sort?: String,`,
		`ids?: Set<Long>,`,
		`meta?: {},`,
		`labels?: Set<String>,`,
		`// score: not declared, a JSON number`,
		`// target: not declared, oneOf/anyOf without a type`,
		`// anything: not declared, no type`,
		`// flag: not declared, no type`,
		`// mixed: not declared, types ["string","integer"]`,
		`// bag: not declared, an array without items`,
		`// weights: not declared, an array of a JSON number`,
		`// ref: not declared, a $ref`,
		"// Create an issue.\naction \"create_issue\"",
		`input: {},`,
	} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("schema lacks %q", want)
		}
	}
	if strings.Contains(string(schema), "Second line") {
		t.Error("a description's second line reached the schema")
	}
	if strings.Contains(string(schema), "read_resource") || strings.Contains(string(schema), "get_prompt") {
		t.Error("the schema of an upstream with tools only declares resource reads or prompts")
	}
	store, err := activate(t, map[string]string{
		"manifest.json":   `{"revision": "schema-test"}`,
		"mcp.cedarschema": string(schema),
		"policies.cedar":  schemaPolicies,
	})
	if err != nil {
		t.Fatalf("activation refused the generated schema: %v", err)
	}

	cs := agentOf(t, engine.New(store), `Agent::"bot"`, UpstreamConfig{Name: "github", URL: url})
	for _, c := range []struct {
		tool  string
		args  map[string]any
		allow bool
	}{
		{"create_issue", map[string]any{"owner": "o", "repo": "r", "title": "a bug", "labels": []string{"triage"}}, true},
		{"create_issue", map[string]any{"owner": "o", "repo": "r", "title": "a bug", "draft": true}, false},
		{"create_issue", map[string]any{"owner": "o", "repo": "r", "title": "a feature"}, false},
		{"list_issues", map[string]any{"repo": "r", "limit": 10, "filter": map[string]any{"state": "open"}}, true},
		{"list_issues", map[string]any{"repo": "r", "limit": 51}, false},
		{"search", map[string]any{"query": "x", "in": "title", "page-size": 20, "ids": []int{1, 2, 3}, "sort": "stars"}, true},
		{"search", map[string]any{"query": "x", "in": "body", "page-size": 20}, false},
		{"repo.delete", map[string]any{"repo": "r", "confirm": "yes"}, false},
	} {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil {
			t.Fatalf("%s: %v", c.tool, err)
		}
		if allowed := !res.IsError; allowed != c.allow {
			t.Errorf("%s %v: allowed=%v, want %v (%v)", c.tool, c.args, allowed, c.allow, res.Content)
		}
	}
}

// TestSchemaLeavesOutWhatItCannotType: strict validation refuses a policy
// that reads an argument the schema could not type, so no policy is
// written against a type the argument may not have.
func TestSchemaLeavesOutWhatItCannotType(t *testing.T) {
	tools := []*mcp.Tool{{Name: "pay", InputSchema: json.RawMessage(`{"type":"object","properties":{"amount":{"type":"number"}},"required":["amount"]}`)}}
	schema, err := Schema(Offer{Tools: tools}, SchemaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = activate(t, map[string]string{
		"s.cedarschema": string(schema),
		"p.cedar":       `permit (principal, action == Action::"pay", resource) when { context.input.amount < 100 };`,
	})
	if err == nil || !strings.Contains(err.Error(), "amount") {
		t.Fatalf("a policy reading an undeclared number validated: %v", err)
	}
}

// TestSchemaOptions: the principal and approver types, prefixes and
// resource mappings name what the gateway decides with; names that would
// break the schema are refused.
func TestSchemaOptions(t *testing.T) {
	tools := []*mcp.Tool{
		{Name: "get_repo", InputSchema: json.RawMessage(`{"type":"object","properties":{"owner":{"type":"string"},"repo":{"type":"string"}},"required":["owner","repo"]}`)},
		{Name: "ping", InputSchema: json.RawMessage(`{"type":"object"}`)},
	}
	schema, err := Schema(Offer{Tools: tools}, SchemaOptions{
		Upstream: "gh", Prefix: "gh.", PrincipalType: "Bot", ApproverType: "Person",
		Resources: map[string]ResourceMapping{"get_repo": {Type: "Repository", ID: "{owner}/{repo}"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"entity Bot;", "entity Person;", "entity Repository;", `action "gh.get_repo"`, "resource: [Repository]", "principal: [Bot]", "approved_by: Person"} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("schema lacks %q:\n%s", want, schema)
		}
	}
	if _, err := activate(t, map[string]string{"s.cedarschema": string(schema),
		"p.cedar": `permit (principal is Bot, action == Action::"gh.get_repo", resource is Repository) when { context.input.owner == "me" };`}); err != nil {
		t.Errorf("activation: %v", err)
	}

	for _, c := range []struct {
		name  string
		tools []*mcp.Tool
		opts  SchemaOptions
		want  string
	}{
		{"principal type with a space", tools, SchemaOptions{PrincipalType: "My Agent"}, "entity type"},
		{"mapping onto the task type", tools, SchemaOptions{Resources: map[string]ResourceMapping{"ping": {Type: "Task", ID: "x"}}}, "entity type"},
		{"a tool named grant", []*mcp.Tool{{Name: "grant", InputSchema: json.RawMessage(`{"type":"object"}`)}}, SchemaOptions{}, "declared twice"},
		{"input schema not an object", []*mcp.Tool{{Name: "x", InputSchema: json.RawMessage(`{"type":"string"}`)}}, SchemaOptions{}, "requires an object"},
	} {
		if _, err := Schema(Offer{Tools: c.tools}, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

// TestSchemaReadsOddSchemasLeniently: keywords of another form than the
// schema writer reads (draft-07 tuple items, a required that is no list, a
// property that is no schema) declare less, never something wrong.
func TestSchemaReadsOddSchemasLeniently(t *testing.T) {
	tools := []*mcp.Tool{{Name: "odd", InputSchema: json.RawMessage(`{"type":"object","properties":{
		"pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
		"five": 5,
		"name": {"type": "string"}
	},"required":"name"}`)}}
	schema, err := Schema(Offer{Tools: tools}, SchemaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"// pair: not declared, an array of no type", "// five: not declared, no type", "name?: String,"} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("schema lacks %q:\n%s", want, schema)
		}
	}
	if _, err := activate(t, map[string]string{"s.cedarschema": string(schema)}); err != nil {
		t.Error(err)
	}
	in, err := inputSchema(tools[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := conformsJSON(in, `{"pair": ["a", 1], "five": null}`); err != nil {
		t.Errorf("undeclared arguments were checked: %v", err)
	}
	if err := conformsJSON(in, `{"name": 1}`); err == nil {
		t.Error("a declared string argument of another type passed")
	}
}

// FuzzSchema: whatever input schemas, names, resource templates and
// prompt arguments an upstream sends, the schema either is refused or
// parses and validates; checking any arguments against the input schema
// never panics.
func FuzzSchema(f *testing.F) {
	f.Add("t", `{"type":"object","properties":{"a":{"type":"array","items":{"type":"object","properties":{"b c":{"type":"integer"}}}}}}`, "desc", `{"a":[{"b c":1}]}`, "x://{owner}/{repo}{?q*}", "topic")
	f.Add("x\"y", `{"type":"object","properties":{"\u0000\n":{"type":"string"}},"required":["\u0000\n"]}`, "a\u2028b", `{"\u0000\n":null}`, "x://{a.b}/{%20}{/a,a}", "in\"put")
	f.Fuzz(func(t *testing.T, name, input, desc, args, template, argument string) {
		if !json.Valid([]byte(input)) {
			return
		}
		offer := Offer{
			Tools:     []*mcp.Tool{{Name: name, Description: desc, InputSchema: json.RawMessage(input)}},
			Templates: []*mcp.ResourceTemplate{{URITemplate: template}},
			Prompts:   []*mcp.Prompt{{Name: desc, Arguments: []*mcp.PromptArgument{{Name: argument, Required: true}}}},
		}
		schema, err := Schema(offer, SchemaOptions{Upstream: desc})
		if err != nil {
			return
		}
		b, err := policystore.LoadFS(fstest.MapFS{"s.cedarschema": {Data: schema}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := policystore.Compile(b); err != nil {
			t.Fatalf("generated schema refused: %v\n%s", err, schema)
		}
		in, err := inputSchema(&mcp.Tool{Name: name, InputSchema: json.RawMessage(input)})
		if err != nil {
			t.Fatalf("Schema read the input schema, conforming cannot: %v", err)
		}
		_ = conformsJSON(in, args) // must not panic, whatever the arguments
	})
}

// notesServer is a real MCP server offering a resource, resource
// templates (one with an exploded variable), prompts with required and
// optional arguments, and a tool.
func notesServer(t *testing.T) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1"}, nil)
	read := func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "content"}}}, nil
	}
	s.AddResource(&mcp.Resource{URI: "notes://public/readme", Name: "readme"}, read)
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "notes://repos/{owner}/{repo}", Name: "repo"}, read)
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "notes://files{/path*}", Name: "file"}, read)
	got := func(_ context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: r.Params.Name}}}}, nil
	}
	s.AddPrompt(&mcp.Prompt{Name: "summarize", Arguments: []*mcp.PromptArgument{{Name: "topic", Required: true}, {Name: "style"}}}, got)
	s.AddPrompt(&mcp.Prompt{Name: "review", Arguments: []*mcp.PromptArgument{{Name: "topic", Required: true}, {Name: "pr-number", Required: true}}}, got)
	s.AddTool(&mcp.Tool{Name: "ping", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "pong"}}}, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// notesPolicies read what the schema declares of resource reads and
// prompts: the resource's uri, template variables behind has, a prompt
// argument every prompt requires without has, an optional one behind has.
const notesPolicies = `
@id("public-notes")
permit (principal is Agent, action == Action::"read_resource", resource in MCPServer::"notes")
when { resource.uri like "notes://public/*" };

@id("acme-repos")
permit (principal is Agent, action == Action::"read_resource", resource is MCPResource)
when { context.input has owner && context.input.owner == "acme" && context.input has repo };

@id("no-secret-repos")
@reason("secret repositories are not read by agents")
forbid (principal, action == Action::"read_resource", resource)
when { context.input has repo && context.input.repo like "secret*" };

@id("prompts")
permit (principal is Agent, action == Action::"get_prompt", resource in MCPServer::"notes")
when { context.input.topic != "payroll" }
unless { context.input has style && context.input.style == "verbose" };

@id("review-in-task")
forbid (principal, action == Action::"get_prompt", resource is MCPPrompt)
when { resource.name == "review" && !(context has task) };
`

// TestSchemaDeclaresResourcesAndPrompts: the schema of an upstream that
// offers resources and prompts declares read_resource and get_prompt with
// the entities and context the gateway decides them with; policies that
// read them validate in strict mode, and the gateway's decisions follow
// them.
func TestSchemaDeclaresResourcesAndPrompts(t *testing.T) {
	url := notesServer(t)
	schema := upstreamSchema(t, "notes", url)
	for _, want := range []string{
		"entity MCPResource in [MCPServer] {\n  uri: String,\n};",
		"entity MCPPrompt in [MCPServer] {\n  name: String,\n};",
		`action "read_resource" appliesTo`, "resource: [MCPResource]",
		`action "get_prompt" appliesTo`, "resource: [MCPPrompt]",
		"owner?: String,", "repo?: String,", "// path: not declared, exploded or repeated",
		"topic: String,", "style?: String,", `"pr-number"?: String,`,
	} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("schema lacks %q", want)
		}
	}
	files := map[string]string{"manifest.json": `{"revision": "notes"}`, "notes.cedarschema": string(schema)}
	for name, policy := range map[string]string{
		"an exploded template variable": `permit (principal, action == Action::"read_resource", resource) when { context.input.path == "a" };`,
		"an optional prompt argument":   `permit (principal, action == Action::"get_prompt", resource) when { context.input.style == "short" };`,
		"a URI on a prompt":             `permit (principal, action == Action::"get_prompt", resource) when { resource.uri == "x" };`,
	} {
		files["policies.cedar"] = policy
		if _, err := activate(t, files); err == nil {
			t.Errorf("a policy reading %s validated", name)
		}
	}
	files["policies.cedar"] = notesPolicies
	store, err := activate(t, files)
	if err != nil {
		t.Fatalf("activation refused the generated schema: %v", err)
	}

	cs := agentOf(t, engine.New(store), `Agent::"bot"`, UpstreamConfig{Name: "notes", URL: url, Prompts: PromptsDecide})
	for uri, want := range map[string]string{
		"notes://public/readme":      "",
		"notes://repos/acme/web":     "",
		"notes://repos/other/web":    "no policy permits",
		"notes://repos/acme/secrets": "secret repositories are not read by agents",
		"notes://files/a/b":          "no policy permits",
	} {
		_, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: uri})
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("read %s: %v, want %q", uri, err, want)
		}
	}
	for _, c := range []struct {
		prompt string
		args   map[string]string
		want   string // "" allowed
	}{
		{"summarize", map[string]string{"topic": "q3"}, ""},
		{"summarize", map[string]string{"topic": "payroll"}, "no policy permits"},
		{"summarize", map[string]string{"topic": "q3", "style": "verbose"}, "no policy permits"},
		{"summarize", map[string]string{"style": "short"}, `argument "topic" is required`},
		{"review", map[string]string{"topic": "q3"}, `argument "pr-number" is required`},
		{"review", map[string]string{"topic": "q3", "pr-number": "4"}, "policy review-in-task"},
	} {
		_, err := cs.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: c.prompt, Arguments: c.args})
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("get %s %v: %v, want %q", c.prompt, c.args, err, c.want)
		}
	}
}

// upstreamSchema reads what the upstream name at url offers, as `intentpdp
// mcp schema` does, and writes its schema.
func upstreamSchema(t *testing.T, name, url string) []byte {
	t.Helper()
	offer, err := ReadOffer(t.Context(), UpstreamConfig{Name: name, URL: url}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := Schema(offer, SchemaOptions{Upstream: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("schema:\n%s", schema)
	return schema
}
