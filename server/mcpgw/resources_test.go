package mcpgw

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// resourcePolicies open the public documents of upstream "docs", the acme
// repositories to alice, one prompt to alice, and no secret to anyone.
const resourcePolicies = `
@id("docs-public")
permit(principal is Agent, action == Action::"read_resource", resource in MCPServer::"docs")
when { resource.uri like "*://public/*" };

@id("acme-repos")
permit(principal == Agent::"alice", action == Action::"read_resource", resource in MCPServer::"docs")
when { context.input has owner && context.input.owner == "acme" };

@id("no-secrets")
@reason("secrets are never read by agents")
forbid(principal, action == Action::"read_resource", resource)
when { resource has uri && resource.uri like "*secret*" };

@id("summarize")
permit(principal == Agent::"alice", action == Action::"get_prompt", resource in MCPServer::"docs")
when { resource.name == "summarize" && context.input.topic != "payroll" };

@id("docs-wipe")
permit(principal == Agent::"alice", action == Action::"docs.vault.wipe", resource);
`

// library is a real MCP server offering resources, a resource template,
// prompts and tools, counting what reaches it.
type library struct {
	mu      sync.Mutex
	reached map[string]int // "read URI", "prompt NAME", "tool NAME"
}

// serve starts a library over Streamable HTTP offering the resources
// uris, the template SCHEME://repos/{owner}/{repo}, the prompts summarize
// and exfiltrate, and the tools named.
func serveLibrary(t *testing.T, scheme string, uris []string, tools ...string) (*library, string) {
	t.Helper()
	l := &library{reached: map[string]int{}}
	s := mcp.NewServer(&mcp.Implementation{Name: scheme, Version: "1"}, nil)
	read := func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		l.count("read " + r.Params.URI)
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "content of " + r.Params.URI}}}, nil
	}
	for _, uri := range uris {
		s.AddResource(&mcp.Resource{URI: uri, Name: uri}, read)
	}
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: scheme + "://repos/{owner}/{repo}", Name: "repo"}, read)
	for _, name := range []string{"summarize", "exfiltrate"} {
		s.AddPrompt(&mcp.Prompt{Name: name, Arguments: []*mcp.PromptArgument{{Name: "topic"}}}, func(_ context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			l.count("prompt " + name)
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: name + " " + r.Params.Arguments["topic"]}}}}, nil
		})
	}
	for _, name := range tools {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			l.count("tool " + name)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: scheme + " " + name}}}, nil
		})
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return l, srv.URL
}

func (l *library) count(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reached[what]++
}

func (l *library) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.reached {
		n += c
	}
	return n
}

func (l *library) times(what string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reached[what]
}

// shelves are two upstreams: docs, which also claims one of vault's URIs
// and offers a tool named like vault's, and vault, which no policy opens.
type shelves struct {
	f           *fixture
	docs, vault *library
	ups         []UpstreamConfig
}

func newShelves(t *testing.T) *shelves {
	docs, docsURL := serveLibrary(t, "docs", []string{"docs://public/readme", "docs://secret/keys", "vault://secret/keys"}, "wipe", "vault.wipe")
	vault, vaultURL := serveLibrary(t, "vault", []string{"vault://public/readme", "vault://secret/keys"}, "wipe")
	return &shelves{f: newFixture(t), docs: docs, vault: vault, ups: []UpstreamConfig{
		{Name: "docs", URL: docsURL, Prompts: PromptsDecide},
		{Name: "vault", URL: vaultURL},
	}}
}

func (s *shelves) agent(t *testing.T, principal string) *mcp.ClientSession {
	return s.f.agent(t, principal, s.ups...)
}

