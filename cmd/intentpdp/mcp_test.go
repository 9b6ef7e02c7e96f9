package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpBundle lets every agent read a repository, reviewer write one, and no
// one delete one.
var mcpBundle = map[string]string{
	"manifest.json": `{"revision": "mcp-e2e"}`,
	"policies.cedar": `
@id("reads-open")
permit (principal is Agent, action == Action::"get_repo", resource == MCPServer::"repos");

@id("reviewer-comments")
permit (principal == Agent::"reviewer", action == Action::"comment", resource)
when { context.input.body like "*LGTM*" };

@id("never-delete")
@reason("deleting a repository is never delegated to agents")
forbid (principal, action == Action::"delete_repo", resource);

@id("delete-otherwise")
permit (principal, action == Action::"delete_repo", resource);

@id("readmes-open")
permit (principal is Agent, action == Action::"read_resource", resource in MCPServer::"repos")
when { resource.uri like "*/README" };
`,
}

// repoServer is a real MCP server over Streamable HTTP on loopback that
// counts the calls reaching it.
func repoServer(t *testing.T) (url string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	s := mcp.NewServer(&mcp.Implementation{Name: "repos", Version: "1"}, nil)
	for _, name := range []string{"get_repo", "comment", "delete_repo"} {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			calls.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done: " + name}}}, nil
		})
	}
	for _, uri := range []string{"repo://acme/pdp/README", "repo://acme/pdp/secrets"} {
		s.AddResource(&mcp.Resource{URI: uri, Name: uri}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			calls.Add(1)
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, Text: "contents"}}}, nil
		})
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

func writeMCPConfig(t *testing.T, upstreamURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(`{"upstreams": [{"name": "repos", "url": "`+upstreamURL+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

func callText(t *testing.T, cs *mcp.ClientSession, name string, args any) (bool, string) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	return !res.IsError, strings.Join(text, " ")
}

// TestServeMCPGateway runs the real binary with the MCP gateway listener:
// agents prove who they are with JWT-SVIDs, see only the tools their
// policy lets them use, and every call is decided and logged. The HTTP
// write timeout is set to a nanosecond, past before any response is
// written: the MCP listener, whose SSE streams must outlive it, does not
// take it.
func TestServeMCPGateway(t *testing.T) {
	upstream, calls := repoServer(t)
	svids := newJWTSVIDIssuer(t)
	logPath := filepath.Join(t.TempDir(), "decisions.jsonl")
	p := startServe(t, nil,
		"--bundle", writeBundleFiles(t, mcpBundle),
		"--mcp-listen", "127.0.0.1:0", "--mcp-config", writeMCPConfig(t, upstream),
		"--token-issuer", "spiffe://example.org", "--token-audience", "intentpdp",
		"--spiffe-jwt-bundle", svids.bundle, "--principal-spiffe-prefix", "spiffe://example.org/agent/",
		"--decision-log", logPath, "--http-write-timeout", "1ns")
	p.mu.Lock()
	endpoint := "http://" + p.mcpAddr + "/mcp"
	p.mu.Unlock()

	// No token: 401 with the challenge naming the resource metadata.
	resp, err := http.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// A token signed by another key: 401 too, before MCP sees it.
	forged := newJWTSVIDIssuer(t).mint(t, "spiffe://example.org/agent/reviewer")
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize"}`))
	req.Header.Set("Authorization", "Bearer "+forged)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("forged token: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}

	agent := func(name string) *mcp.ClientSession {
		tr := &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearerTransport{svids.mint(t, "spiffe://example.org/agent/"+name)}}}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: name}, nil).Connect(t.Context(), tr, nil)
		if err != nil {
			t.Fatalf("%s connects: %v", name, err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	reviewer, helper := agent("reviewer"), agent("helper")
	if got, want := toolNames(t, reviewer), []string{"comment", "get_repo"}; !slices.Equal(got, want) {
		t.Errorf("reviewer sees %v, want %v", got, want)
	}
	if got, want := toolNames(t, helper), []string{"get_repo"}; !slices.Equal(got, want) {
		t.Errorf("helper sees %v, want %v", got, want)
	}
	if ok, text := callText(t, reviewer, "comment", map[string]any{"body": "LGTM"}); !ok {
		t.Errorf("reviewer's LGTM comment denied: %s", text)
	}
	before := calls.Load()
	for _, c := range []struct {
		agent *mcp.ClientSession
		tool  string
		args  map[string]any
		why   string
	}{
		{reviewer, "comment", map[string]any{"body": "needs work"}, "no policy permits"},
		{helper, "comment", map[string]any{"body": "LGTM"}, "no policy permits"},
		{reviewer, "delete_repo", map[string]any{}, "deleting a repository is never delegated to agents"},
	} {
		if ok, text := callText(t, c.agent, c.tool, c.args); ok || !strings.Contains(text, c.why) {
			t.Errorf("%s %v: allowed=%v %q, want a denial saying %q", c.tool, c.args, ok, text, c.why)
		}
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("%d denied calls reached the upstream", n)
	}
	res, err := helper.ListResources(t.Context(), nil)
	if err != nil || len(res.Resources) != 1 || res.Resources[0].URI != "repo://acme/pdp/README" {
		t.Errorf("helper lists resources %v (%v), want the README only", res, err)
	}
	if _, err := helper.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "repo://acme/pdp/README"}); err != nil {
		t.Errorf("README denied: %v", err)
	}
	before = calls.Load()
	if _, err := helper.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "repo://acme/pdp/secrets"}); err == nil || !strings.Contains(err.Error(), "no policy permits") {
		t.Errorf("secrets: %v, want a denial", err)
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("a denied read reached the upstream")
	}
	p.stop(t)
	var mcpLines int
	for _, l := range readLog(t, logPath) {
		if l.FrontEnd == "mcp" {
			mcpLines++
		}
	}
	if mcpLines != 6 {
		t.Errorf("decision log has %d mcp decisions, want 6 (one per call and read)", mcpLines)
	}
}

