package forwardauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server"
	"github.com/intentpdp/intentpdp/server/forwardauth"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// startPDP serves forward-auth for the example bundle with the example
// gateway mapping over real HTTP on loopback.
func startPDP(t *testing.T, activate bool) *httptest.Server {
	t.Helper()
	store := policystore.NewStore()
	if activate {
		b, err := policystore.LoadFS(examples.Agents())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Activate(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	svc := server.NewService(store, server.WithClock(func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }))
	cfg, err := gateway.LoadConfig("../../examples/gateway/agents.json")
	if err != nil {
		t.Fatal(err)
	}
	checker, err := gateway.NewChecker(svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(forwardauth.Path, forwardauth.New(checker))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// TestProxyConventions asks the way Caddy and Traefik (X-Forwarded-*) and
// nginx (X-Original-*, set in its configuration) ask.
func TestProxyConventions(t *testing.T) {
	pdp := startPDP(t, true)
	tests := []struct {
		name    string
		headers map[string]string
		want    int
		decided bool // a decision was made, so its id is in the answer
	}{
		{"caddy/traefik allow", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/repos/payments-api/issues?state=open", "X-Agent-Id": "code-reviewer"}, 200, true},
		{"nginx allow", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/repos/payments-api/contents/README.md", "X-Agent-Id": "deployer"}, 200, true},
		{"escaped slash stays in the segment", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/repos/payments-api%2Fother/issues", "X-Agent-Id": "code-reviewer"}, 403, true},
		{"deny", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/repos/payments-api/issues", "X-Agent-Id": "intern-bot"}, 403, true},
		{"no identity", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/repos/payments-api/issues"}, 401, false},
		{"no route", map[string]string{"X-Forwarded-Method": "DELETE", "X-Forwarded-Uri": "/repos/payments-api", "X-Agent-Id": "code-reviewer"}, 403, false},
		{"dot segments never match", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/repos/x/../payments-api/issues", "X-Agent-Id": "code-reviewer"}, 403, false},
		{"no original request", map[string]string{"X-Agent-Id": "code-reviewer"}, 403, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := ask(t, pdp.URL, tt.headers)
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if decided := resp.Header.Get(gateway.HeaderDecisionID) != ""; decided != tt.decided {
				t.Errorf("%s header present: %v, want %v", gateway.HeaderDecisionID, decided, tt.decided)
			}
			if tt.want == 200 {
				return
			}
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["decision"] != "deny" {
				t.Errorf("deny body %v (%v)", body, err)
			}
		})
	}
}

func TestNoBundleFailsClosed(t *testing.T) {
	pdp := startPDP(t, false)
	resp := ask(t, pdp.URL, map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/repos/payments-api/issues", "X-Agent-Id": "code-reviewer"})
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
}

func ask(t *testing.T, base string, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+forwardauth.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