func resourcesListed(t *testing.T, cs *mcp.ClientSession) (uris, templates []string) {
	t.Helper()
	res, err := cs.ListResources(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Resources {
		uris = append(uris, r.URI)
	}
	tres, err := cs.ListResourceTemplates(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range tres.ResourceTemplates {
		templates = append(templates, rt.URITemplate)
	}
	slices.Sort(uris)
	slices.Sort(templates)
	return uris, templates
}

// rpcCode is the JSON-RPC error code of err, 0 when it carries none.
func rpcCode(err error) int64 {
	var e *jsonrpc.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestResourceListFilteredPerPrincipal(t *testing.T) {
	s := newShelves(t)
	// vault://public/readme is vault's, which no policy opens;
	// vault://secret/keys is claimed by both upstreams: ambiguous, hidden.
	for _, principal := range []string{`Agent::"alice"`, `Agent::"bob"`} {
		uris, templates := resourcesListed(t, s.agent(t, principal))
		if want := []string{"docs://public/readme"}; !slices.Equal(uris, want) {
			t.Errorf("%s sees resources %v, want %v", principal, uris, want)
		}
		// A template's resource is unknown until it is filled in: listed.
		if want := []string{"docs://repos/{owner}/{repo}", "vault://repos/{owner}/{repo}"}; !slices.Equal(templates, want) {
			t.Errorf("%s sees templates %v, want %v", principal, templates, want)
		}
	}
	if uris, _ := resourcesListed(t, s.agent(t, `User::"mallory"`)); len(uris) != 0 {
		t.Errorf("a user sees %v, want nothing", uris)
	}
	if n := s.docs.total() + s.vault.total(); n != 0 {
		t.Errorf("listing read %d resources upstream", n)
	}
}

func TestResourceReadsDecided(t *testing.T) {
	s := newShelves(t)
	alice, bob := s.agent(t, `Agent::"alice"`), s.agent(t, `Agent::"bob"`)
	for _, tc := range []struct {
		agent *mcp.ClientSession
		uri   string
		want  string // in the content, or in the error
		code  int64  // 0: allowed
	}{
		{alice, "docs://public/readme", "content of docs://public/readme", 0},
		{bob, "docs://public/readme", "content of docs://public/readme", 0},
		{alice, "docs://repos/acme/pdp", "content of docs://repos/acme/pdp", 0}, // the template's owner is context.input.owner
		{bob, "docs://repos/acme/pdp", "no policy permits", CodeDenied},
		{alice, "docs://repos/evil/pdp", "no policy permits", CodeDenied},
		{alice, "docs://secret/keys", "secrets are never read by agents", CodeDenied},
		{alice, "vault://public/readme", "no policy permits", CodeDenied},
		{alice, "vault://repos/acme/pdp", "no policy permits", CodeDenied}, // vault's template: decided as vault's
		{alice, "vault://secret/keys", "offered by upstreams docs and vault: ambiguous", CodeDenied},
		{alice, "vault://nowhere", "not found", mcp.CodeResourceNotFound}, // no upstream offers it: not decided, not sent
	} {
		res, err := tc.agent.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: tc.uri})
		if tc.code == 0 {
			if err != nil || len(res.Contents) != 1 || res.Contents[0].Text != tc.want {
				t.Errorf("read %s: %v %v, want %q", tc.uri, res, err, tc.want)
			}
			continue
		}
		if err == nil || rpcCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("read %s: %v (code %d), want code %d saying %q", tc.uri, err, rpcCode(err), tc.code, tc.want)
		}
		if tc.code == CodeDenied && !strings.Contains(err.Error(), "denied by intentpdp") {
			t.Errorf("read %s: %v does not say who denied it", tc.uri, err)
		}
		if strings.Contains(tc.want, "no policy") && !strings.Contains(err.Error(), "(decision ") {
			t.Errorf("read %s: %v carries no decision id", tc.uri, err)
		}
	}
	if n := s.docs.times("read docs://public/readme"); n != 2 {
		t.Errorf("docs://public/readme reached docs %d times, want 2", n)
	}
	if n := s.docs.times("read docs://repos/acme/pdp"); n != 1 {
		t.Errorf("docs://repos/acme/pdp reached docs %d times, want 1 (alice's)", n)
	}
	for _, denied := range []string{"read docs://repos/evil/pdp", "read docs://secret/keys", "read vault://secret/keys"} {
		if n := s.docs.times(denied); n != 0 {
			t.Errorf("%s reached docs %d times", denied, n)
		}
	}
	if n := s.vault.total(); n != 0 {
		t.Errorf("vault was reached %d times: %v", n, s.vault.reached)
	}
}

