package identity_test

import (
	"context"
	"errors"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/intentpdp/intentpdp/server/engine"
)

// FuzzVerify: no input panics, every refusal is an Unauthenticated token
// error, and nothing but the one token the key signed verifies.
func FuzzVerify(f *testing.F) {
	k := newKey(f, "k", jose.ES256)
	v := newVerifier(f, testConfig(), fileKeys(f, k))
	good := mint(f, k, goodClaims(testNow))
	f.Add(good)
	f.Add(mint(f, k, goodClaims(testNow).with("aud", "x")))
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("..")
	f.Add("a.b.c.d.e")
	f.Fuzz(func(t *testing.T, tok string) {
		ver, err := v.Verify(context.Background(), tok)
		if err == nil {
			if tok != good {
				t.Fatalf("verified a token the key never signed: %q → %+v", tok, ver)
			}
			return
		}
		if ver != nil || !errors.Is(err, engine.ErrUnauthenticated) {
			t.Fatalf("Verify = %v, %v", ver, err)
		}
	})
}
