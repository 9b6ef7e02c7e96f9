package forwardauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/gateway"
	"github.com/intentpdp/intentpdp/server/identity"
)

// TestNginxVerifiesBearer: behind a real nginx, intentpdp verifies the
// client's own `Authorization: Bearer` token (nginx passes it to the auth
// subrequest) and, in verified binding, takes the principal from it, never
// from the identity header; a bad or missing token is a 401 for the
// client, with the Bearer challenge.
func TestNginxVerifiesBearer(t *testing.T) {
	bin := findNginx(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256"}}})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := identity.NewKeySet(context.Background(), identity.FileSource(path), identity.KeySetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.Config{Issuers: []string{"https://issuer.example.org"}, Audience: "api"}, keys)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(sub, aud string) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		tok, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: "https://issuer.example.org", Subject: sub, Audience: jwt.Audience{aud},
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(backend.Close)
	pdp := startPDPWith(t, pdpSetup{activate: true,
		engineOpts:  []engine.Option{engine.WithAuthenticator(identity.NewAuthenticator(v, identity.BindVerified))},
		gatewayOpts: []gateway.Option{gateway.WithTokenPrincipal()},
	})
	front := startNginx(t, bin, host(t, pdp.URL), host(t, backend.URL), exampleHeaders)

	steps := []struct {
		name, token, agent string
		want               int
		challenge          string
	}{
		{"good token", mint("code-reviewer", "api"), "", http.StatusOK, ""},
		{"good token, the header names another agent", mint("code-reviewer", "api"), "intern-bot", http.StatusOK, ""},
		{"token of an agent the policy denies", mint("intern-bot", "api"), "code-reviewer", http.StatusForbidden, ""},
		{"wrong audience", mint("code-reviewer", "other"), "", http.StatusUnauthorized, `error="invalid_token"`},
		{"garbage", "a.b.c", "", http.StatusUnauthorized, `error="invalid_token"`},
		{"no token", "", "code-reviewer", http.StatusUnauthorized, `Bearer realm="intentpdp"`},
	}
	for _, s := range steps {
		req, err := http.NewRequest(http.MethodGet, front+"/repos/payments-api/issues?state=open", nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.token != "" {
			req.Header.Set("Authorization", "Bearer "+s.token)
		}
		if s.agent != "" {
			req.Header.Set("X-Agent-Id", s.agent)
		}
		before := hits.Load()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != s.want {
			t.Errorf("%s: nginx answered %d, want %d", s.name, resp.StatusCode, s.want)
		}
		if reached := hits.Load() > before; reached != (s.want == http.StatusOK) {
			t.Errorf("%s: backend reached: %v", s.name, reached)
		}
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, s.challenge) || (s.challenge == "") != (ch == "") {
			t.Errorf("%s: WWW-Authenticate %q, want %q", s.name, ch, s.challenge)
		}
	}
}
