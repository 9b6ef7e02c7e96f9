package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
)

// svid issues an X.509-SVID for the SPIFFE ID id from p's CA.
func (p *testPKI) svid(t *testing.T, id string) tls.Certificate {
	t.Helper()
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer("spiffe://", "", "/", "_").Replace(id)
	return p.issue(t, name, &x509.Certificate{URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// clientTLS trusts p's server certificate and presents certs.
func (p *testPKI) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS12}
}

var callersServingRE = regexp.MustCompile(`msg="serving (gRPC|admin API|metrics|AuthZEN and forward-auth over HTTP)" addr=(\S+)`)

// callersPDP is `intentpdp serve` running in process with every listener
// on loopback; addrs maps "gRPC", "admin API", "metrics" and "HTTP" to
// their addresses.
type callersPDP struct {
	addrs map[string]string
	log   *logBuffer
}

func serveCallers(t *testing.T, args ...string) *callersPDP {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &logBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, slices.Concat([]string{"serve"}, loopbackFlags, args), log, log) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, log)
		}
	})
	p := &callersPDP{addrs: map[string]string{}, log: log}
	pollUntil(t, "every listener", func() bool {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("serve exited with %d before serving:\n%s", code, log)
		default:
		}
		for _, m := range callersServingRE.FindAllStringSubmatch(log.String(), -1) {
			name := m[1]
			if strings.HasPrefix(name, "AuthZEN") {
				name = "HTTP"
			}
			p.addrs[name] = m[2]
		}
		return len(p.addrs) == 4
	})
	return p
}

// dial connects to a gRPC listener of the PDP with cfg.
func dial(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func authorize(t *testing.T, addr string, cfg *tls.Config) (*pdpv1.AuthorizeResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	return pdpv1.NewAuthorizationServiceClient(dial(t, addr, cfg)).Authorize(ctx, readFile("code-reviewer"))
}

// httpsDo sends a request to an HTTPS listener of the PDP with cfg.
func httpsDo(t *testing.T, method, url, body string, cfg *tls.Config) (*http.Response, []byte, error) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

const evaluationBody = `{"subject": {"type": "Agent", "id": "code-reviewer"}, "action": {"name": "read_file"},
	"resource": {"type": "Document", "id": "payments-api/README.md"}, "context": {"purpose": "code-review"}}`

// wantRefusedCaller checks a gRPC error is PermissionDenied with the reason
// CALLER_NOT_ALLOWED.
func wantRefusedCaller(t *testing.T, what string, err error) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.PermissionDenied {
		t.Errorf("%s: %v, want PermissionDenied", what, err)
		return
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == engine.ReasonCallerNotAllowed {
			return
		}
	}
	t.Errorf("%s: details %v lack the reason %s", what, st.Details(), engine.ReasonCallerNotAllowed)
}

// wantHandshakeRefused checks a gRPC call failed at the transport, never
// reaching a service.
func wantHandshakeRefused(t *testing.T, what string, err error) {
	t.Helper()
	if st, _ := status.FromError(err); err == nil || st.Code() != codes.Unavailable {
		t.Errorf("%s: %v, want the TLS handshake refused (Unavailable)", what, err)
	}
}

// callerFixture is a trust domain with the PDP's serving certificate, the
// SVIDs of its callers, and certificates of strangers.
type callerFixture struct {
	pki                                       *testPKI
	bundle                                    string // the --spiffe-bundle file
	orchestrator, operator, prometheus, agent tls.Certificate
	foreignCA, otherDomain                    tls.Certificate
}

