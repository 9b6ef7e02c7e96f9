package mcpgw

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grants"
)

const policies = `
@id("read-open")
permit(principal is Agent, action == Action::"get_repo", resource);

@id("pay-small")
@reason("payments under 100 only")
permit(principal == Agent::"alice", action == Action::"pay", resource)
when { context.input.amount < 100 };

@id("pay-fraction")
permit(principal == Agent::"alice", action == Action::"tip", resource)
when { context.input.amount.lessThan(decimal("1.5")) };

@id("write-in-task")
permit(principal is Agent, action == Action::"create_issue", resource)
when { context has task && context.task.assignee == principal && action in context.task.actions };

@id("repo-owner")
permit(principal is Agent, action == Action::"delete_repo", resource);

@id("never-delete")
@reason("deleting a repository is never delegated to agents")
forbid(principal, action == Action::"delete_repo", resource);

@id("crash-allowed")
permit(principal is Agent, action == Action::"crash", resource);
`

// upstream is a real MCP server that counts the calls that reach it and
// records their arguments.
type upstream struct {
	mu    sync.Mutex
	calls map[string][]string
}

func (u *upstream) server() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "repos", Version: "1"}, nil)
	for _, name := range []string{"get_repo", "pay", "tip", "create_issue", "delete_repo", "crash"} {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)}, func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if name == "crash" && os.Getenv(childEnv) != "" {
				os.Exit(3) // the stdio upstream dies mid-call
			}
			u.mu.Lock()
			defer u.mu.Unlock()
			u.calls[name] = append(u.calls[name], string(r.Params.Arguments))
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok " + name}}}, nil
		})
	}
	return s
}

func (u *upstream) reached(name string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.calls[name])
}

const childEnv = "INTENTPDP_MCPGW_TEST_UPSTREAM"

// TestMain lets the test binary serve as a stdio MCP upstream.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		u := &upstream{calls: map[string][]string{}}
		if err := u.server().Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type fixture struct {
	upstream *upstream
	grants   *grants.Store
	eng      *engine.Engine
	url      string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	b, err := policystore.LoadFS(fstest.MapFS{"p.cedar": {Data: []byte(policies + resourcePolicies)}})
	if err != nil {
		t.Fatal(err)
	}
	store := policystore.NewStore(policystore.WithRuntimeEntityTypes(grants.TaskType))
	if _, err := store.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	gs := grants.NewMemory()
	u := &upstream{calls: map[string][]string{}}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return u.server() }, nil))
	t.Cleanup(srv.Close)
	return &fixture{upstream: u, grants: gs, url: srv.URL,
		eng: engine.New(store, engine.WithEnricher(gs), engine.WithConsumer(gs))}
}

// agent connects a real MCP client to a gateway over in-memory
// transports, as principal.
func (f *fixture) agent(t *testing.T, principal string, ups ...UpstreamConfig) *mcp.ClientSession {
	t.Helper()
	if len(ups) == 0 {
		ups = []UpstreamConfig{{Name: "repos", URL: f.url}}
	}
	return agentOf(t, f.eng, principal, ups...)
}

// agentOf connects a real MCP client, as principal, to a gateway deciding
// through eng, over in-memory transports.
func agentOf(t *testing.T, eng *engine.Engine, principal string, ups ...UpstreamConfig) *mcp.ClientSession {
	t.Helper()
	g, err := New(context.Background(), eng, Config{Principal: principal, Upstreams: ups}, engine.DefaultLimits, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	ct, st := mcp.NewInMemoryTransports()
	ss, err := g.Server().Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func listed(t *testing.T, cs *mcp.ClientSession, meta mcp.Meta) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), &mcp.ListToolsParams{Meta: meta})
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

func call(t *testing.T, cs *mcp.ClientSession, name string, args any, meta mcp.Meta) (*mcp.CallToolResult, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args, Meta: meta})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	return res, strings.Join(text, " ")
}

func TestToolListFilteredPerPrincipal(t *testing.T) {
	f := newFixture(t)
	if got, want := listed(t, f.agent(t, `Agent::"alice"`), nil), []string{"crash", "get_repo", "pay", "tip"}; !slices.Equal(got, want) {
		t.Errorf("alice sees %v, want %v", got, want)
	}
	// bob may pay nothing, and no one may delete a repository, though a
	// permit matches: the forbid wins for every argument.
	if got, want := listed(t, f.agent(t, `Agent::"bob"`), nil), []string{"crash", "get_repo"}; !slices.Equal(got, want) {
		t.Errorf("bob sees %v, want %v", got, want)
	}
	// A non-agent principal matches no permit's scope.
	if got := listed(t, f.agent(t, `User::"mallory"`), nil); len(got) != 0 {
		t.Errorf("a user sees %v, want nothing", got)
	}
}

