// Package identity verifies principal tokens (JWT-SVIDs, OIDC and OAuth
// access tokens) and is the engine's authenticate step: a request whose
// caller forwarded a token gets the identity the token proves, and
// context.identity; a token that does not verify refuses the request.
package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

// DefaultAlgorithms are the signature algorithms accepted unless
// configured otherwise: asymmetric ones only. HMAC and "none" are never
// accepted, whatever the configuration.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Defaults of Config.
const (
	DefaultClockSkew      = 30 * time.Second
	DefaultMaxLifetime    = time.Hour
	DefaultMaxTokenBytes  = 8 << 10
	DefaultCacheSize      = 10_000
	DefaultPrincipalType  = "Agent"
	DefaultPrincipalClaim = "sub"
	maxActorDepth         = 8
)

// Config says which tokens a Verifier accepts and how a token becomes a
// principal.
type Config struct {
	// Issuers are the accepted `iss` values; at least one is required.
	Issuers []string
	// Audience must be one of the token's `aud` values; required.
	Audience string
	// Algorithms allowlists the `alg` header (default DefaultAlgorithms).
	Algorithms []string
	// ClockSkew is the leeway on exp, nbf and iat (default 30s).
	ClockSkew time.Duration
	// MaxLifetime refuses a token whose exp is further than this from its
	// iat (else nbf, else now) (default 1h).
	MaxLifetime time.Duration
	// MaxTokenBytes refuses larger tokens before parsing (default 8 KiB).
	MaxTokenBytes int
	// CacheSize bounds the verified-token cache (default 10000; negative:
	// no cache).
	CacheSize int
	// PrincipalType is the Cedar type of the principal (default Agent).
	PrincipalType string
	// PrincipalClaim names the claim holding the principal's id (default
	// sub); a dotted path reaches into objects (`act.sub`).
	PrincipalClaim string
	// SPIFFEPrefix, when set, is stripped from the principal claim, which
	// must start with it (`spiffe://example.org/agent/`).
	SPIFFEPrefix string
	// Claims are copied, typed, into context.identity.claims: strings,
	// integers (Long), booleans, arrays of strings (Set); other values are
	// left out.
	Claims []string
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.MaxTokenBytes <= 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.PrincipalType == "" {
		c.PrincipalType = DefaultPrincipalType
	}
	if c.PrincipalClaim == "" {
		c.PrincipalClaim = DefaultPrincipalClaim
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Issuers) == 0 {
		errs = append(errs, errors.New("token-issuer: at least one issuer is required"))
	}
	for _, iss := range c.Issuers {
		if iss == "" {
			errs = append(errs, errors.New("token-issuer: an issuer may not be empty"))
		}
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("token-audience is required with token-issuer"))
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(DefaultAlgorithms, a) {
			errs = append(errs, fmt.Errorf("token-algorithms: %q is not an accepted asymmetric algorithm (%s)", a, strings.Join(DefaultAlgorithms, ", ")))
		}
	}
	if c.ClockSkew < 0 || c.ClockSkew > 5*time.Minute {
		errs = append(errs, fmt.Errorf("token-clock-skew %v: want 0 to 5m", c.ClockSkew))
	}
	if _, err := cedarvalue.EntityUID("principal-type", c.PrincipalType, "x"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Verified is what one verified token proves. It is shared by every
// request carrying the token: read only.
type Verified struct {
	Principal types.EntityUID
	// Identity is context.identity without the caller.
	Identity *policystore.Identity
	kid      string
	// forCaller is Identity with the caller that last presented the token,
	// shared by its requests.
	forCaller atomic.Pointer[policystore.Identity]
}

// ForCaller is v's identity as presented by caller (context.identity.caller),
// shared by consecutive requests of that caller.
func (v *Verified) ForCaller(caller string) *policystore.Identity {
	if caller == "" {
		return v.Identity
	}
	if id := v.forCaller.Load(); id != nil && id.Caller == caller {
		return id
	}
	b := v.Identity
	id := &policystore.Identity{Issuer: b.Issuer, Subject: b.Subject, SPIFFEID: b.SPIFFEID, Audience: b.Audience,
		ExpiresAt: b.ExpiresAt, Claims: b.Claims, Actor: b.Actor, Caller: caller}
	v.forCaller.Store(id)
	return id
}

// Verifier verifies principal tokens against its Keys and Config. It is
// safe for concurrent use.
type Verifier struct {
	cfg   Config
	keys  Keys
	algs  []jose.SignatureAlgorithm
	claim []string
	now   func() time.Time
	cache *cache
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithClock sets the clock tokens are checked against (default time.Now).
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// NewVerifier returns a Verifier of tokens signed by keys; cfg gets its
// defaults and must validate.
func NewVerifier(cfg Config, keys Keys, opts ...VerifierOption) (*Verifier, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg, keys: keys, now: time.Now, claim: strings.Split(cfg.PrincipalClaim, ".")}
	for _, a := range cfg.Algorithms {
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}
	if cfg.CacheSize > 0 {
		v.cache = newCache(cfg.CacheSize)
	}
	for _, opt := range opts {
		opt(v)
	}
	return v, nil
}

// Verify checks token and returns what it proves. Errors wrap one of the
// engine's token errors (ErrTokenInvalid, ErrTokenExpired, ...) and never
// quote the token.
func (v *Verifier) Verify(ctx context.Context, token string) (*Verified, error) {
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", engine.ErrTokenInvalid, v.cfg.MaxTokenBytes)
	}
	now := v.now()
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		if ver, ok := v.cache.get(sum); ok {
			if !now.Before(ver.Identity.ExpiresAt.Add(v.cfg.ClockSkew)) {
				v.cache.remove(sum)
				return nil, fmt.Errorf("%w at %s", engine.ErrTokenExpired, ver.Identity.ExpiresAt.UTC().Format(time.RFC3339))
			}
			if v.keys.Has(ver.kid) {
				return ver, nil
			}
			v.cache.remove(sum) // its key was withdrawn: verify again
		}
	}
	ver, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(sum, ver)
	}
	return ver, nil
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*Verified, error) {
	tok, err := jwt.ParseSigned(token, v.algs)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", engine.ErrTokenInvalid, parseProblem(err))
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: want one signature", engine.ErrTokenInvalid)
	}
	h := tok.Headers[0]
	key, err := v.keys.Key(ctx, h.KeyID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", engine.ErrTokenInvalid, err)
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm {
		return nil, fmt.Errorf("%w: key %q is for %s, not %s", engine.ErrTokenInvalid, h.KeyID, key.Algorithm, h.Algorithm)
	}
	var c jwt.Claims
	var raw map[string]json.RawMessage
	if err := tok.Claims(key.Key, &c, &raw); err != nil {
		return nil, fmt.Errorf("%w: signature or claims do not verify", engine.ErrTokenInvalid)
	}
	if !slices.Contains(v.cfg.Issuers, c.Issuer) {
		return nil, fmt.Errorf("%w: %q", engine.ErrIssuerNotAllowed, c.Issuer)
	}
	if !c.Audience.Contains(v.cfg.Audience) {
		return nil, engine.ErrAudienceMismatch
	}
	skew := v.cfg.ClockSkew
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", engine.ErrTokenInvalid)
	}
	exp := c.Expiry.Time()
	if !now.Before(exp.Add(skew)) {
		return nil, fmt.Errorf("%w at %s", engine.ErrTokenExpired, exp.UTC().Format(time.RFC3339))
	}
	start := now
	if c.NotBefore != nil {
		if nbf := c.NotBefore.Time(); now.Add(skew).Before(nbf) {
			return nil, fmt.Errorf("%w: not valid before %s", engine.ErrTokenInvalid, nbf.UTC().Format(time.RFC3339))
		} else {
			start = nbf
		}
	}
	if c.IssuedAt != nil {
		iat := c.IssuedAt.Time()
		if now.Add(skew).Before(iat) {
			return nil, fmt.Errorf("%w: issued in the future", engine.ErrTokenInvalid)
		}
		start = iat
	}
	if life := exp.Sub(start); life > v.cfg.MaxLifetime {
		return nil, fmt.Errorf("%w: %v, the maximum is %v", engine.ErrTokenTooLongLived, life.Round(time.Second), v.cfg.MaxLifetime)
	}
	return v.identity(c, raw, h.KeyID, exp)
}

