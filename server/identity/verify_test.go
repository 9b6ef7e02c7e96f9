package identity_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/identity"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func testConfig() identity.Config {
	return identity.Config{Issuers: []string{testIssuer}, Audience: testAudience, Claims: []string{"tenant", "level", "admin", "groups", "bad"}}
}

func fileKeys(t testing.TB, keys ...testKey) *identity.KeySet {
	t.Helper()
	ks, err := identity.NewKeySet(context.Background(), identity.FileSource(writeJWKS(t, keys...)), identity.KeySetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func newVerifier(t testing.TB, cfg identity.Config, keys identity.Keys) *identity.Verifier {
	t.Helper()
	v, err := identity.NewVerifier(cfg, keys, identity.WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyGoodToken(t *testing.T) {
	t.Parallel()
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			k := newKey(t, "k1", alg)
			v := newVerifier(t, testConfig(), fileKeys(t, k))
			c := goodClaims(testNow).with("tenant", "acme", "level", 3, "admin", false, "groups", []string{"ops", "dev"},
				"bad", 1.5, "act", map[string]any{"sub": "user:alice", "act": map[string]any{"sub": "orchestrator", "iss": "https://o"}})
			ver, err := v.Verify(context.Background(), mint(t, k, c))
			if err != nil {
				t.Fatal(err)
			}
			if ver.Principal != types.NewEntityUID("Agent", "deployer") {
				t.Errorf("principal %v", ver.Principal)
			}
			id := ver.Identity
			if id.Issuer != testIssuer || id.Subject != "deployer" || id.SPIFFEID != "" || !id.ExpiresAt.Equal(testNow.Add(10*time.Minute)) {
				t.Errorf("identity %+v", id)
			}
			want := types.NewRecord(types.RecordMap{"tenant": types.String("acme"), "level": types.Long(3), "admin": types.False,
				"groups": types.NewSet(types.String("ops"), types.String("dev"))})
			if !id.Claims.Equal(want) {
				t.Errorf("claims %v, want %v", id.Claims, want)
			}
			inner := types.NewRecord(types.RecordMap{"sub": types.String("orchestrator"), "iss": types.String("https://o")})
			if id.Actor == nil || !id.Actor.Equal(types.NewRecord(types.RecordMap{"sub": types.String("user:alice"), "iss": types.String(""), "act": inner})) {
				t.Errorf("actor %v", id.Actor)
			}
		})
	}
}

// TestBadTokens is the table of refused tokens: each with the engine
// error (and so the reason) it is refused with.
func TestBadTokens(t *testing.T) {
	t.Parallel()
	rsaKey := newKey(t, "rsa", jose.RS256)
	ecKey := newKey(t, "ec", jose.ES256)
	stranger := newKey(t, "stranger", jose.ES256)
	v := newVerifier(t, testConfig(), fileKeys(t, rsaKey, ecKey))
	good := goodClaims(testNow)

	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hmacSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pubPEM}, (&jose.SignerOptions{}).WithHeader("kid", "rsa"))
	if err != nil {
		t.Fatal(err)
	}
	hs256, err := jwt.Signed(hmacSigner).Claims(map[string]any(good)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	payload := mint(t, rsaKey, good)
	none := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + strings.Split(payload, ".")[1] + "."
	goodTok := mint(t, ecKey, good)
	swapped := strings.Split(goodTok, ".")
	swapped[1] = b64([]byte(`{"iss":"` + testIssuer + `","sub":"root","aud":"intentpdp","exp":` + "9999999999" + `}`))

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"expired", mint(t, ecKey, good.with("iat", testNow.Add(-20*time.Minute).Unix(), "exp", testNow.Add(-time.Minute).Unix())), engine.ErrTokenExpired},
		{"not yet valid", mint(t, ecKey, good.with("nbf", testNow.Add(5*time.Minute).Unix())), engine.ErrTokenInvalid},
		{"issued in the future", mint(t, ecKey, good.with("iat", testNow.Add(5*time.Minute).Unix())), engine.ErrTokenInvalid},
		{"wrong issuer", mint(t, ecKey, good.with("iss", "https://evil.example")), engine.ErrIssuerNotAllowed},
		{"wrong audience", mint(t, ecKey, good.with("aud", "someone-else")), engine.ErrAudienceMismatch},
		{"no audience", mint(t, ecKey, good.with("aud", nil)), engine.ErrAudienceMismatch},
		{"alg none", none, engine.ErrTokenInvalid},
		{"HS256 signed with the RSA public key", hs256, engine.ErrTokenInvalid},
		{"unknown kid", mint(t, stranger, good), engine.ErrTokenInvalid},
		{"no kid, several keys", mint(t, testKey{alg: ecKey.alg, priv: ecKey.priv}, good), engine.ErrTokenInvalid},
		{"signed by another key with a known kid", mint(t, testKey{kid: "ec", alg: jose.ES256, priv: stranger.priv}, good), engine.ErrTokenInvalid},
		{"payload swapped", strings.Join(swapped, "."), engine.ErrTokenInvalid},
		{"truncated", goodTok[:len(goodTok)-10], engine.ErrTokenInvalid},
		{"no signature", strings.Join(strings.Split(goodTok, ".")[:2], ".") + ".", engine.ErrTokenInvalid},
		{"garbage", "not a token", engine.ErrTokenInvalid},
		{"oversized", mint(t, ecKey, good.with("pad", strings.Repeat("x", 9000))), engine.ErrTokenInvalid},
		{"lifetime above the maximum", mint(t, ecKey, good.with("exp", testNow.Add(2*time.Hour).Unix())), engine.ErrTokenTooLongLived},
		{"lifetime above the maximum from nbf", mint(t, ecKey, good.with("iat", nil, "nbf", testNow.Add(-time.Minute).Unix(), "exp", testNow.Add(time.Hour).Unix())), engine.ErrTokenTooLongLived},
		{"lifetime above the maximum from now", mint(t, ecKey, good.with("iat", nil, "exp", testNow.Add(61*time.Minute).Unix())), engine.ErrTokenTooLongLived},
		{"no exp", mint(t, ecKey, good.with("exp", nil)), engine.ErrTokenInvalid},
		{"no sub", mint(t, ecKey, good.with("sub", nil)), engine.ErrTokenInvalid},
		{"malformed act", mint(t, ecKey, good.with("act", "alice")), engine.ErrTokenInvalid},
		{"key alg differs from header", mint(t, testKey{kid: "rsa", alg: jose.PS256, priv: rsaKey.priv}, good), engine.ErrTokenInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ver, err := v.Verify(context.Background(), c.token)
			if ver != nil || !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, %v; want %v", ver, err, c.want)
			}
			if !errors.Is(err, engine.ErrUnauthenticated) {
				t.Errorf("%v does not wrap ErrUnauthenticated", err)
			}
			f := engine.Classify(err)
			t.Logf("%s → %s %s", c.name, f.Code, f.Reason)
			if strings.Contains(err.Error(), c.token) {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
}