// TestNamesCannotCrossUpstreams: a tool named like another upstream's
// prefixed tool runs on its own upstream and is decided as its own
// action; the other upstream's tool stays denied.
func TestNamesCannotCrossUpstreams(t *testing.T) {
	s := newShelves(t)
	alice := s.agent(t, `Agent::"alice"`)
	if got, want := listed(t, alice, nil), []string{"docs.vault.wipe"}; !slices.Equal(got, want) {
		t.Errorf("alice sees tools %v, want %v", got, want)
	}
	if res, text := call(t, alice, "docs.vault.wipe", map[string]any{}, nil); res.IsError || text != "docs vault.wipe" {
		t.Errorf("docs.vault.wipe: error=%v %q, want docs' own tool", res.IsError, text)
	}
	if res, text := call(t, alice, "vault.wipe", map[string]any{}, nil); !res.IsError || !strings.Contains(text, "no policy permits") {
		t.Errorf("vault.wipe: error=%v %q, want a denial", res.IsError, text)
	}
	if _, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "vault.vault.wipe", Arguments: map[string]any{}}); err == nil {
		t.Error("a tool no upstream offers was called")
	}
	if n := s.vault.total(); n != 0 {
		t.Errorf("vault was reached %d times: %v", n, s.vault.reached)
	}
	if n := s.docs.times("tool vault.wipe"); n != 1 {
		t.Errorf("docs' vault.wipe ran %d times, want 1", n)
	}
}

func TestPromptsDecidedWhenConfigured(t *testing.T) {
	s := newShelves(t)
	alice, bob := s.agent(t, `Agent::"alice"`), s.agent(t, `Agent::"bob"`)
	prompts := func(cs *mcp.ClientSession) []string {
		res, err := cs.ListPrompts(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range res.Prompts {
			names = append(names, p.Name)
		}
		return names
	}
	// vault's prompts are off: not offered at all.
	if got, want := prompts(alice), []string{"docs.summarize"}; !slices.Equal(got, want) {
		t.Errorf("alice sees prompts %v, want %v", got, want)
	}
	if got := prompts(bob); len(got) != 0 {
		t.Errorf("bob sees prompts %v, want none", got)
	}
	get := func(cs *mcp.ClientSession, name, topic string) (string, error) {
		res, err := cs.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: name, Arguments: map[string]string{"topic": topic}})
		if err != nil {
			return "", err
		}
		return res.Messages[0].Content.(*mcp.TextContent).Text, nil
	}
	if text, err := get(alice, "docs.summarize", "cedar"); err != nil || text != "summarize cedar" {
		t.Errorf("docs.summarize cedar: %q %v", text, err)
	}
	for _, tc := range []struct {
		agent *mcp.ClientSession
		name  string
		topic string
		want  string
	}{
		{alice, "docs.summarize", "payroll", "no policy permits"}, // the arguments are context.input
		{bob, "docs.summarize", "cedar", "no policy permits"},
		{alice, "docs.exfiltrate", "cedar", "no policy permits"},
		{alice, "docs.summarize", strings.Repeat("x", engine.DefaultLimits.MaxMessageBytes), "over the limit"},
	} {
		if _, err := get(tc.agent, tc.name, tc.topic); err == nil || rpcCode(err) != CodeDenied || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %.20q: %.300v, want a denial saying %q", tc.name, tc.topic, err, tc.want)
		}
	}
	if _, err := get(alice, "vault.summarize", "cedar"); err == nil {
		t.Error("vault.summarize was answered; vault's prompts are off")
	}
	if n := s.docs.times("prompt summarize"); n != 1 {
		t.Errorf("summarize reached docs %d times, want 1", n)
	}
	if n := s.docs.times("prompt exfiltrate") + s.vault.total(); n != 0 {
		t.Errorf("denied prompts reached upstreams %d times", n)
	}
}

