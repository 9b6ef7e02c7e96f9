package authzen_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/internal/testutil/agentgrants"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/authzen"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grants"
)

// pdp is an AuthZEN server over real HTTP on loopback.
type pdp struct {
	url   string
	store *policystore.Store
}

func startPDP(t *testing.T, bundleDir string, opts ...authzen.Option) *pdp {
	t.Helper()
	store := policystore.NewStore()
	if bundleDir != "" {
		activate(t, store, bundleDir)
	}
	return serve(t, store, opts...)
}

func serve(t *testing.T, store *policystore.Store, opts ...authzen.Option) *pdp {
	t.Helper()
	svc := engine.New(store, engine.WithClock(func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }))
	mux := http.NewServeMux()
	authzen.New(svc, opts...).Register(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return &pdp{url: ts.URL, store: store}
}

func activate(t *testing.T, store *policystore.Store, dir string) {
	t.Helper()
	b, err := policystore.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// post sends body and decodes the JSON answer.
func (p *pdp) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(p.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decode(t, resp.Body)
}

func decode(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.NewDecoder(r).Decode(&out); err != nil {
		t.Fatalf("response is not a JSON object: %v", err)
	}
	return out
}

// decisions keeps only the decision of a single or batch response, the
// part the specification's example responses fix (each decision's context
// also carries intentpdp's decision id and revision).
func decisions(resp map[string]any) any {
	if items, ok := resp["evaluations"].([]any); ok {
		out := make([]any, len(items))
		for i, it := range items {
			out[i] = map[string]any{"decision": it.(map[string]any)["decision"]}
		}
		return map[string]any{"evaluations": out}
	}
	return map[string]any{"decision": resp["decision"]}
}

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	return decode(t, strings.NewReader(s))
}