func TestAllowedCallReachesUpstreamUnchanged(t *testing.T) {
	f := newFixture(t)
	cs := f.agent(t, `Agent::"alice"`)
	args := json.RawMessage(`{"owner":"acme","repo":"pdp","amount":42,"nested":{"list":[1,"two",true]}}`)
	res, text := call(t, cs, "pay", args, nil)
	if res.IsError {
		t.Fatalf("pay 42 denied: %s", text)
	}
	got := f.upstream.reached("pay")
	if len(got) != 1 {
		t.Fatalf("upstream saw %d calls, want 1", len(got))
	}
	var sent, received any
	json.Unmarshal(args, &sent)
	json.Unmarshal([]byte(got[0]), &received)
	if !jsonEqual(sent, received) {
		t.Errorf("upstream received %s, want %s", got[0], args)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestDeniedCallsNeverReachUpstream(t *testing.T) {
	f := newFixture(t)
	alice := f.agent(t, `Agent::"alice"`)
	for _, tc := range []struct {
		principal *mcp.ClientSession
		tool      string
		args      any
		reason    string
	}{
		{alice, "pay", map[string]any{"amount": 100}, "no policy permits"},
		{alice, "pay", map[string]any{"amount": "99"}, "no policy permits"}, // a string is not a Long: the condition errors, the permit is skipped
		{alice, "pay", map[string]any{}, "no policy permits"},
		{alice, "delete_repo", map[string]any{"owner": "acme", "repo": "pdp"}, "deleting a repository is never delegated to agents"},
		{alice, "create_issue", map[string]any{"title": "x"}, "no policy permits"},
		{alice, "create_issue", nil, "no live grant for task T-none"},
		{f.agent(t, `Agent::"bob"`), "pay", map[string]any{"amount": 1}, "no policy permits"},
		{alice, "tip", map[string]any{"amount": 1.23456}, "INVALID_REQUEST"}, // more digits than Cedar's decimal holds
		{alice, "tip", map[string]any{"amount": 1e300}, "INVALID_REQUEST"},
		{alice, "pay", map[string]any{"amount": nil}, "INVALID_REQUEST"},
	} {
		var meta mcp.Meta
		if strings.Contains(tc.reason, "T-none") {
			meta = mcp.Meta{MetaTaskID: "T-none"}
		}
		res, text := call(t, tc.principal, tc.tool, tc.args, meta)
		if !res.IsError || !strings.Contains(text, tc.reason) || !strings.Contains(text, "denied by intentpdp") {
			t.Errorf("%s %v: got error=%v %q, want a denial saying %q", tc.tool, tc.args, res.IsError, text, tc.reason)
		}
	}
	for _, tool := range []string{"pay", "delete_repo", "create_issue", "tip"} {
		if n := len(f.upstream.reached(tool)); n != 0 {
			t.Errorf("%s reached the upstream %d times after denials", tool, n)
		}
	}
}

func TestFractionsAreDecimals(t *testing.T) {
	f := newFixture(t)
	res, text := call(t, f.agent(t, `Agent::"alice"`), "tip", map[string]any{"amount": 1.25}, nil)
	if res.IsError {
		t.Fatalf("tip 1.25 denied: %s", text)
	}
	res, _ = call(t, f.agent(t, `Agent::"alice"`), "tip", map[string]any{"amount": 1.5}, nil)
	if !res.IsError {
		t.Error("tip 1.5 allowed; the policy wants less than 1.5")
	}
}

func TestWriteToolInsideALiveGrantOnly(t *testing.T) {
	f := newFixture(t)
	alice := f.agent(t, `Agent::"alice"`)
	g, err := f.grants.Grant(grants.Spec{
		TaskID: "T-7", Assignee: types.NewEntityUID("Agent", "alice"),
		Actions: []types.EntityUID{types.NewEntityUID("Action", "create_issue")}, Scope: []types.EntityUID{types.NewEntityUID("MCPServer", "repos")},
		TTL: time.Hour, ApprovedBy: types.NewEntityUID("User", "ops"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.grants.Create(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	task := mcp.Meta{MetaTaskID: "T-7", MetaPurpose: "triage"}
	if got := listed(t, alice, task); !slices.Contains(got, "create_issue") {
		t.Errorf("inside T-7 alice sees %v, want create_issue listed", got)
	}
	if got := listed(t, alice, nil); slices.Contains(got, "create_issue") {
		t.Errorf("outside any task alice sees %v, want create_issue hidden", got)
	}
	if res, text := call(t, alice, "create_issue", map[string]any{"title": "bug"}, task); res.IsError {
		t.Fatalf("create_issue inside T-7 denied: %s", text)
	}
	// bob names alice's task: the grant is live but not his.
	bob := f.agent(t, `Agent::"bob"`)
	if res, _ := call(t, bob, "create_issue", map[string]any{"title": "bug"}, task); !res.IsError {
		t.Error("bob used alice's grant")
	}
	if _, err := f.grants.Revoke(context.Background(), "T-7"); err != nil {
		t.Fatal(err)
	}
	if res, text := call(t, alice, "create_issue", map[string]any{"title": "again"}, task); !res.IsError || !strings.Contains(text, "no live grant for task T-7 (revoked)") {
		t.Errorf("after revocation: error=%v %q", res.IsError, text)
	}
	if n := len(f.upstream.reached("create_issue")); n != 1 {
		t.Errorf("create_issue reached the upstream %d times, want 1", n)
	}
}

func TestResourceMappedFromArguments(t *testing.T) {
	f := newFixture(t)
	cs := f.agent(t, `Agent::"alice"`, UpstreamConfig{Name: "repos", URL: f.url,
		Resources: map[string]ResourceMapping{"get_repo": {Type: "Repository", ID: "{owner}/{repo}"}}})
	if res, text := call(t, cs, "get_repo", map[string]any{"owner": "acme", "repo": "pdp"}, nil); res.IsError {
		t.Fatalf("get_repo denied: %s", text)
	}
	if res, text := call(t, cs, "get_repo", map[string]any{"owner": "acme"}, nil); !res.IsError || !strings.Contains(text, `argument "repo"`) {
		t.Errorf("get_repo without repo: error=%v %q", res.IsError, text)
	}
}

func TestFailsClosed(t *testing.T) {
	f := newFixture(t)
	cs := f.agent(t, `Agent::"alice"`)
	// Oversize arguments are refused before any decision.
	big := map[string]any{"amount": 1, "blob": strings.Repeat("x", engine.DefaultLimits.MaxMessageBytes)}
	if res, text := call(t, cs, "pay", big, nil); !res.IsError || !strings.Contains(text, "over the limit") {
		t.Errorf("oversize: error=%v %.200q", res.IsError, text)
	}
	// The PDP's store emptied: every call denied, nothing listed.
	empty := engine.New(policystore.NewStore())
	g, err := New(context.Background(), empty, Config{Principal: `Agent::"alice"`, Upstreams: []UpstreamConfig{{Name: "repos", URL: f.url}}}, engine.DefaultLimits, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	st, ct := mcp.NewInMemoryTransports()
	if _, err := g.Server().Connect(context.Background(), st, nil); err != nil {
		t.Fatal(err)
	}
	ecs, err := mcp.NewClient(&mcp.Implementation{Name: "agent"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ecs.Close()
	if got := listed(t, ecs, nil); len(got) != 0 {
		t.Errorf("with no bundle the agent sees %v", got)
	}
	if res, _ := call(t, ecs, "get_repo", map[string]any{}, nil); !res.IsError {
		t.Error("a call was allowed with no bundle")
	}
	if n := len(f.upstream.reached("get_repo")); n != 0 {
		t.Errorf("get_repo reached the upstream %d times with no bundle", n)
	}
}

func TestStdioUpstreamCrashIsAnErrorAndReconnects(t *testing.T) {
	f := newFixture(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cs := f.agent(t, `Agent::"alice"`, UpstreamConfig{Name: "repos", Command: []string{exe}, Env: map[string]string{childEnv: "1"}})
	if res, text := call(t, cs, "get_repo", map[string]any{"repo": "pdp"}, nil); res.IsError {
		t.Fatalf("get_repo over stdio: %s", text)
	}
	res, text := call(t, cs, "crash", map[string]any{}, nil)
	if !res.IsError || !strings.Contains(text, "upstream repos failed") {
		t.Fatalf("crash mid-call: error=%v %q, want an upstream failure", res.IsError, text)
	}
	// The next call starts the upstream anew.
	if res, text := call(t, cs, "get_repo", map[string]any{"repo": "pdp"}, nil); res.IsError {
		t.Fatalf("no reconnect after the crash: %s", text)
	}
}

// gatewayHTTP serves a gateway over f's upstream through HTTPHandler.
func (f *fixture) gatewayHTTP(t *testing.T, o HTTPOptions) *httptest.Server {
	t.Helper()
	g, err := New(context.Background(), f.eng, Config{Upstreams: []UpstreamConfig{{Name: "repos", URL: f.url}}}, engine.DefaultLimits, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	srv := httptest.NewServer(g.HTTPHandler(o))
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPNeedsABearerToken(t *testing.T) {
	srv := newFixture(t).gatewayHTTP(t, HTTPOptions{Resource: "https://pdp.example", AuthorizationServers: []string{"https://issuer.example"}})
	resp, err := http.Post(srv.URL+Path, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="https://pdp.example/.well-known/oauth-protected-resource"`) {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, err = http.Get(srv.URL + ResourceMetadataPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var md struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := json.Unmarshal(body, &md); err != nil || md.Resource != "https://pdp.example" || len(md.AuthorizationServers) != 1 {
		t.Errorf("metadata %s: %v", body, err)
	}
	// Without a token, not even the body is read: malformed JSON-RPC is
	// answered 401 too (with a token, TestHTTPMalformedJSONRPC).
	resp, err = http.Post(srv.URL+Path, "application/json", strings.NewReader(`{"jsonrpc":`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("malformed JSON-RPC without a token: %d %q, want 401 and a challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestHTTPMalformedJSONRPC: what is not one JSON-RPC 2.0 message is
// answered with a JSON-RPC error saying why, and reaches no upstream.
func TestHTTPMalformedJSONRPC(t *testing.T) {
	f := newFixture(t)
	srv := f.gatewayHTTP(t, HTTPOptions{Resource: "https://pdp.example"})
	post := func(body string) (int, string, []byte) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+Path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer x")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	getRepo := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_repo","arguments":{}}}`
	for _, tc := range []struct {
		name, body string
		status     int
		code       int64
		why        string
	}{
		{"garbage", "garbage", http.StatusBadRequest, -32700, "not a JSON-RPC message"},
		{"truncated", `{"jsonrpc":`, http.StatusBadRequest, -32700, "not a JSON-RPC message"},
		{"another version", strings.Replace(getRepo, "2.0", "1.0", 1), http.StatusBadRequest, -32600, `"jsonrpc" must be "2.0"`},
		{"no version", `{"id":1,"method":"tools/list"}`, http.StatusBadRequest, -32600, `"jsonrpc" must be "2.0"`},
		{"a batch", "[" + getRepo + "," + getRepo + "]", http.StatusBadRequest, -32600, "batches are not accepted"},
		{"oversize", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_repo","arguments":{"x":"` + strings.Repeat("x", engine.DefaultLimits.MaxMessageBytes) + `"}}}`,
			http.StatusRequestEntityTooLarge, -32600, "over the limit of"},
	} {
		status, ctype, body := post(tc.body)
		var resp struct {
			Version string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   struct {
				Code    int64  `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		err := json.Unmarshal(body, &resp)
		if status != tc.status || ctype != "application/json" || err != nil || resp.Version != "2.0" || string(resp.ID) != "null" ||
			resp.Error.Code != tc.code || !strings.Contains(resp.Error.Message, tc.why) {
			t.Errorf("%s: %d %s %.200s, want %d and a JSON-RPC error %d saying %q", tc.name, status, ctype, body, tc.status, tc.code, tc.why)
		}
	}
	if n := len(f.upstream.reached("get_repo")); n != 0 {
		t.Errorf("malformed requests reached the upstream %d times", n)
	}
	// A well-formed message still reaches the MCP server.
	if status, _, body := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`); status != http.StatusOK || !strings.Contains(string(body), `"serverInfo"`) {
		t.Errorf("initialize: %d %.200s", status, body)
	}
}
