package extauthz_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/extauthz"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// startPDP serves the example bundle with the example gateway mapping over
// real gRPC on loopback, the way intentpdp serve does, and returns an
// ext_authz client, the client Envoy uses.
func startPDP(t *testing.T, activate bool) (authv3.AuthorizationClient, *policystore.Store) {
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
	clock := func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }
	svc := engine.New(store, engine.WithClock(clock))
	cfg, err := gateway.LoadConfig("../../examples/gateway/agents.json")
	if err != nil {
		t.Fatal(err)
	}
	checker, err := gateway.NewChecker(svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extauthz.Register(gs, checker)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn), store
}

func fixture(t *testing.T, name string) *authv3.CheckRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var req authv3.CheckRequest
	if err := protojson.Unmarshal(b, &req); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &req
}

func TestCheck(t *testing.T) {
	client, store := startPDP(t, true)
	snap, err := store.Current()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fixture   string
		wantCode  codes.Code
		wantHTTP  int
		decided   bool     // a decision was made: decision id and revision present
		wantRules []string // reasons exposed in the deny body
	}{
		{fixture: "mtls-list-issues-allowed", wantCode: codes.OK, wantHTTP: http.StatusOK, decided: true},
		{fixture: "jwt-read-file-allowed", wantCode: codes.OK, wantHTTP: http.StatusOK, decided: true},
		{fixture: "mtls-intern-denied", wantCode: codes.PermissionDenied, wantHTTP: http.StatusForbidden, decided: true},
		{fixture: "jwt-secret-without-purpose-denied", wantCode: codes.PermissionDenied, wantHTTP: http.StatusForbidden, decided: true,
			wantRules: []string{"secrets-need-approved-purpose"}},
		{fixture: "mtls-foreign-trust-domain", wantCode: codes.Unauthenticated, wantHTTP: http.StatusUnauthorized},
		{fixture: "no-identity", wantCode: codes.Unauthenticated, wantHTTP: http.StatusUnauthorized},
		{fixture: "no-route", wantCode: codes.PermissionDenied, wantHTTP: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			resp, err := client.Check(context.Background(), fixture(t, tt.fixture))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != tt.wantCode {
				t.Fatalf("status %v (%s), want %v", got, resp.GetStatus().GetMessage(), tt.wantCode)
			}
			if tt.wantCode == codes.OK {
				checkAllowed(t, resp, snap.Revision())
				return
			}
			body := checkDenied(t, resp, tt.wantHTTP)
			if tt.decided && (body.DecisionID == "" || body.PolicyRevision != snap.Revision()) {
				t.Errorf("deny body %+v lacks the decision id or revision %q", body, snap.Revision())
			}
			if !tt.decided && body.Error == "" {
				t.Errorf("deny body %+v does not say why no decision was made", body)
			}
			if len(tt.wantRules) > 0 && !slices.Equal(body.Reasons, tt.wantRules) {
				t.Errorf("reasons %v, want %v", body.Reasons, tt.wantRules)
			}
		})
	}
}

func checkAllowed(t *testing.T, resp *authv3.CheckResponse, revision string) {
	t.Helper()
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("allowed without an OkHttpResponse: %v", resp)
	}
	got := map[string]string{}
	for _, h := range ok.GetHeaders() {
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if got["x-intentpdp-decision-id"] == "" || got["x-intentpdp-policy-revision"] != revision {
		t.Errorf("upstream headers %v lack the decision id or revision %q", got, revision)
	}
}

type denyBody struct {
	Decision       string   `json:"decision"`
	DecisionID     string   `json:"decision_id"`
	PolicyRevision string   `json:"policy_revision"`
	Reasons        []string `json:"reasons"`
	Error          string   `json:"error"`
}