func TestPromptsOffByDefault(t *testing.T) {
	f := newFixture(t)
	lib, url := serveLibrary(t, "docs", nil)
	cs := f.agent(t, `Agent::"alice"`, UpstreamConfig{Name: "docs", URL: url})
	if caps := cs.InitializeResult().Capabilities; caps.Prompts != nil {
		t.Errorf("prompts offered with prompts off: %+v", caps.Prompts)
	}
	if _, err := cs.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "summarize", Arguments: map[string]string{"topic": "cedar"}}); err == nil {
		t.Error("a prompt was answered with prompts off")
	}
	if n := lib.times("prompt summarize"); n != 0 {
		t.Errorf("summarize reached the upstream %d times", n)
	}
}

func TestResourceReadsFailClosed(t *testing.T) {
	lib, url := serveLibrary(t, "docs", []string{"docs://public/readme"})
	cs := agentOf(t, engine.New(policystore.NewStore()), `Agent::"alice"`, UpstreamConfig{Name: "docs", URL: url, Prompts: PromptsDecide})
	if uris, _ := resourcesListed(t, cs); len(uris) != 0 {
		t.Errorf("with no bundle the agent sees %v", uris)
	}
	if _, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "docs://public/readme"}); rpcCode(err) != CodeDenied {
		t.Errorf("read with no bundle: %v", err)
	}
	if _, err := cs.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "summarize"}); rpcCode(err) != CodeDenied {
		t.Errorf("prompt with no bundle: %v", err)
	}
	if n := lib.total(); n != 0 {
		t.Errorf("the upstream was reached %d times with no bundle", n)
	}
}

func TestConfigPrompts(t *testing.T) {
	for _, v := range []string{"", PromptsOff, PromptsDecide} {
		c := Config{Upstreams: []UpstreamConfig{{Name: "docs", URL: "http://127.0.0.1:1/mcp", Prompts: v}}}
		if err := c.Validate(); err != nil {
			t.Errorf("prompts %q: %v", v, err)
		}
	}
	c := Config{Upstreams: []UpstreamConfig{{Name: "docs", URL: "http://127.0.0.1:1/mcp", Prompts: "allow"}}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `want "off" or "decide"`) {
		t.Errorf("prompts \"allow\": %v", err)
	}
}

// TestBadUpstreamDefinitionsNotOffered: definitions the MCP server
// refuses (a tool schema not of type object, a URI or template that does
// not parse) are left out, and the rest is offered.
func TestBadUpstreamDefinitionsNotOffered(t *testing.T) {
	f := newFixture(t)
	s := mcp.NewServer(&mcp.Implementation{Name: "docs", Version: "1"}, nil)
	for _, name := range []string{"get_repo", "pay"} {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	}
	read := func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "x"}}}, nil
	}
	s.AddResource(&mcp.Resource{URI: "docs://public/readme"}, read)
	s.AddResource(&mcp.Resource{URI: "docs://public/other"}, read)
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "docs://repos/{owner}/{repo}"}, read)
	// The answers are corrupted on the way out, as a server not built on
	// this SDK could send them.
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, r mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, r)
			switch list := res.(type) {
			case *mcp.ListToolsResult:
				for i, tl := range list.Tools {
					if tl.Name == "pay" {
						bad := *tl
						bad.InputSchema = json.RawMessage(`{"type":"string"}`)
						list.Tools[i] = &bad
					}
				}
			case *mcp.ListResourcesResult:
				for i, rs := range list.Resources {
					if rs.URI == "docs://public/other" {
						list.Resources[i] = &mcp.Resource{URI: "docs://%zz"}
					}
				}
			case *mcp.ListResourceTemplatesResult:
				list.ResourceTemplates = append(list.ResourceTemplates, &mcp.ResourceTemplate{URITemplate: "docs://{unclosed"})
			}
			return res, err
		}
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	cs := f.agent(t, `Agent::"alice"`, UpstreamConfig{Name: "docs", URL: srv.URL})
	if got, want := listed(t, cs, nil), []string{"get_repo"}; !slices.Equal(got, want) {
		t.Errorf("tools %v, want %v", got, want)
	}
	uris, templates := resourcesListed(t, cs)
	if want := []string{"docs://public/readme"}; !slices.Equal(uris, want) {
		t.Errorf("resources %v, want %v", uris, want)
	}
	if want := []string{"docs://repos/{owner}/{repo}"}; !slices.Equal(templates, want) {
		t.Errorf("templates %v, want %v", templates, want)
	}
}
