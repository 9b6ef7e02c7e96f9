package caller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/intentpdp/intentpdp/server/caller"
	"github.com/intentpdp/intentpdp/server/engine"
)

func TestAllowlist(t *testing.T) {
	t.Parallel()
	a, err := caller.ParseAllowlist([]string{"spiffe://example.org/orchestrator", "spiffe://example.org/ns/prod/*", "spiffe://partner.org/*"})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{
		"spiffe://example.org/orchestrator":      true,
		"spiffe://example.org/orchestrator/x":    false,
		"spiffe://example.org/orchestrator2":     false,
		"spiffe://example.org/ns/prod/a":         true,
		"spiffe://example.org/ns/prod/a/b":       true,
		"spiffe://example.org/ns/prod":           false,
		"spiffe://example.org/ns/production/a":   false,
		"spiffe://partner.org/anything":          true,
		"spiffe://partner.organisation/anything": false,
		"spiffe://other.org/orchestrator":        false,
		"":                                       false,
	} {
		if got := a.Allows(id); got != want {
			t.Errorf("Allows(%q) = %v, want %v", id, got, want)
		}
	}
	var none *caller.Allowlist
	if !none.Allows("") || !none.Allows("spiffe://x.org/y") {
		t.Error("a nil allowlist refuses a caller")
	}
	for _, bad := range [][]string{nil, {"spiffe://example.org"}, {"spiffe://example.org/a*"}, {"spiffe://example.org/*/b"}, {"https://example.org/a"}, {"spiffe://Example.org/a"}, {"*"}} {
		if _, err := caller.ParseAllowlist(bad); err == nil {
			t.Errorf("ParseAllowlist(%q) accepted", bad)
		}
	}
}

func state(t *testing.T, uris ...string) *tls.ConnectionState {
	t.Helper()
	cert := &x509.Certificate{}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		cert.URIs = append(cert.URIs, u)
	}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
}

func TestFromTLS(t *testing.T) {
	t.Parallel()
	if id, ok := caller.FromTLS(state(t, "spiffe://example.org/a")); !ok || id != "spiffe://example.org/a" {
		t.Errorf("FromTLS = %q, %v", id, ok)
	}
	for name, st := range map[string]*tls.ConnectionState{
		"no TLS":           nil,
		"no certificate":   {},
		"no URI SAN":       state(t),
		"two URI SANs":     state(t, "spiffe://example.org/a", "spiffe://example.org/b"),
		"not a SPIFFE URI": state(t, "https://example.org/a"),
	} {
		if id, ok := caller.FromTLS(st); ok {
			t.Errorf("%s: FromTLS = %q", name, id)
		}
	}
}

// TestMiddleware: an allowed caller reaches the handler with its ID in the
// engine credentials, the principal token kept; another gets 403 and the
// handler never runs.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	allow, _ := caller.ParseAllowlist([]string{"spiffe://example.org/orchestrator"})
	var got engine.Credentials
	calls := 0
	h := caller.NewGuard("HTTP", allow).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		got = engine.CredentialsFrom(r.Context())
	}))
	req := httptest.NewRequest(http.MethodPost, "/access/v1/evaluation", nil)
	req = req.WithContext(engine.WithCredentials(req.Context(), engine.Credentials{PrincipalToken: "tok"}))
	req.TLS = state(t, "spiffe://example.org/orchestrator")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || got.Caller != "spiffe://example.org/orchestrator" || got.PrincipalToken != "tok" {
		t.Errorf("allowed caller: %d, credentials %+v", rec.Code, got)
	}
	for name, st := range map[string]*tls.ConnectionState{"another workload": state(t, "spiffe://example.org/agent"), "no TLS": nil} {
		req := httptest.NewRequest(http.MethodPost, "/access/v1/evaluation", nil)
		req.TLS = st
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), engine.ReasonCallerNotAllowed) {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	if calls != 1 {
		t.Errorf("handler ran %d times, want 1", calls)
	}
}

func TestUnaryInterceptor(t *testing.T) {
	t.Parallel()
	allow, _ := caller.ParseAllowlist([]string{"spiffe://example.org/ns/prod/*"})
	intercept := caller.NewGuard("gRPC", allow, caller.WithOpenServices("grpc.health.v1.Health")).UnaryInterceptor()
	ctxOf := func(st *tls.ConnectionState) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: *st}})
	}
	var got string
	handler := func(ctx context.Context, _ any) (any, error) {
		got = engine.CredentialsFrom(ctx).Caller
		return "ok", nil
	}
	decide := &grpc.UnaryServerInfo{FullMethod: "/intentpdp.v1.AuthorizationService/Authorize"}
	if _, err := intercept(ctxOf(state(t, "spiffe://example.org/ns/prod/orch")), nil, decide, handler); err != nil || got != "spiffe://example.org/ns/prod/orch" {
		t.Errorf("allowed caller: %v, caller %q", err, got)
	}
	got = ""
	_, err := intercept(ctxOf(state(t, "spiffe://example.org/ns/dev/orch")), nil, decide, handler)
	if status.Code(err) != codes.PermissionDenied || got != "" {
		t.Errorf("refused caller: %v, handler saw %q", err, got)
	}
	health := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}
	if _, err := intercept(ctxOf(state(t, "spiffe://example.org/ns/dev/lb")), nil, health, handler); err != nil {
		t.Errorf("health by a caller off the allowlist: %v", err)
	}
}