func newCallerFixture(t *testing.T) *callerFixture {
	t.Helper()
	pki := newTestPKI(t)
	f := &callerFixture{pki: pki, bundle: filepath.Join(t.TempDir(), "bundle.pem")}
	data, err := os.ReadFile(pki.path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.bundle, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f.orchestrator = pki.svid(t, "spiffe://example.org/orchestrator")
	f.operator = pki.svid(t, "spiffe://example.org/ops/operator")
	f.prometheus = pki.svid(t, "spiffe://example.org/prometheus")
	f.agent = pki.clientCert // spiffe://example.org/agent/planner: a valid SVID on no allowlist
	// Same SPIFFE ID, issued by a CA the bundle does not hold.
	f.foreignCA = newTestPKI(t).svid(t, "spiffe://example.org/orchestrator")
	// Issued by the right CA, but for a trust domain the bundle is not of.
	f.otherDomain = pki.svid(t, "spiffe://other.org/orchestrator")
	return f
}

// flags serves every listener with the fixture's server certificate and
// verifies callers with its bundle.
func (f *callerFixture) flags() []string {
	var args []string
	for _, p := range []string{"tls", "http-tls", "admin-tls", "metrics-tls"} {
		args = append(args, "--"+p+"-cert", f.pki.path("server.pem"), "--"+p+"-key", f.pki.path("server-key.pem"))
	}
	return append(args, "--spiffe-bundle", f.bundle, "--spiffe-trust-domain", "example.org")
}

// TestCallersEveryListener attacks every listener: without a client
// certificate, with one of another CA or trust domain, and with a valid
// SVID off the allowlist; only allowlisted callers get through, and a
// refused call is never decided.
func TestCallersEveryListener(t *testing.T) {
	f := newCallerFixture(t)
	p := serveCallers(t, append(f.flags(),
		"--decision-callers", "spiffe://example.org/orchestrator",
		"--admin-callers", "spiffe://example.org/ops/*",
		"--metrics-callers", "spiffe://example.org/prometheus")...)
	tc := f.pki.clientTLS
	strangers := map[string]*tls.Config{
		"no client certificate": tc(),
		"another CA":            tc(f.foreignCA),
		"another trust domain":  tc(f.otherDomain),
	}

	t.Run("gRPC", func(t *testing.T) {
		for name, cfg := range strangers {
			_, err := authorize(t, p.addrs["gRPC"], cfg)
			wantHandshakeRefused(t, name, err)
		}
		_, err := authorize(t, p.addrs["gRPC"], tc(f.agent))
		wantRefusedCaller(t, "Authorize by an SVID off the allowlist", err)
		_, err = authv3.NewAuthorizationClient(dial(t, p.addrs["gRPC"], tc(f.agent))).Check(t.Context(), &authv3.CheckRequest{})
		wantRefusedCaller(t, "ext_authz Check by an SVID off the allowlist", err)
		// Health is open to every caller the TLS layer accepts.
		if _, err := healthpb.NewHealthClient(dial(t, p.addrs["gRPC"], tc(f.agent))).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("health by an accepted SVID: %v", err)
		}
		resp, err := authorize(t, p.addrs["gRPC"], tc(f.orchestrator))
		if err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
			t.Errorf("Authorize by the orchestrator = %v, %v", resp.GetDecision(), err)
		}
	})

	t.Run("HTTP", func(t *testing.T) {
		url := "https://" + p.addrs["HTTP"] + "/access/v1/evaluation"
		for name, cfg := range strangers {
			if resp, _, err := httpsDo(t, http.MethodPost, url, evaluationBody, cfg); err == nil {
				t.Errorf("%s: %s, want the TLS handshake refused", name, resp.Status)
			}
		}
		for _, path := range []string{"/access/v1/evaluation", "/forward-auth"} {
			resp, body, err := httpsDo(t, http.MethodPost, "https://"+p.addrs["HTTP"]+path, evaluationBody, tc(f.agent))
			if err != nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), engine.ReasonCallerNotAllowed) {
				t.Errorf("%s by an SVID off the allowlist: %v %v %s", path, resp, err, body)
			}
		}
		resp, body, err := httpsDo(t, http.MethodPost, url, evaluationBody, tc(f.orchestrator))
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"decision":true`) {
			t.Errorf("evaluation by the orchestrator: %v %v %s", resp, err, body)
		}
	})

	t.Run("admin", func(t *testing.T) {
		for name, cfg := range strangers {
			_, err := pdpv1.NewPolicyAdminServiceClient(dial(t, p.addrs["admin API"], cfg)).GetStatus(t.Context(), &pdpv1.GetStatusRequest{})
			wantHandshakeRefused(t, name, err)
		}
		_, err := pdpv1.NewPolicyAdminServiceClient(dial(t, p.addrs["admin API"], tc(f.orchestrator))).GetStatus(t.Context(), &pdpv1.GetStatusRequest{})
		wantRefusedCaller(t, "GetStatus by a decision caller", err)
		st, err := pdpv1.NewPolicyAdminServiceClient(dial(t, p.addrs["admin API"], tc(f.operator))).GetStatus(t.Context(), &pdpv1.GetStatusRequest{})
		if err != nil || st.GetStatus().GetActive().GetRevision() == "" {
			t.Errorf("GetStatus by the operator = %v, %v", st, err)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		url := "https://" + p.addrs["metrics"] + "/metrics"
		for name, cfg := range strangers {
			if resp, _, err := httpsDo(t, http.MethodGet, url, "", cfg); err == nil {
				t.Errorf("%s: %s, want the TLS handshake refused", name, resp.Status)
			}
		}
		if resp, _, err := httpsDo(t, http.MethodGet, url, "", tc(f.orchestrator)); err != nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("/metrics by a decision caller: %v, %v", resp, err)
		}
	})

	// Every refused call above was refused before the engine: the only
	// decisions made are the orchestrator's two.
	resp, body, err := httpsDo(t, http.MethodGet, "https://"+p.addrs["metrics"]+"/metrics", "", tc(f.prometheus))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics by prometheus: %v, %v", resp, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if got := sample(mfs, "intentpdp_decisions_total"); got != 2 {
		t.Errorf("decisions made = %v, want 2 (the orchestrator's)", got)
	}
	if !strings.Contains(p.log.String(), `msg="caller refused"`) {
		t.Errorf("refusals are not logged:\n%s", p.log)
	}
}

// TestCallersBundleRotation: a caller whose CA joins the bundle file is
// refused before the file changes and accepted after, without a restart.
func TestCallersBundleRotation(t *testing.T) {
	f := newCallerFixture(t)
	p := serveCallers(t, append(f.flags(), "--decision-callers", "spiffe://example.org/*")...)
	next := newTestPKI(t)
	rotated := next.svid(t, "spiffe://example.org/orchestrator")
	cfg := f.pki.clientTLS(rotated)

	_, err := authorize(t, p.addrs["gRPC"], cfg)
	wantHandshakeRefused(t, "an SVID of a CA not yet in the bundle", err)

	// The new bundle holds both CAs; it replaces the old file at once, as
	// a bundle publisher does.
	oldCA, err := os.ReadFile(f.pki.path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := os.ReadFile(next.path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := f.bundle + ".new"
	if err := os.WriteFile(tmp, append(oldCA, newCA...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.bundle); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the rotated bundle", func() bool {
		_, err := authorize(t, p.addrs["gRPC"], cfg)
		return err == nil
	})
	if _, err := authorize(t, p.addrs["gRPC"], f.pki.clientTLS(f.orchestrator)); err != nil {
		t.Errorf("an SVID of the old CA after rotation: %v", err)
	}
	// A broken bundle keeps the last good one.
	if err := os.WriteFile(f.bundle, []byte("not a bundle"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := authorize(t, p.addrs["gRPC"], cfg); err != nil {
		t.Errorf("after a broken bundle file: %v", err)
	}
	if !strings.Contains(p.log.String(), "SPIFFE bundle not reloaded") {
		t.Errorf("the broken bundle is not logged:\n%s", p.log)
	}
}

// TestCallersConfig: allowlists need mutual TLS on their listeners, and
// the admin API leaves loopback only with mutual TLS and an allowlist.
func TestCallersConfig(t *testing.T) {
	f := newCallerFixture(t)
	pem := []string{"--tls-cert", f.pki.path("server.pem"), "--tls-key", f.pki.path("server-key.pem")}
	for _, tt := range []struct {
		name string
		args []string
		want string // "" means valid
	}{
		{"decision callers without TLS", []string{"--decision-callers", "spiffe://example.org/x"}, "decision-callers needs mutual TLS on the gRPC listener"},
		{"decision callers without mTLS on HTTP", append(slices.Clone(pem), "--tls-client-ca", f.pki.path("ca.pem"), "--decision-callers", "spiffe://example.org/x"), "decision-callers needs mutual TLS on the HTTP listener"},
		{"decision callers, HTTP off", append(slices.Clone(pem), "--tls-client-ca", f.pki.path("ca.pem"), "--decision-callers", "spiffe://example.org/x", "--http-listen", ""), ""},
		{"metrics callers without mTLS", []string{"--metrics-callers", "spiffe://example.org/x"}, "metrics-callers needs mutual TLS on the metrics listener"},
		{"a bad pattern", append(f.flags(), "--decision-callers", "spiffe://example.org/a*"), "a * may only end the pattern"},
		{"a bare trust domain", append(f.flags(), "--decision-callers", "spiffe://example.org"), "names a trust domain"},
		{"bundle without trust domain", []string{"--spiffe-bundle", f.bundle}, "spiffe-bundle needs --spiffe-trust-domain"},
		{"bundle and socket", []string{"--spiffe-bundle", f.bundle, "--spiffe-trust-domain", "example.org", "--spiffe-socket", "unix:///tmp/x.sock"}, "exclude each other"},
		{"http key without cert", []string{"--http-tls-key", "k.pem"}, "http-tls-cert and http-tls-key go together"},
		{"admin off loopback without mTLS", []string{"--admin-listen", "0.0.0.0:0"}, "admin-listen 0.0.0.0:0 is not a loopback address"},
		{"admin off loopback with mTLS, no allowlist", append(f.flags(), "--admin-listen", "0.0.0.0:0"), "needs mutual TLS and --admin-callers"},
		{"admin off loopback with mTLS and allowlist", append(f.flags(), "--admin-listen", "0.0.0.0:0", "--admin-callers", "spiffe://example.org/ops/*"), ""},
		{"admin on localhost without TLS", []string{"--admin-listen", "localhost:0"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var cfg Config
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg.bindFlags(fs)
			if err := fs.Parse(slices.Concat(loopbackFlags, tt.args)); err != nil {
				t.Fatal(err)
			}
			cfg.SetDefaults()
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestAdminOffLoopbackRefusesToStart: serve does not start an admin API
// reachable from the network without mutual TLS and an allowlist, and
// warns about an admin API on loopback without mutual TLS.
func TestAdminOffLoopbackRefusesToStart(t *testing.T) {
	err := serve(t.Context(), append(slices.Clone(loopbackFlags), "--admin-listen", "0.0.0.0:0"), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "admin-listen 0.0.0.0:0 is not a loopback address") {
		t.Fatalf("serve = %v, want a refusal to start", err)
	}
	p := serveCallers(t)
	if !strings.Contains(p.log.String(), "admin API without mutual TLS") {
		t.Errorf("no warning about the admin API without mutual TLS:\n%s", p.log)
	}
}

// TestCallerRefusalNamesCaller: a refusal names the caller and carries the
// machine-readable reason, on gRPC and on HTTP.
func TestCallerRefusalNamesCaller(t *testing.T) {
	f := newCallerFixture(t)
	p := serveCallers(t, append(f.flags(), "--decision-callers", "spiffe://example.org/orchestrator")...)
	_, err := authorize(t, p.addrs["gRPC"], f.pki.clientTLS(f.agent))
	wantRefusedCaller(t, "an SVID off the allowlist", err)
	if st, _ := status.FromError(err); !strings.Contains(st.Message(), "spiffe://example.org/agent/planner") {
		t.Errorf("message %q does not name the caller", st.Message())
	}
	var body struct {
		Error struct{ Reason, Message string }
	}
	_, data, err := httpsDo(t, http.MethodPost, "https://"+p.addrs["HTTP"]+"/access/v1/evaluation", evaluationBody, f.pki.clientTLS(f.agent))
	if err != nil || json.Unmarshal(data, &body) != nil || body.Error.Reason != engine.ReasonCallerNotAllowed {
		t.Errorf("HTTP refusal = %s, %v", data, err)
	}
}
