package forwardauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/forwardauth"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// startPDP serves forward-auth for the example bundle with the example
// gateway mapping over real HTTP on loopback.
func startPDP(t *testing.T, activate bool) *httptest.Server {
	t.Helper()
	return startPDPWith(t, pdpSetup{activate: activate})
}

// pdpSetup varies the example PDP: extra policies added to the example
// bundle (whose own tests are then dropped) and the forward_auth headers.
type pdpSetup struct {
	activate    bool
	policies    string
	forwardAuth gateway.ForwardAuthConfig
	// answered, when set, holds the status of the latest answer.
	answered *atomic.Int64
	// engineOpts and gatewayOpts are added to the engine's and checker's.
	engineOpts  []engine.Option
	gatewayOpts []gateway.Option
}

func startPDPWith(t *testing.T, setup pdpSetup) *httptest.Server {
	t.Helper()
	store := policystore.NewStore()
	if setup.activate {
		b, err := policystore.LoadFS(examples.Agents())
		if err != nil {
			t.Fatal(err)
		}
		if setup.policies != "" {
			b.Files["extra.cedar"] = []byte(setup.policies)
			for f := range b.Files {
				if strings.HasPrefix(f, policystore.TestsDir) {
					delete(b.Files, f)
				}
			}
		}
		if _, err := store.Activate(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	svc := engine.New(store, append([]engine.Option{engine.WithClock(func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) })}, setup.engineOpts...)...)
	cfg, err := gateway.LoadConfig("../../examples/gateway/agents.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ForwardAuth = setup.forwardAuth
	checker, err := gateway.NewChecker(svc, cfg, setup.gatewayOpts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	var h http.Handler = forwardauth.New(checker)
	if setup.answered != nil {
		h = recordStatus(h, setup.answered)
	}
	mux.Handle(forwardauth.Path, h)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// recordStatus stores the status of each of next's answers in answered,
// before the answer is sent.
func recordStatus(next http.Handler, answered *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(statusWriter{w, answered}, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	answered *atomic.Int64
}

func (w statusWriter) WriteHeader(code int) {
	w.answered.Store(int64(code))
	w.ResponseWriter.WriteHeader(code)
}

// originalHeaders is the configuration of a PDP reading X-Original-*, as
// an nginx set up that way needs.
var originalHeaders = gateway.ForwardAuthConfig{MethodHeader: "X-Original-Method", URIHeader: "X-Original-URI", HostHeader: "X-Original-Host"}

// TestProxyConventions asks the way Caddy, Traefik and the nginx example
// ask (X-Forwarded-*), and the way an nginx set up with X-Original-* asks a
// PDP configured for it. Whichever set is configured, a subrequest that
// also carries another description of the original request, which proxies
// pass along from the client, is refused: the client cannot choose what is
// decided.
func TestProxyConventions(t *testing.T) {
	forwarded := startPDP(t, true)
	original := startPDPWith(t, pdpSetup{activate: true, forwardAuth: originalHeaders})
	const readme, secrets = "/repos/payments-api/contents/README.md", "/repos/payments-api/contents/secrets.env"
	tests := []struct {
		name     string
		original bool // ask the PDP configured for X-Original-*
		headers  http.Header
		want     int
		reason   string // ErrorInfo reason of a refusal
		decided  bool   // a decision was made, so its id is in the answer
	}{
		{name: "caddy/traefik/nginx allow", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/repos/payments-api/issues?state=open", "X-Agent-Id", "code-reviewer"), want: 200, decided: true},
		{name: "host header read", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", readme, "X-Forwarded-Host", "api.example.org", "X-Agent-Id", "deployer"), want: 200, decided: true},
		{name: "nginx with X-Original-* configured allow", original: true, headers: hdr("X-Original-Method", "GET", "X-Original-URI", readme, "X-Agent-Id", "deployer"), want: 200, decided: true},
		{name: "deny", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/repos/payments-api/issues", "X-Agent-Id", "intern-bot"), want: 403, decided: true},
		{name: "no identity", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/repos/payments-api/issues"), want: 401},
		{name: "no route", headers: hdr("X-Forwarded-Method", "DELETE", "X-Forwarded-Uri", "/repos/payments-api", "X-Agent-Id", "code-reviewer"), want: 403, reason: engine.ReasonNoRoute},
		{name: "no original request", headers: hdr("X-Agent-Id", "code-reviewer"), want: 403, reason: engine.ReasonNoRoute},
		{name: "only the other set", headers: hdr("X-Original-Method", "GET", "X-Original-URI", readme, "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},

		// A client's forged description of an allowed request, next to the
		// one the proxy set for the denied request it sent.
		{name: "forged X-Original-URI", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", secrets, "X-Original-URI", readme, "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "forged X-Original-Method", headers: hdr("X-Forwarded-Method", "DELETE", "X-Forwarded-Uri", readme, "X-Original-Method", "GET", "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "forged X-Forwarded-Uri", original: true, headers: hdr("X-Original-Method", "GET", "X-Original-URI", secrets, "X-Forwarded-Uri", readme, "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "forged X-Forwarded-Method", original: true, headers: hdr("X-Original-Method", "DELETE", "X-Original-URI", readme, "X-Forwarded-Method", "GET", "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "forged X-Original-Url", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", readme, "X-Original-Url", secrets, "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "forged X-Rewrite-Url", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", readme, "X-Rewrite-Url", secrets, "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "forged X-Original-Host", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", readme, "X-Original-Host", "other.example", "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "method override", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", readme, "X-HTTP-Method-Override", "DELETE", "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "repeated URI header", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", secrets, "X-Forwarded-Uri", readme, "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "repeated method header", headers: hdr("X-Forwarded-Method", "DELETE", "X-Forwarded-Method", "GET", "X-Forwarded-Uri", readme, "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},
		{name: "repeated host header", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", readme, "X-Forwarded-Host", "a", "X-Forwarded-Host", "b", "X-Agent-Id", "deployer"), want: 400, reason: engine.ReasonConflictingHeaders},

		{name: "escaped slash", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/repos/payments-api%2Fother/issues", "X-Agent-Id", "code-reviewer"), want: 400, reason: engine.ReasonNonCanonicalPath},
		{name: "dot segments", headers: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/repos/x/../payments-api/issues", "X-Agent-Id", "code-reviewer"), want: 400, reason: engine.ReasonNonCanonicalPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := forwarded.URL
			if tt.original {
				base = original.URL
			}
			resp := ask(t, base, tt.headers)
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
			if tt.reason != "" && !strings.Contains(fmt.Sprint(body["error"]), reasonText[tt.reason]) {
				t.Errorf("deny body %v does not say %q", body, reasonText[tt.reason])
			}
		})
	}
}

// reasonText is what the deny body's error says for each refusal; the
// HTTP answer carries the status message, not the ErrorInfo.
var reasonText = map[string]string{
	engine.ReasonNoRoute:            engine.ErrNoRoute.Error(),
	engine.ReasonConflictingHeaders: engine.ErrConflictingRequestHeaders.Error(),
	engine.ReasonNonCanonicalPath:   engine.ErrNonCanonicalPath.Error(),
}

// hdr builds a header from name, value pairs, repeating repeated names.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestNoBundleFailsClosed(t *testing.T) {
	pdp := startPDP(t, false)
	resp := ask(t, pdp.URL, hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/repos/payments-api/issues", "X-Agent-Id", "code-reviewer"))
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
}

func ask(t *testing.T, base string, headers http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+forwardauth.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = headers
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