// parseProblem says why a token did not parse without quoting it.
func parseProblem(err error) string {
	if strings.Contains(err.Error(), "unexpected signature algorithm") {
		return "signature algorithm not allowed"
	}
	return "malformed"
}

// identity maps verified claims onto the principal and context.identity.
func (v *Verifier) identity(c jwt.Claims, raw map[string]json.RawMessage, kid string, exp time.Time) (*Verified, error) {
	id, err := v.principalID(raw)
	if err != nil {
		return nil, err
	}
	aud := make([]types.Value, len(c.Audience))
	for i, a := range c.Audience {
		aud[i] = types.String(a)
	}
	ver := &Verified{
		Principal: types.NewEntityUID(types.EntityType(v.cfg.PrincipalType), types.String(id)),
		kid:       kid,
		Identity: &policystore.Identity{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			Audience:  types.NewSet(aud...),
			ExpiresAt: exp,
		},
	}
	if strings.HasPrefix(c.Subject, "spiffe://") {
		ver.Identity.SPIFFEID = c.Subject
	}
	claims := types.RecordMap{}
	for _, name := range v.cfg.Claims {
		if val, ok := claimValue(raw[name]); ok {
			claims[types.String(name)] = val
		}
	}
	ver.Identity.Claims = types.NewRecord(claims)
	if act, ok := raw["act"]; ok {
		rec, err := actor(act, 0)
		if err != nil {
			return nil, err
		}
		ver.Identity.Actor = &rec
	}
	return ver, nil
}

