package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// testIssuer is an OIDC-style issuer: one ES256 key, published as a JWKS
// file.
type testIssuer struct {
	key  *ecdsa.PrivateKey
	jwks string
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return &testIssuer{key: key, jwks: path}
}

func (i *testIssuer) mint(t *testing.T, sub string, exp time.Duration) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: "https://issuer.example.org", Subject: sub, Audience: jwt.Audience{"intentpdp"},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(exp)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func reasonOf(err error) (codes.Code, string) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), info.Reason
		}
	}
	return st.Code(), ""
}

// TestServeVerifiedPrincipal runs the real binary with verified principal
// binding: the principal is the token's, a forged body principal and a
// missing or bad token are refused with their reasons.
func TestServeVerifiedPrincipal(t *testing.T) {
	iss := newTestIssuer(t)
	p := startServe(t, nil, "--token-issuer", "https://issuer.example.org", "--token-audience", "intentpdp",
		"--jwks-file", iss.jwks, "--principal-binding", "verified")
	ctx := context.Background()
	good := iss.mint(t, "code-reviewer", 10*time.Minute)

	req := readFile("code-reviewer")
	req.Principal = nil
	req.PrincipalToken = good
	resp, err := p.client.Authorize(ctx, req)
	if err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
		t.Fatalf("good token: %v, %v", resp, err)
	}
	forged := readFile("deployer")
	forged.PrincipalToken = good
	cases := []struct {
		name   string
		req    *pdpv1.AuthorizeRequest
		code   codes.Code
		reason string
	}{
		{"forged body principal", forged, codes.PermissionDenied, "PRINCIPAL_MISMATCH"},
		{"no token", readFile("code-reviewer"), codes.Unauthenticated, "TOKEN_MISSING"},
		{"too long lived", withTok(readFile("code-reviewer"), iss.mint(t, "code-reviewer", 2*time.Hour)), codes.Unauthenticated, "TOKEN_TOO_LONG_LIVED"},
		{"garbage", withTok(readFile("code-reviewer"), "a.b.c"), codes.Unauthenticated, "TOKEN_INVALID"},
	}
	for _, c := range cases {
		_, err := p.client.Authorize(ctx, c.req)
		if code, reason := reasonOf(err); code != c.code || reason != c.reason {
			t.Errorf("%s: %v %s, want %v %s (%v)", c.name, code, reason, c.code, c.reason, err)
		}
	}
	// A batch: the batch token for items without their own.
	batch, err := p.client.BatchAuthorize(ctx, &pdpv1.BatchAuthorizeRequest{
		PrincipalToken: good,
		Requests:       []*pdpv1.AuthorizeRequest{{Intent: req.Intent, Resource: req.Resource}, withTok(readFile("planner"), iss.mint(t, "planner", time.Minute))},
	})
	if err != nil || len(batch.GetResponses()) != 2 || batch.Responses[0].GetDecision() != pdpv1.Decision_DECISION_ALLOW {
		t.Fatalf("batch: %v, %v", batch, err)
	}
	// AuthZEN: the token in subject.properties.token; a bad one is a 401
	// with a Bearer challenge.
	body := `{"subject":{"type":"Agent","id":"code-reviewer","properties":{"token":"a.b.c"}},"action":{"name":"read_file"},"resource":{"type":"Document","id":"x"}}`
	hresp, err := http.Post("http://"+p.httpAddr+"/access/v1/evaluation", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusUnauthorized || !strings.Contains(hresp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("AuthZEN with a bad token: %d %q", hresp.StatusCode, hresp.Header.Get("WWW-Authenticate"))
	}
	p.stop(t)
}

func withTok(r *pdpv1.AuthorizeRequest, tok string) *pdpv1.AuthorizeRequest {
	r.PrincipalToken = tok
	return r
}

func TestIdentityConfigValidate(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--token-issuer", "https://i"},
		{"--token-issuer", "https://i", "--token-audience", "a"},
		{"--token-audience", "a"},
		{"--principal-binding", "verified"},
		{"--token-issuer", "https://i", "--token-audience", "a", "--jwks-file", "f", "--jwks-url", "https://x"},
		{"--token-issuer", "https://i", "--token-audience", "a", "--jwks-file", "f", "--token-algorithms", "HS256"},
		{"--token-issuer", "https://i", "--token-audience", "a", "--jwks-file", "f", "--principal-binding", "trust-me"},
	} {
		err := serveWith(context.Background(), args, &strings.Builder{}, listenTCP)
		if err == nil || !strings.Contains(err.Error(), "token") && !strings.Contains(err.Error(), "jwks") && !strings.Contains(err.Error(), "binding") {
			t.Errorf("%v: %v", args, err)
		}
	}
}