func checkDenied(t *testing.T, resp *authv3.CheckResponse, wantHTTP int) denyBody {
	t.Helper()
	denied := resp.GetDeniedResponse()
	if denied == nil {
		t.Fatalf("denied without a DeniedHttpResponse: %v", resp)
	}
	if got := int(denied.GetStatus().GetCode()); got != wantHTTP {
		t.Errorf("HTTP status %d, want %d", got, wantHTTP)
	}
	var body denyBody
	if err := json.Unmarshal([]byte(denied.GetBody()), &body); err != nil {
		t.Fatalf("deny body %q: %v", denied.GetBody(), err)
	}
	if body.Decision != "deny" {
		t.Errorf("deny body says %q", body.Decision)
	}
	return body
}

// TestCheckWithoutBundleFailsClosed: before any bundle is active the PDP
// cannot decide, and Envoy must be told to deny, never OK.
func TestCheckWithoutBundleFailsClosed(t *testing.T) {
	client, _ := startPDP(t, false)
	resp, err := client.Check(context.Background(), fixture(t, "mtls-list-issues-allowed"))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := codes.Code(resp.GetStatus().GetCode()); got != codes.Unavailable {
		t.Fatalf("status %v, want Unavailable", got)
	}
	checkDenied(t, resp, http.StatusServiceUnavailable)
}

// TestCheckRefusesNonCanonicalPaths: an allowed request (deployer reads
// README.md) respelled so that Envoy without path normalisation, or the
// backend, would serve another file is denied with 400 and
// NON_CANONICAL_PATH, never OK.
func TestCheckRefusesNonCanonicalPaths(t *testing.T) {
	client, _ := startPDP(t, true)
	for _, path := range []string{
		"/repos/payments-api/contents/README.md/%2e%2e/secrets.env",
		"/repos/payments-api/contents/x/../README.md",
		"/repos/payments-api/contents/x%2F..%2FREADME.md",
		"/repos/payments-api/contents//README.md",
		"/repos/payments-api/contents/README.md/",
		"/repos/payments-api/contents/README.md#x",
		"/repos/payments-api/contents/README.md;x",
		"/repos/payments-api/contents/%252e%252e/README.md",
		"/repos/payments-api/contents/README.md%00",
		"/repos/payments-api/contents/x/%c0%ae%c0%ae/README.md",
	} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			req := fixture(t, "jwt-read-file-allowed")
			h := req.GetAttributes().GetRequest().GetHttp()
			h.Path = path
			h.Headers[":path"] = path
			resp, err := client.Check(context.Background(), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != codes.InvalidArgument {
				t.Fatalf("status %v (%s), want InvalidArgument", got, resp.GetStatus().GetMessage())
			}
			if got := statusReason(t, resp); got != engine.ReasonNonCanonicalPath {
				t.Errorf("reason %q, want %s", got, engine.ReasonNonCanonicalPath)
			}
			if body := checkDenied(t, resp, http.StatusBadRequest); body.Error == "" {
				t.Errorf("deny body %+v does not say why", body)
			}
		})
	}
}

// TestCheckRefusesMethodOverride: a header that asks the backend to act as
// another method than the one decided is refused.
func TestCheckRefusesMethodOverride(t *testing.T) {
	client, _ := startPDP(t, true)
	req := fixture(t, "jwt-read-file-allowed")
	req.GetAttributes().GetRequest().GetHttp().Headers["x-http-method-override"] = "PUT"
	resp, err := client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := codes.Code(resp.GetStatus().GetCode()); got != codes.InvalidArgument || statusReason(t, resp) != engine.ReasonConflictingHeaders {
		t.Fatalf("status %v, reason %q; want InvalidArgument %s", got, statusReason(t, resp), engine.ReasonConflictingHeaders)
	}
	checkDenied(t, resp, http.StatusBadRequest)
}

// statusReason is the ErrorInfo reason in the CheckResponse status.
func statusReason(t *testing.T, resp *authv3.CheckResponse) string {
	t.Helper()
	for _, d := range resp.GetStatus().GetDetails() {
		var info errdetails.ErrorInfo
		if d.MessageIs(&info) {
			if err := d.UnmarshalTo(&info); err != nil {
				t.Fatal(err)
			}
			return info.GetReason()
		}
	}
	return ""
}
