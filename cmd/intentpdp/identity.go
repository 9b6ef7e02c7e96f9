package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/gateway"
	"github.com/intentpdp/intentpdp/server/identity"
)

// IdentityConfig configures principal-token verification, the engine's
// authenticate step. It is off unless TokenIssuers is set.
type IdentityConfig struct {
	// TokenIssuers are the accepted `iss` values; setting one turns
	// verification on.
	TokenIssuers stringList
	// TokenAudience must be among a token's `aud`; required with issuers.
	TokenAudience string
	// Exactly one key source: a JWKS file, a JWKS URL or a SPIFFE JWT
	// bundle file.
	JWKSFile        string
	JWKSURL         string
	SPIFFEJWTBundle string
	// JWKSMinRefresh is the least time between two key fetches (an unknown
	// kid within it is refused without one); JWKSMaxAge triggers a
	// background refresh; JWKSTimeout bounds one fetch.
	JWKSMinRefresh time.Duration
	JWKSMaxAge     time.Duration
	JWKSTimeout    time.Duration
	// TokenAlgorithms allowlists `alg` (comma-separated; asymmetric only).
	TokenAlgorithms string
	TokenClockSkew  time.Duration
	MaxTokenLife    time.Duration
	MaxTokenBytes   int
	TokenCacheSize  int
	// PrincipalBinding is request, verified or verified-or-request.
	PrincipalBinding string
	// PrincipalType, PrincipalClaim, PrincipalSPIFFEPrefix map a token to
	// the principal; PrincipalClaims (comma-separated) are copied into
	// context.identity.claims.
	PrincipalType         string
	PrincipalClaim        string
	PrincipalSPIFFEPrefix string
	PrincipalClaims       string
}

var defaultIdentity = IdentityConfig{
	JWKSMinRefresh:   10 * time.Second,
	JWKSMaxAge:       5 * time.Minute,
	JWKSTimeout:      5 * time.Second,
	TokenAlgorithms:  strings.Join(identity.DefaultAlgorithms, ","),
	TokenClockSkew:   identity.DefaultClockSkew,
	MaxTokenLife:     identity.DefaultMaxLifetime,
	MaxTokenBytes:    identity.DefaultMaxTokenBytes,
	TokenCacheSize:   identity.DefaultCacheSize,
	PrincipalBinding: string(identity.BindRequest),
	PrincipalType:    identity.DefaultPrincipalType,
	PrincipalClaim:   identity.DefaultPrincipalClaim,
}

func (c *IdentityConfig) bindFlags(fs *flag.FlagSet) {
	d := defaultIdentity
	fs.Var(&c.TokenIssuers, "token-issuer", "accepted principal-token issuer (iss); repeatable; enables token verification")
	fs.StringVar(&c.TokenAudience, "token-audience", "", "audience (aud) principal tokens must be for (required with --token-issuer)")
	fs.StringVar(&c.JWKSFile, "jwks-file", "", "JWKS file of the token issuers' public keys (re-read when it changes)")
	fs.StringVar(&c.JWKSURL, "jwks-url", "", "JWKS URL of the token issuers' public keys (cached, ETag)")
	fs.StringVar(&c.SPIFFEJWTBundle, "spiffe-jwt-bundle", "", "SPIFFE trust bundle file whose jwt-svid keys verify JWT-SVIDs")
	fs.DurationVar(&c.JWKSMinRefresh, "jwks-min-refresh", d.JWKSMinRefresh, "least time between two key fetches on an unknown kid")
	fs.DurationVar(&c.JWKSMaxAge, "jwks-max-age", d.JWKSMaxAge, "age of the key set after which it is refreshed in the background")
	fs.DurationVar(&c.JWKSTimeout, "jwks-timeout", d.JWKSTimeout, "bound of one key fetch")
	fs.StringVar(&c.TokenAlgorithms, "token-algorithms", d.TokenAlgorithms, "accepted token signature algorithms (asymmetric only)")
	fs.DurationVar(&c.TokenClockSkew, "token-clock-skew", d.TokenClockSkew, "leeway on exp, nbf and iat")
	fs.DurationVar(&c.MaxTokenLife, "max-token-lifetime", d.MaxTokenLife, "longest accepted token lifetime (exp-iat, else exp-nbf, else exp-now)")
	fs.IntVar(&c.MaxTokenBytes, "max-token-bytes", d.MaxTokenBytes, "largest accepted principal token")
	fs.IntVar(&c.TokenCacheSize, "token-cache-size", d.TokenCacheSize, "verified tokens cached until their exp")
	fs.StringVar(&c.PrincipalBinding, "principal-binding", d.PrincipalBinding, "where the principal comes from: request, verified (the token) or verified-or-request")
	fs.StringVar(&c.PrincipalType, "principal-type", d.PrincipalType, "Cedar entity type of a token's principal")
	fs.StringVar(&c.PrincipalClaim, "principal-claim", d.PrincipalClaim, "claim holding the principal id (dotted path, e.g. act.sub)")
	fs.StringVar(&c.PrincipalSPIFFEPrefix, "principal-spiffe-prefix", "", "prefix stripped from the principal claim, e.g. spiffe://example.org/agent/")
	fs.StringVar(&c.PrincipalClaims, "principal-claims", "", "claims copied into context.identity.claims, e.g. tenant,groups")
}