// The request and response examples of the AuthZEN Authorization API 1.0
// specification (sections 6.1, 7.1 and 8.x), written out from the
// specification text. The bundles in testdata make their answers hold.
func TestSpecExamples(t *testing.T) {
	evalPDP := startPDP(t, "testdata/spec-evaluation")
	searchPDP := startPDP(t, "testdata/spec-search")
	tests := []struct {
		name    string
		pdp     *pdp
		path    string
		request string
		want    string
		only    func(map[string]any) any // the part of the response the spec fixes
	}{
		{
			name: "access evaluation", pdp: evalPDP, path: authzen.PathEvaluation, only: decisions,
			request: `{
			  "subject": {"type": "user", "id": "alice@acmecorp.com"},
			  "resource": {"type": "account", "id": "123"},
			  "action": {"name": "can_read", "properties": {"method": "GET"}},
			  "context": {"time": "1985-10-26T01:22-07:00"}
			}`,
			want: `{"decision": true}`,
		},
		{
			name: "access evaluations with defaults", pdp: evalPDP, path: authzen.PathEvaluations, only: decisions,
			request: `{
			  "subject": {"type": "user", "id": "alice@acmecorp.com"},
			  "action": {"name": "can_read"},
			  "evaluations": [
			    {"resource": {"type": "document", "id": "boxcarring.md"}},
			    {"resource": {"type": "document", "id": "subject-search.md"}},
			    {"action": {"name": "can_edit"}, "resource": {"type": "document", "id": "resource-search.md"}}
			  ]
			}`,
			want: `{"evaluations": [{"decision": true}, {"decision": false}, {"decision": false}]}`,
		},
		{
			name: "subject search", pdp: searchPDP, path: authzen.PathSearchSubject,
			request: `{
			  "subject": {"type": "user"},
			  "action": {"name": "can_read"},
			  "resource": {"type": "account", "id": "123"}
			}`,
			want: `{"results": [{"type": "user", "id": "alice@example.com"}, {"type": "user", "id": "bob@example.com"}],
			        "page": {"next_token": "", "count": 2}}`,
		},
		{
			name: "resource search", pdp: searchPDP, path: authzen.PathSearchResource,
			request: `{
			  "subject": {"type": "user", "id": "alice@example.com"},
			  "action": {"name": "can_read"},
			  "resource": {"type": "account"}
			}`,
			want: `{"results": [{"type": "account", "id": "123"}, {"type": "account", "id": "456"}],
			        "page": {"next_token": "", "count": 2}}`,
		},
		{
			name: "action search", pdp: searchPDP, path: authzen.PathSearchAction,
			request: `{
			  "subject": {"type": "user", "id": "alice@example.com"},
			  "resource": {"type": "account", "id": "123"},
			  "context": {"time": "2024-10-26T01:22-07:00"}
			}`,
			want: `{"results": [{"name": "can_read"}, {"name": "can_write"}], "page": {"next_token": "", "count": 2}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, got := tt.pdp.post(t, tt.path, tt.request)
			if code != http.StatusOK {
				t.Fatalf("status %d: %v", code, got)
			}
			var part any = got
			if tt.only != nil {
				part = tt.only(got)
			}
			if want := mustJSON(t, tt.want); !reflect.DeepEqual(part, any(want)) {
				t.Errorf("got  %v\nwant %v", part, want)
			}
		})
	}
}

// TestMapping checks that properties, action properties and context reach
// the policies with their Cedar types, and that the bundle stays
// authoritative for the entities it defines.
func TestMapping(t *testing.T) {
	p := startPDP(t, "testdata/spec-search")
	eval := func(subject, action, context string) string {
		return `{"subject": ` + subject + `, "action": ` + action + `, "resource": {"type": "account", "id": "123"}, "context": ` + context + `}`
	}
	tests := []struct {
		name    string
		request string
		want    bool
	}{
		{"unknown subject with properties", eval(`{"type": "user", "id": "dave", "properties": {"clearance": 3}}`, `{"name": "can_audit"}`, `{}`), true},
		{"unknown subject, too little clearance", eval(`{"type": "user", "id": "dave", "properties": {"clearance": 2}}`, `{"name": "can_audit"}`, `{}`), false},
		{"bundle entity keeps its attributes", eval(`{"type": "user", "id": "alice@example.com", "properties": {"clearance": 9}}`, `{"name": "can_audit"}`, `{}`), false},
		{"action properties are the intent", eval(`{"type": "user", "id": "carol@example.com"}`, `{"name": "can_approve", "properties": {"purpose": "audit", "ticket": "CHG-7"}}`, `{}`), true},
		{"intent without its attribute", eval(`{"type": "user", "id": "carol@example.com"}`, `{"name": "can_approve", "properties": {"purpose": "audit"}}`, `{}`), false},
		{"whole number is a Long", eval(`{"type": "user", "id": "carol@example.com"}`, `{"name": "can_transfer"}`, `{"amount": 999}`), true},
		{"entity reference escape", eval(`{"type": "user", "id": "carol@example.com"}`, `{"name": "can_delegate"}`, `{"delegate": {"__entity": {"type": "user", "id": "alice@example.com"}}}`), true},
		{"entity reference outside the group", eval(`{"type": "user", "id": "carol@example.com"}`, `{"name": "can_delegate"}`, `{"delegate": {"__entity": {"type": "user", "id": "carol@example.com"}}}`), false},
		{"extension escape", eval(`{"type": "user", "id": "carol@example.com"}`, `{"name": "can_connect"}`, `{"source": {"__extn": {"fn": "ip", "arg": "10.1.2.3"}}}`), true},
		{"extension outside the range", eval(`{"type": "user", "id": "carol@example.com"}`, `{"name": "can_connect"}`, `{"source": {"__extn": {"fn": "ip", "arg": "192.0.2.1"}}}`), false},
		{"whole number written as 1.0e3", eval(`{"type": "user", "id": "carol@example.com"}`, `{"name": "can_transfer"}`, `{"amount": 1.0e3}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, got := p.post(t, authzen.PathEvaluation, tt.request)
			if code != http.StatusOK {
				t.Fatalf("status %d: %v", code, got)
			}
			if got["decision"] != tt.want {
				t.Errorf("decision %v, want %v (%v)", got["decision"], tt.want, got)
			}
			ctx, _ := got["context"].(map[string]any)
			if id, _ := ctx["decision_id"].(string); id == "" {
				t.Errorf("no decision_id in the response context: %v", got)
			}
		})
	}
}

