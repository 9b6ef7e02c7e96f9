package identity_test

import (
	"context"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/identity"
)

// BenchmarkVerify measures one verification: uncached (the signature
// check and the claims) for each key type, and a cache hit.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA} {
		k := newKey(b, "k", alg)
		tok := mint(b, k, goodClaims(testNow).with("tenant", "acme"))
		cfg := testConfig()
		cfg.CacheSize = -1
		uncached := newVerifier(b, cfg, fileKeys(b, k))
		b.Run("uncached/"+string(alg), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := uncached.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		if alg != jose.ES256 {
			continue
		}
		cached := newVerifier(b, testConfig(), fileKeys(b, k))
		b.Run("cached/"+string(alg), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cached.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecision is a warm decision through the engine without a
// token, and with a (cached) token in verified binding.
func BenchmarkDecision(b *testing.B) {
	k := newKey(b, "k", jose.ES256)
	v := newVerifier(b, testConfig(), fileKeys(b, k))
	tok := mint(b, k, goodClaims(testNow).with("sub", "code-reviewer"))
	reviewer := types.NewEntityUID("Agent", "code-reviewer")
	for _, c := range []struct {
		name string
		a    engine.Authenticator
		ctx  context.Context
	}{
		{"no-token", identity.NewAuthenticator(v, identity.BindRequest), context.Background()},
		{"token", identity.NewAuthenticator(v, identity.BindVerified), withToken(tok)},
	} {
		eng := exampleEngine(b, c.a)
		req := readRequest(reviewer)
		b.Run(c.name, func(b *testing.B) {
			if res, err := eng.Evaluate(c.ctx, "bench", req); err != nil || !res.Decision.Allow {
				b.Fatalf("%+v %v", res, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.Evaluate(c.ctx, "bench", req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
