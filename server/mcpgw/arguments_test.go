package mcpgw

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/server/engine"
)

// TestArgumentsOfTheWrongTypeAreRefused: a forbid that reads an argument
// must not be skipped because the argument has another type than the
// schema says: such calls are refused before the decision, and never
// reach the upstream.
func TestArgumentsOfTheWrongTypeAreRefused(t *testing.T) {
	url := schemaServer(t)
	store, err := activate(t, map[string]string{"p.cedar": `
@id("lists-open") permit (principal, action == Action::"list_issues", resource);
@id("issues-open") permit (principal, action == Action::"create_issue", resource);
@id("list-at-most-50") forbid (principal, action == Action::"list_issues", resource)
when { context.input has limit && context.input.limit > 50 };
@id("no-drafts") forbid (principal, action == Action::"create_issue", resource)
when { context.input has draft && context.input.draft };
@id("labels-open") permit (principal, action == Action::"label", resource);
@id("colored") forbid (principal, action == Action::"label", resource)
when { context.input has options && !(context.input.options has color) };
`})
	if err != nil {
		t.Fatal(err)
	}
	cs := agentOf(t, engine.New(store), `Agent::"bot"`, UpstreamConfig{Name: "github", URL: url})
	for _, c := range []struct {
		tool, args string
		want       string // "" allowed
	}{
		{"list_issues", `{"repo": "r", "limit": 10}`, ""},
		{"list_issues", `{"repo": "r", "limit": 10, "score": 0.5}`, ""}, // undeclared: unchecked
		{"list_issues", `{"repo": "r", "limit": 500}`, "policy list-at-most-50"},
		{"list_issues", `{"repo": "r", "limit": "500"}`, "arguments.limit: want a whole number"},
		{"list_issues", `{"repo": "r", "limit": 500.0}`, "arguments.limit: want a whole number"},
		{"list_issues", `{"repo": "r", "filter": {"state": 1}}`, "arguments.filter.state: want a string"},
		{"list_issues", `{"repo": "r", "filter": {"state": "open", "authors": [{"login": 7}]}}`, "arguments.filter.authors[0].login: want a string"},
		{"list_issues", `{"limit": 5}`, `arguments: "repo" is required`},
		{"create_issue", `{"owner": "o", "repo": "r", "title": "t", "draft": "true"}`, "arguments.draft: want true or false"},
		{"create_issue", `{"owner": "o", "repo": "r", "title": "t", "labels": "bug"}`, "arguments.labels: want an array"},
		{"create_issue", `{"owner": "o", "repo": "r", "title": "t", "draft": true}`, "policy no-drafts"},
		{"create_issue", `[1]`, "arguments"},
		{"label", `{"options": {"color": "red"}}`, ""},
		{"label", `{"options": {}}`, "policy colored"},
		// Cedar's JSON escapes make an extension value or an entity of
		// what the schema declares a record: reading it would fail, and
		// the forbid be skipped.
		{"label", `{"options": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}}`, "arguments.options: want an object"},
		{"label", `{"options": {"__entity": {"type": "Agent", "id": "bot"}}}`, "arguments.options: want an object"},
	} {
		res, text := call(t, cs, c.tool, json.RawMessage(c.args), nil)
		switch {
		case c.want == "" && res.IsError:
			t.Errorf("%s %s: refused: %s", c.tool, c.args, text)
		case c.want != "" && (!res.IsError || !strings.Contains(text, c.want) || !strings.Contains(text, "denied by intentpdp")):
			t.Errorf("%s %s: %q, want a refusal saying %q", c.tool, c.args, text, c.want)
		}
	}
}

// BenchmarkConforms is the check's cost on a typical call (a typed tool
// of the example server, five arguments), the arguments already decoded
// for the decision.
func BenchmarkConforms(b *testing.B) {
	in, err := inputSchema(&mcp.Tool{Name: "create_issue", InputSchema: json.RawMessage(`{"type":"object","properties":{
		"owner":{"type":"string"},"repo":{"type":"string"},"title":{"type":"string"},"body":{"type":"string"},
		"labels":{"type":["null","array"],"items":{"type":"string"}}},"required":["owner","repo","title"]}`)})
	if err != nil {
		b.Fatal(err)
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(`{"owner":"acme","repo":"web","title":"Flaky login test","body":"It fails one run in ten.","labels":["ci","flaky"]}`), &args); err != nil {
		b.Fatal(err)
	}
	if err := in.conform(args, "arguments"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = in.conform(args, "arguments")
	}
}

// conformsJSON decodes args as the gateway does (numbers as written) and
// checks them against s.
func conformsJSON(s *jsonSchema, args string) error {
	dec := json.NewDecoder(strings.NewReader(args))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return s.conform(v, "arguments")
}

// TestCallWithoutArguments: a tools/call that sends no arguments at all
// is decided on an empty context.input (present, so a policy reading it
// does not fail to evaluate), and a tool whose schema requires arguments
// refuses it before the decision.
func TestCallWithoutArguments(t *testing.T) {
	url := schemaServer(t)
	store, err := activate(t, map[string]string{"p.cedar": `
@id("bare-ping") permit (principal, action == Action::"ping", resource) when { context.input == {} };
@id("no-x") @reason("x is never passed") forbid (principal, action == Action::"ping", resource) when { context.input has x };
@id("delete-open") permit (principal, action == Action::"repo.delete", resource);
`})
	if err != nil {
		t.Fatal(err)
	}
	cs := agentOf(t, engine.New(store), `Agent::"bot"`, UpstreamConfig{Name: "github", URL: url})
	for _, c := range []struct {
		tool, args string // args "": no arguments member at all
		want       string // "" allowed
	}{
		{"ping", "", ""},
		{"ping", `{}`, ""},
		{"ping", `{"x": 1}`, "x is never passed"},
		{"ping", `{"y": 1}`, "no policy permits"},
		{"repo.delete", "", `is required`},
		{"repo.delete", `{"confirm": "yes"}`, `arguments: "repo" is required`},
		{"repo.delete", `{"repo": "r", "confirm": "yes"}`, ""},
	} {
		var args any
		if c.args != "" {
			args = json.RawMessage(c.args)
		}
		res, text := call(t, cs, c.tool, args, nil)
		switch {
		case c.want == "" && res.IsError:
			t.Errorf("%s %s: refused: %s", c.tool, c.args, text)
		case c.want != "" && (!res.IsError || !strings.Contains(text, c.want)):
			t.Errorf("%s %s: %q, want a refusal saying %q", c.tool, c.args, text, c.want)
		}
	}
}