func TestEvaluationsSemantics(t *testing.T) {
	p := startPDP(t, "testdata/spec-search")
	// Carol reads nothing, Alice and Bob read account 123.
	batch := func(semantic string) string {
		return `{
		  "action": {"name": "can_read"},
		  "resource": {"type": "account", "id": "123"},
		  "options": {"evaluations_semantic": "` + semantic + `"},
		  "evaluations": [
		    {"subject": {"type": "user", "id": "alice@example.com"}},
		    {"subject": {"type": "user", "id": "carol@example.com"}},
		    {"subject": {"type": "user", "id": "bob@example.com"}}
		  ]
		}`
	}
	tests := []struct {
		semantic string
		want     string
	}{
		{"execute_all", `{"evaluations": [{"decision": true}, {"decision": false}, {"decision": true}]}`},
		{"deny_on_first_deny", `{"evaluations": [{"decision": true}, {"decision": false}]}`},
		{"permit_on_first_permit", `{"evaluations": [{"decision": true}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.semantic, func(t *testing.T) {
			t.Parallel()
			code, got := p.post(t, authzen.PathEvaluations, batch(tt.semantic))
			if code != http.StatusOK {
				t.Fatalf("status %d: %v", code, got)
			}
			if want := mustJSON(t, tt.want); !reflect.DeepEqual(decisions(got), any(want)) {
				t.Errorf("got  %v\nwant %v", decisions(got), want)
			}
		})
	}
}

// TestEvaluationsItemError: an item that cannot be evaluated is denied in
// place with the error the single endpoint would have given; the others
// are still decided.
func TestEvaluationsItemError(t *testing.T) {
	p := startPDP(t, "testdata/spec-search")
	code, got := p.post(t, authzen.PathEvaluations, `{
	  "subject": {"type": "user", "id": "alice@example.com"},
	  "action": {"name": "can_read"},
	  "evaluations": [{"resource": {"type": "account", "id": "123"}}, {}]
	}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, got)
	}
	items := got["evaluations"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["decision"] != true {
		t.Fatalf("evaluations %v", items)
	}
	second := items[1].(map[string]any)
	errObj := second["context"].(map[string]any)["error"].(map[string]any)
	if second["decision"] != false || errObj["status"] != float64(400) || !strings.Contains(errObj["message"].(string), "resource") {
		t.Errorf("second item %v, want a deny with a 400 error naming the resource", second)
	}
}

func TestErrors(t *testing.T) {
	p := startPDP(t, "testdata/spec-search")
	tests := []struct {
		name, path, body string
		want             int
		message          string
	}{
		{"malformed JSON", authzen.PathEvaluation, `{"subject": `, 400, "malformed JSON"},
		{"trailing data", authzen.PathEvaluation, `{} {}`, 400, "data after"},
		{"trailing close brace", authzen.PathEvaluation, `{"subject": {"type": "Agent", "id": "a"}} }`, 400, "data after"},
		{"missing action", authzen.PathEvaluation, `{"subject": {"type": "user", "id": "a"}, "resource": {"type": "account", "id": "1"}}`, 400, "action.name is required"},
		{"missing subject id", authzen.PathEvaluation, `{"subject": {"type": "user"}, "action": {"name": "can_read"}, "resource": {"type": "account", "id": "1"}}`, 400, "subject.type and subject.id"},
		{"fractional number", authzen.PathEvaluation, `{"subject": {"type": "user", "id": "a"}, "action": {"name": "can_read"}, "resource": {"type": "account", "id": "1"}, "context": {"amount": 1.5}}`, 400, "not a whole number"},
		{"bad extension", authzen.PathEvaluation, `{"subject": {"type": "user", "id": "a"}, "action": {"name": "can_read"}, "resource": {"type": "account", "id": "1"}, "context": {"x": {"__extn": {"fn": "ip", "arg": "nope"}}}}`, 400, "context.x"},
		{"null", authzen.PathEvaluation, `{"subject": {"type": "user", "id": "a"}, "action": {"name": "can_read"}, "resource": {"type": "account", "id": "1"}, "context": {"x": null}}`, 400, "null"},
		{"reserved context key", authzen.PathEvaluation, `{"subject": {"type": "user", "id": "a"}, "action": {"name": "can_read"}, "resource": {"type": "account", "id": "1"}, "context": {"now": "x"}}`, 400, "reserved"},
		{"unknown semantic", authzen.PathEvaluations, `{"options": {"evaluations_semantic": "first_wins"}, "evaluations": [{}]}`, 400, "evaluations_semantic"},
		{"search without the searched type", authzen.PathSearchSubject, `{"action": {"name": "can_read"}, "resource": {"type": "account", "id": "1"}}`, 400, "subject.type is required"},
		{"bad page token", authzen.PathSearchResource, `{"subject": {"type": "user", "id": "a"}, "action": {"name": "can_read"}, "resource": {"type": "account"}, "page": {"token": "!!"}}`, 400, "page.token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, got := p.post(t, tt.path, tt.body)
			errObj, _ := got["error"].(map[string]any)
			msg, _ := errObj["message"].(string)
			if code != tt.want || !strings.Contains(msg, tt.message) {
				t.Errorf("status %d, body %v; want %d with a message containing %q", code, got, tt.want, tt.message)
			}
		})
	}
}

// TestNoBundleFailsClosed: before a bundle is active nothing is allowed.
func TestNoBundleFailsClosed(t *testing.T) {
	p := startPDP(t, "")
	code, got := p.post(t, authzen.PathEvaluation, `{"subject": {"type": "user", "id": "a"}, "action": {"name": "can_read"}, "resource": {"type": "account", "id": "1"}}`)
	if code != http.StatusServiceUnavailable || got["decision"] != nil {
		t.Errorf("status %d, body %v; want 503 without a decision", code, got)
	}
}

