package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrUnknownKey means no key of the key set has the token's key id, even
// after a refresh.
var ErrUnknownKey = errors.New("unknown signing key")

// MaxKeySetBytes bounds a JWKS document or SPIFFE bundle.
const MaxKeySetBytes = 1 << 20

// Keys yields the public keys tokens are verified with. Implementations
// must be safe for concurrent use.
type Keys interface {
	// Key returns the key named kid ("" when the token names none, which
	// only a set of one key answers). An unknown kid may refresh the set,
	// within the implementation's bounds.
	Key(ctx context.Context, kid string) (*jose.JSONWebKey, error)
	// Has reports whether kid is in the current set, without refreshing;
	// a cached verification is only served while its key is.
	Has(kid string) bool
}

// Source fetches a key set document. etag is what the previous fetch
// returned; a source that can tell returns notModified when the document
// has not changed since.
type Source interface {
	Fetch(ctx context.Context, etag string) (doc []byte, newETag string, notModified bool, err error)
}

// FileSource reads a JWKS (or SPIFFE bundle) file; its ETag is the file's
// modification time and size, so an unchanged file is not re-read.
type FileSource string

// Fetch implements Source.
func (f FileSource) Fetch(_ context.Context, etag string) ([]byte, string, bool, error) {
	fi, err := os.Stat(string(f))
	if err != nil {
		return nil, "", false, err
	}
	tag := strconv.FormatInt(fi.ModTime().UnixNano(), 10) + "/" + strconv.FormatInt(fi.Size(), 10)
	if tag == etag {
		return nil, etag, true, nil
	}
	fh, err := os.Open(string(f))
	if err != nil {
		return nil, "", false, err
	}
	defer fh.Close()
	doc, err := readBounded(fh)
	return doc, tag, false, err
}

// URLSource fetches a JWKS over HTTP(S) with If-None-Match.
type URLSource struct {
	URL    string
	Client *http.Client // nil: a client with a 5s timeout
}

// Fetch implements Source.
func (u URLSource) Fetch(ctx context.Context, etag string) ([]byte, string, bool, error) {
	c := u.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL, nil)
	if err != nil {
		return nil, "", false, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, etag, true, nil
	case http.StatusOK:
		doc, err := readBounded(resp.Body)
		return doc, resp.Header.Get("ETag"), false, err
	default:
		return nil, "", false, fmt.Errorf("GET %s: %s", u.URL, resp.Status)
	}
}

func readBounded(r io.Reader) ([]byte, error) {
	doc, err := io.ReadAll(io.LimitReader(r, MaxKeySetBytes+1))
	if err != nil {
		return nil, err
	}
	if len(doc) > MaxKeySetBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", MaxKeySetBytes)
	}
	return doc, nil
}

// KeySetOptions bound how a KeySet refreshes.
type KeySetOptions struct {
	// SPIFFE reads the document as a SPIFFE trust bundle: only keys with
	// "use": "jwt-svid" count. Otherwise keys with no "use" or "sig" do.
	SPIFFE bool
	// MinRefreshInterval is the least time between two fetches; an
	// unknown kid within it is refused without a fetch.
	MinRefreshInterval time.Duration
	// MaxAge is how long a fetched set is used before a background
	// refresh (a failed refresh keeps the set).
	MaxAge time.Duration
	// Timeout bounds one fetch.
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// KeySet is a Keys read from a Source: fetched once when made, then again
// when a token names an unknown kid (at most once per
// MinRefreshInterval) or when the set is older than MaxAge. A failed
// fetch keeps the last good set. It is safe for concurrent use.
type KeySet struct {
	src        Source
	opts       KeySetOptions
	cur        atomic.Pointer[keyMap]
	mu         sync.Mutex // serialises fetches
	last       time.Time  // last fetch attempt, under mu
	refreshing atomic.Bool
}

type keyMap struct {
	byKID   map[string]*jose.JSONWebKey
	etag    string
	fetched time.Time
}

// NewKeySet fetches src's keys; it fails if that first fetch does.
func NewKeySet(ctx context.Context, src Source, opts KeySetOptions) (*KeySet, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	s := &KeySet{src: src, opts: opts}
	s.cur.Store(&keyMap{})
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Has implements Keys.
func (s *KeySet) Has(kid string) bool {
	m := s.cur.Load()
	s.maybeRefresh(m)
	_, ok := m.lookup(kid)
	return ok
}

// Key implements Keys.
func (s *KeySet) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	m := s.cur.Load()
	if k, ok := m.lookup(kid); ok {
		s.maybeRefresh(m)
		return k, nil
	}
	s.mu.Lock()
	if s.opts.Now().Sub(s.last) >= s.opts.MinRefreshInterval {
		if err := s.refreshLocked(ctx); err != nil {
			s.opts.Logger.Warn("principal token keys: refresh failed, keeping the last good set", "err", err)
		}
	}
	s.mu.Unlock()
	if k, ok := s.cur.Load().lookup(kid); ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
}

// Refresh fetches the set now, whatever the bounds.
func (s *KeySet) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshLocked(ctx)
}

func (s *KeySet) refreshLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	now := s.opts.Now()
	s.last = now
	old := s.cur.Load()
	doc, etag, notModified, err := s.src.Fetch(ctx, old.etag)
	if err != nil {
		return fmt.Errorf("fetch principal token keys: %w", err)
	}
	if notModified {
		s.cur.Store(&keyMap{byKID: old.byKID, etag: old.etag, fetched: now})
		return nil
	}
	keys, err := parseKeys(doc, s.opts.SPIFFE)
	if err != nil {
		return err
	}
	s.cur.Store(&keyMap{byKID: keys, etag: etag, fetched: now})
	return nil
}

// maybeRefresh starts one background refresh when m is older than MaxAge.
func (s *KeySet) maybeRefresh(m *keyMap) {
	if s.opts.MaxAge <= 0 || s.opts.Now().Sub(m.fetched) < s.opts.MaxAge || !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.refreshing.Store(false)
		if err := s.Refresh(context.Background()); err != nil {
			s.opts.Logger.Warn("principal token keys: refresh failed, keeping the last good set", "err", err)
		}
	}()
}

func (m *keyMap) lookup(kid string) (*jose.JSONWebKey, bool) {
	if kid == "" && len(m.byKID) == 1 {
		for _, k := range m.byKID {
			return k, true
		}
	}
	k, ok := m.byKID[kid]
	return k, ok
}

// parseKeys keeps the usable public signature keys of a JWKS document:
// RSA, EC and OKP (Ed25519) keys, private halves dropped; never a
// symmetric key.
func parseKeys(doc []byte, spiffe bool) (map[string]*jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("parse principal token keys: %w", err)
	}
	out := map[string]*jose.JSONWebKey{}
	for _, k := range set.Keys {
		if spiffe && k.Use != "jwt-svid" || !spiffe && k.Use != "" && k.Use != "sig" {
			continue
		}
		pub := k.Public()
		switch pub.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		if !pub.Valid() {
			continue
		}
		out[pub.KeyID] = &pub
	}
	if len(out) == 0 {
		return nil, errors.New("parse principal token keys: no usable public signature key")
	}
	return out, nil
}
