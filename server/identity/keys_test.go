package identity_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/identity"
)

// jwksServer serves a JWKS with an ETag and counts full and conditional
// fetches.
type jwksServer struct {
	mu          sync.Mutex
	doc         []byte
	version     int
	fetches     atomic.Int32
	notModified atomic.Int32
}

func (s *jwksServer) set(doc []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc, s.version = doc, s.version+1
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	doc, tag := s.doc, `"v`+strconv.Itoa(s.version)+`"`
	s.mu.Unlock()
	s.fetches.Add(1)
	if r.Header.Get("If-None-Match") == tag {
		s.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", tag)
	_, _ = w.Write(doc)
}

// TestJWKSRotation rotates the issuer's keys behind a real JWKS server: a
// token signed by a new key is accepted after the refresh its unknown kid
// triggers; once the old key is withdrawn, tokens signed by it are
// refused, cached or not.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey1 := newKey(t, "2026-10", jose.ES256), newKey(t, "2026-11", jose.EdDSA)
	srv := &jwksServer{}
	srv.set(jwks(t, "sig", oldKey))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ctx := context.Background()
	ks, err := identity.NewKeySet(ctx, identity.URLSource{URL: ts.URL, Client: ts.Client()}, identity.KeySetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, testConfig(), ks)
	oldTok := mint(t, oldKey, goodClaims(testNow))
	if _, err := v.Verify(ctx, oldTok); err != nil {
		t.Fatal(err)
	}
	// An unknown kid with an unchanged set: a conditional fetch, 304.
	if _, err := v.Verify(ctx, mint(t, newKey1, goodClaims(testNow))); !errors.Is(err, engine.ErrTokenInvalid) {
		t.Fatalf("token of a key not yet published: %v", err)
	}
	if srv.notModified.Load() != 1 {
		t.Errorf("%d conditional fetches answered 304, want 1", srv.notModified.Load())
	}
	srv.set(jwks(t, "sig", oldKey, newKey1))
	newTok := mint(t, newKey1, goodClaims(testNow).with("sub", "planner"))
	if ver, err := v.Verify(ctx, newTok); err != nil || ver.Principal.ID != "planner" {
		t.Fatalf("token of the new key after rotation: %v, %v", ver, err)
	}
	srv.set(jwks(t, "sig", newKey1))
	if err := ks.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, oldTok); !errors.Is(err, engine.ErrTokenInvalid) {
		t.Errorf("cached token of a withdrawn key: %v", err)
	}
	if _, err := v.Verify(ctx, newTok); err != nil {
		t.Errorf("token of the current key: %v", err)
	}
	// A broken document keeps the last good set.
	srv.set([]byte("{not json"))
	if err := ks.Refresh(ctx); err == nil {
		t.Error("refresh with a broken document succeeded")
	}
	if _, err := v.Verify(ctx, mint(t, newKey1, goodClaims(testNow).with("sub", "x"))); err != nil {
		t.Errorf("after a failed refresh: %v", err)
	}
}

// TestUnknownKidRefreshIsBounded: a flood of tokens with unknown kids
// fetches at most once per MinRefreshInterval.
func TestUnknownKidRefreshIsBounded(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k", jose.ES256)
	srv := &jwksServer{}
	srv.set(jwks(t, "sig", k))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	ks, err := identity.NewKeySet(context.Background(), identity.URLSource{URL: ts.URL, Client: ts.Client()},
		identity.KeySetOptions{MinRefreshInterval: 10 * time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := ks.Key(context.Background(), "unknown-"+strconv.Itoa(i)); !errors.Is(err, identity.ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches within the interval, want 1 (the first)", n)
	}
	now.Add(int64(11 * time.Second))
	_, _ = ks.Key(context.Background(), "unknown")
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches after the interval, want 2", n)
	}
}

func TestJWKSFileChange(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t, "k1", jose.ES256), newKey(t, "k2", jose.ES256)
	path := writeJWKS(t, k1)
	ks, err := identity.NewKeySet(context.Background(), identity.FileSource(path), identity.KeySetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, testConfig(), ks)
	if err := os.WriteFile(path, jwks(t, "sig", k1, k2), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), mint(t, k2, goodClaims(testNow))); err != nil {
		t.Fatalf("token of a key added to the file: %v", err)
	}
}

func TestKeySetRefusesUnusableDocuments(t *testing.T) {
	t.Parallel()
	hmac := []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`)
	big := make([]byte, identity.MaxKeySetBytes+1)
	for _, doc := range [][]byte{hmac, big, []byte(`{"keys":[]}`)} {
		if _, err := identity.NewKeySet(context.Background(), identity.FileSource(writeFile(t, "k.json", doc)), identity.KeySetOptions{}); err == nil {
			t.Errorf("key set of %.40q accepted", doc)
		}
	}
}

func TestCachedTokenExpires(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k", jose.ES256)
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	v, err := identity.NewVerifier(testConfig(), fileKeys(t, k), identity.WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, k, goodClaims(testNow))
	for range 2 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	now.Add(int64(11 * time.Minute))
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, engine.ErrTokenExpired) {
		t.Fatalf("cached token after exp: %v", err)
	}
}