func TestRequestIDEchoed(t *testing.T) {
	p := startPDP(t, "testdata/spec-search")
	req, err := http.NewRequest(http.MethodPost, p.url+authzen.PathEvaluation, strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "bfe9eb29-ab87-4ca3-be83-a1d5d8305716" {
		t.Errorf("X-Request-ID %q not echoed (status %d)", got, resp.StatusCode)
	}
}

func TestConfiguration(t *testing.T) {
	p := startPDP(t, "testdata/spec-search")
	resp, err := http.Get(p.url + authzen.PathConfiguration)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := decode(t, resp.Body)
	want := map[string]any{
		"policy_decision_point":       p.url,
		"access_evaluation_endpoint":  p.url + "/access/v1/evaluation",
		"access_evaluations_endpoint": p.url + "/access/v1/evaluations",
		"search_subject_endpoint":     p.url + "/access/v1/search/subject",
		"search_resource_endpoint":    p.url + "/access/v1/search/resource",
		"search_action_endpoint":      p.url + "/access/v1/search/action",
	}
	if resp.StatusCode != http.StatusOK || !reflect.DeepEqual(got, want) {
		t.Errorf("status %d, metadata %v, want %v", resp.StatusCode, got, want)
	}
}

// TestSearchPagination pages through a resource search one result at a
// time, and refuses a token once the policies have changed.
func TestSearchPagination(t *testing.T) {
	p := startPDP(t, "testdata/spec-search")
	page := func(token string) (int, map[string]any) {
		return p.post(t, authzen.PathSearchResource, `{
		  "subject": {"type": "user", "id": "alice@example.com"},
		  "action": {"name": "can_read"},
		  "resource": {"type": "account"},
		  "page": {"limit": 1, "token": "`+token+`"}
		}`)
	}
	var all []any
	token, firstToken := "", ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		code, got := page(token)
		if code != http.StatusOK {
			t.Fatalf("status %d: %v", code, got)
		}
		results := got["results"].([]any)
		if len(results) > 1 {
			t.Fatalf("page of %d results with limit 1", len(results))
		}
		all = append(all, results...)
		token = got["page"].(map[string]any)["next_token"].(string)
		if firstToken == "" {
			firstToken = token
		}
		if token == "" {
			break
		}
	}
	want := []any{map[string]any{"type": "account", "id": "123"}, map[string]any{"type": "account", "id": "456"}}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("all pages %v, want %v", all, want)
	}

	activate(t, p.store, "testdata/spec-evaluation")
	code, got := page(firstToken)
	if code != http.StatusBadRequest {
		t.Errorf("token from an older revision: status %d (%v), want 400", code, got)
	}
}

// TestActionSearchFiltersTools is the README's example: the tools an agent
// of the example bundle may call, depending on its task and intent.
func TestActionSearchFiltersTools(t *testing.T) {
	store := policystore.NewStore()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	gs := grants.NewMemory()
	eng := engine.New(store, engine.WithEnricher(gs), engine.WithConsumer(gs))
	if err := agentgrants.Create(context.Background(), eng, gs); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	authzen.New(eng).Register(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	p := &pdp{url: ts.URL, store: store}
	tests := []struct {
		name, request string
		want          []string
	}{
		{"reviewer reads", `{"subject": {"type": "Agent", "id": "code-reviewer"}, "resource": {"type": "Repository", "id": "payments-api"}, "action": {"name": "", "properties": {"purpose": "code-review"}}}`,
			[]string{"list_issues", "read_file", "search_code"}},
		{"outsider gets nothing", `{"subject": {"type": "Agent", "id": "intern-bot"}, "resource": {"type": "Repository", "id": "payments-api"}}`, nil},
		{"live write grant adds writes", `{"subject": {"type": "Agent", "id": "deployer"}, "resource": {"type": "Repository", "id": "payments-api"}, "action": {"name": "", "properties": {"task_id": "T-9"}}}`,
			[]string{"comment_issue", "list_issues", "open_pull_request", "read_file", "search_code", "write_file"}},
		{"production without approval", `{"subject": {"type": "Agent", "id": "deployer"}, "resource": {"type": "Environment", "id": "payments-prod"}, "action": {"name": "", "properties": {"purpose": "release", "task_id": "T-1042"}}}`,
			[]string{"rollback_service"}},
		{"production with approval", `{"subject": {"type": "Agent", "id": "deployer"}, "resource": {"type": "Environment", "id": "payments-prod"}, "action": {"name": "", "properties": {"purpose": "release", "task_id": "T-1042", "approval_ticket": "CHG-1"}}}`,
			[]string{"deploy_service", "rollback_service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, got := p.post(t, authzen.PathSearchAction, tt.request)
			if code != http.StatusOK {
				t.Fatalf("status %d: %v", code, got)
			}
			var names []string
			for _, r := range got["results"].([]any) {
				names = append(names, r.(map[string]any)["name"].(string))
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("tools %v, want %v", names, tt.want)
			}
		})
	}
}