// SetDefaults fills unset fields from defaultIdentity.
func (c *IdentityConfig) SetDefaults() {
	d := defaultIdentity
	setPositive(&c.JWKSMinRefresh, d.JWKSMinRefresh)
	setPositive(&c.JWKSMaxAge, d.JWKSMaxAge)
	setPositive(&c.JWKSTimeout, d.JWKSTimeout)
	setDefault(&c.TokenAlgorithms, d.TokenAlgorithms)
	setPositive(&c.TokenClockSkew, d.TokenClockSkew)
	setPositive(&c.MaxTokenLife, d.MaxTokenLife)
	setPositive(&c.MaxTokenBytes, d.MaxTokenBytes)
	setDefault(&c.TokenCacheSize, d.TokenCacheSize)
	setDefault(&c.PrincipalBinding, d.PrincipalBinding)
	setDefault(&c.PrincipalType, d.PrincipalType)
	setDefault(&c.PrincipalClaim, d.PrincipalClaim)
}

func (c *IdentityConfig) enabled() bool { return len(c.TokenIssuers) > 0 }

// Validate reports every problem at once.
func (c *IdentityConfig) Validate() []error {
	var errs []error
	binding, err := identity.ParseBinding(c.PrincipalBinding)
	if err != nil {
		errs = append(errs, err)
	}
	sources := 0
	for _, s := range []string{c.JWKSFile, c.JWKSURL, c.SPIFFEJWTBundle} {
		if s != "" {
			sources++
		}
	}
	if !c.enabled() {
		if c.TokenAudience != "" || sources > 0 || binding != identity.BindRequest {
			errs = append(errs, errors.New("token-issuer is required by token-audience, jwks-file, jwks-url, spiffe-jwt-bundle and principal-binding other than request"))
		}
		return errs
	}
	if sources != 1 {
		errs = append(errs, errors.New("token-issuer: exactly one of jwks-file, jwks-url and spiffe-jwt-bundle is required"))
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("jwks-url %q: want an absolute http(s) URL", c.JWKSURL))
		}
	}
	cfg := c.verifierConfig()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

func (c *IdentityConfig) verifierConfig() identity.Config {
	return identity.Config{
		Issuers: c.TokenIssuers, Audience: c.TokenAudience, Algorithms: splitList(c.TokenAlgorithms),
		ClockSkew: c.TokenClockSkew, MaxLifetime: c.MaxTokenLife, MaxTokenBytes: c.MaxTokenBytes, CacheSize: c.TokenCacheSize,
		PrincipalType: c.PrincipalType, PrincipalClaim: c.PrincipalClaim, SPIFFEPrefix: c.PrincipalSPIFFEPrefix,
		Claims: splitList(c.PrincipalClaims),
	}
}

// engineOptions fetches the keys and returns the engine's authenticate
// step; none when verification is off.
func (c *IdentityConfig) engineOptions(ctx context.Context, log *slog.Logger) ([]engine.Option, error) {
	if !c.enabled() {
		return nil, nil
	}
	var src identity.Source = identity.FileSource(c.JWKSFile)
	opts := identity.KeySetOptions{MinRefreshInterval: c.JWKSMinRefresh, MaxAge: c.JWKSMaxAge, Timeout: c.JWKSTimeout, Logger: log}
	switch {
	case c.JWKSURL != "":
		src = identity.URLSource{URL: c.JWKSURL}
	case c.SPIFFEJWTBundle != "":
		src, opts.SPIFFE = identity.FileSource(c.SPIFFEJWTBundle), true
	}
	keys, err := identity.NewKeySet(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	v, err := identity.NewVerifier(c.verifierConfig(), keys)
	if err != nil {
		return nil, err
	}
	binding, _ := identity.ParseBinding(c.PrincipalBinding) // checked by Validate
	log.Info("verifying principal tokens", "issuers", []string(c.TokenIssuers), "audience", c.TokenAudience, "binding", binding)
	return []engine.Option{engine.WithAuthenticator(identity.NewAuthenticator(v, binding))}, nil
}

// gatewayOptions make gateway hooks take the principal from the token in
// the verified bindings.
func (c *IdentityConfig) gatewayOptions() []gateway.Option {
	if c.enabled() && c.PrincipalBinding != string(identity.BindRequest) {
		return []gateway.Option{gateway.WithTokenPrincipal()}
	}
	return nil
}