func (v *Verifier) principalID(raw map[string]json.RawMessage) (string, error) {
	cur := raw
	var id string
	for i, part := range v.claim {
		b, ok := cur[part]
		if !ok {
			return "", fmt.Errorf("%w: no %s claim", engine.ErrTokenInvalid, v.cfg.PrincipalClaim)
		}
		if i == len(v.claim)-1 {
			if json.Unmarshal(b, &id) != nil || id == "" {
				return "", fmt.Errorf("%w: claim %s is not a non-empty string", engine.ErrTokenInvalid, v.cfg.PrincipalClaim)
			}
			break
		}
		cur = nil
		if json.Unmarshal(b, &cur) != nil {
			return "", fmt.Errorf("%w: no %s claim", engine.ErrTokenInvalid, v.cfg.PrincipalClaim)
		}
	}
	if p := v.cfg.SPIFFEPrefix; p != "" {
		rest, ok := strings.CutPrefix(id, p)
		if !ok || rest == "" {
			return "", fmt.Errorf("%w: %s is outside %q", engine.ErrTokenInvalid, v.cfg.PrincipalClaim, p)
		}
		id = rest
	}
	return id, nil
}

// claimValue converts a JSON claim to a Cedar value: string, integer,
// boolean or array of strings.
func claimValue(b json.RawMessage) (types.Value, bool) {
	if len(b) == 0 {
		return nil, false
	}
	switch b[0] {
	case '"':
		var s string
		if json.Unmarshal(b, &s) == nil {
			return types.String(s), true
		}
	case 't', 'f':
		var x bool
		if json.Unmarshal(b, &x) == nil {
			return types.Boolean(x), true
		}
	case '[':
		var ss []string
		if json.Unmarshal(b, &ss) == nil {
			vals := make([]types.Value, len(ss))
			for i, s := range ss {
				vals[i] = types.String(s)
			}
			return types.NewSet(vals...), true
		}
	default:
		if n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil {
			return types.Long(n), true
		}
	}
	return nil, false
}

// actor converts an RFC 8693 `act` claim to {sub, iss, act?}.
func actor(b json.RawMessage, depth int) (types.Record, error) {
	if depth >= maxActorDepth {
		return types.Record{}, fmt.Errorf("%w: act nested deeper than %d", engine.ErrTokenInvalid, maxActorDepth)
	}
	var a struct {
		Sub string          `json:"sub"`
		Iss string          `json:"iss"`
		Act json.RawMessage `json:"act"`
	}
	if err := json.Unmarshal(b, &a); err != nil || a.Sub == "" {
		return types.Record{}, fmt.Errorf("%w: act is not an object with a sub", engine.ErrTokenInvalid)
	}
	rec := types.RecordMap{"sub": types.String(a.Sub), "iss": types.String(a.Iss)}
	if len(a.Act) > 0 && string(a.Act) != "null" {
		inner, err := actor(a.Act, depth+1)
		if err != nil {
			return types.Record{}, err
		}
		rec["act"] = inner
	}
	return types.NewRecord(rec), nil
}