// TestMCPProxyOverStdio runs `intentpdp mcp proxy` as a desktop agent
// would: MCP on stdin/stdout, a configured principal, the bundle deciding.
func TestMCPProxyOverStdio(t *testing.T) {
	upstream, calls := repoServer(t)
	agentOut, proxyIn := io.Pipe()
	proxyOut, agentIn := io.Pipe()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // bounds a hung proxy; not a timing assertion
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- mcpProxy(ctx, []string{"--bundle", writeBundleFiles(t, mcpBundle), "--config", writeMCPConfig(t, upstream), "--principal", `Agent::"helper"`}, agentOut, agentIn, io.Discard)
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "desktop"}, nil).Connect(ctx, &mcp.IOTransport{Reader: proxyOut, Writer: proxyIn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := toolNames(t, cs), []string{"get_repo"}; !slices.Equal(got, want) {
		t.Errorf("helper sees %v, want %v", got, want)
	}
	if ok, text := callText(t, cs, "get_repo", map[string]any{"repo": "pdp"}); !ok {
		t.Errorf("get_repo denied: %s", text)
	}
	if ok, text := callText(t, cs, "delete_repo", map[string]any{"repo": "pdp"}); ok || !strings.Contains(text, "never delegated") {
		t.Errorf("delete_repo: allowed=%v %q", ok, text)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("upstream reached %d times, want 1", n)
	}
	cs.Close()
	cancel()
	<-done
}

func TestMCPProxyNeedsAPrincipal(t *testing.T) {
	err := mcpProxy(t.Context(), []string{"--", "true"}, strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--principal") {
		t.Errorf("no principal: %v", err)
	}
}

func TestServeMCPListenNeedsTokens(t *testing.T) {
	err := serveWith(t.Context(), slices.Concat(loopbackFlags, []string{"--mcp-listen", "127.0.0.1:0", "--mcp-config", "x.json"}), io.Discard, listenTCP)
	if err == nil || !strings.Contains(err.Error(), "--token-issuer") {
		t.Errorf("mcp-listen without token verification: %v", err)
	}
}