func TestSkewAccepted(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k", jose.ES256)
	v := newVerifier(t, testConfig(), fileKeys(t, k))
	// Expired 10s ago, valid from 10s from now: both within the 30s skew.
	c := goodClaims(testNow).with("exp", testNow.Add(-10*time.Second).Unix(), "nbf", testNow.Add(10*time.Second).Unix(), "iat", nil)
	if _, err := v.Verify(context.Background(), mint(t, k, c)); err != nil {
		t.Fatal(err)
	}
}

func TestJWTSVID(t *testing.T) {
	t.Parallel()
	k := newKey(t, "svid-1", jose.ES256)
	path := writeFile(t, "bundle.json", []byte(`{"spiffe_sequence":3,"keys":[`+
		string(mustJSON(t, k.jwk("jwt-svid")))+`,`+string(mustJSON(t, newKey(t, "x509", jose.ES256).jwk("x509-svid")))+`]}`))
	ks, err := identity.NewKeySet(context.Background(), identity.FileSource(path), identity.KeySetOptions{SPIFFE: true})
	if err != nil {
		t.Fatal(err)
	}
	if ks.Has("x509") {
		t.Error("an x509-svid key is used for JWT-SVIDs")
	}
	cfg := testConfig()
	cfg.Issuers = []string{"spiffe://example.org"}
	cfg.SPIFFEPrefix = "spiffe://example.org/agent/"
	v := newVerifier(t, cfg, ks)
	svid := goodClaims(testNow).with("iss", "spiffe://example.org", "sub", "spiffe://example.org/agent/deployer")
	ver, err := v.Verify(context.Background(), mint(t, k, svid))
	if err != nil {
		t.Fatal(err)
	}
	if ver.Principal != types.NewEntityUID("Agent", "deployer") || ver.Identity.SPIFFEID != "spiffe://example.org/agent/deployer" {
		t.Errorf("verified %+v", ver)
	}
	outside := svid.with("sub", "spiffe://example.org/ops/root")
	if _, err := v.Verify(context.Background(), mint(t, k, outside)); !errors.Is(err, engine.ErrTokenInvalid) {
		t.Errorf("SPIFFE ID outside the prefix: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, cfg := range []identity.Config{
		{Audience: testAudience},
		{Issuers: []string{testIssuer}},
		{Issuers: []string{testIssuer}, Audience: testAudience, Algorithms: []string{"HS256"}},
		{Issuers: []string{testIssuer}, Audience: testAudience, Algorithms: []string{"none"}},
		{Issuers: []string{testIssuer}, Audience: testAudience, PrincipalType: "not a type!"},
	} {
		cfg.SetDefaults()
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v validates", cfg)
		}
	}
}
