// Package caller authorises the transport peer of a request: the caller
// (orchestrator, gateway, operator) that mutual TLS proved by its X.509-SVID.
// A Guard checks the caller's SPIFFE ID against the allowlist of the service
// called, before any front end sees the request, and hands the verified ID
// to the engine in the request context (engine.Credentials.Caller).
//
// The package trusts only what the listener's TLS configuration verified:
// it reads the leaf of a completed handshake and never verifies a chain of
// its own.
package caller

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/intentpdp/intentpdp/server/engine"
)

// Allowlist is a set of SPIFFE ID patterns: an exact ID
// (spiffe://example.org/orchestrator), every ID of a trust domain
// (spiffe://example.org/*), or every ID below a path
// (spiffe://example.org/ns/prod/*, which matches spiffe://example.org/ns/prod/a
// and spiffe://example.org/ns/prod/a/b but neither spiffe://example.org/ns/prod
// nor spiffe://example.org/ns/production). A nil Allowlist allows every
// caller. An Allowlist is immutable and safe for concurrent use.
type Allowlist struct {
	patterns []string
	exact    map[string]bool
	prefixes []string // each ends in "/"
}

// ParseAllowlist parses patterns; an empty list is an error, so that an
// allowlist flag set to nothing does not silently allow everyone.
func ParseAllowlist(patterns []string) (*Allowlist, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("empty caller allowlist")
	}
	a := &Allowlist{exact: map[string]bool{}}
	for _, p := range patterns {
		base, wildcard := strings.CutSuffix(p, "/*")
		if strings.Contains(base, "*") {
			return nil, fmt.Errorf("caller pattern %q: a * may only end the pattern, as /*", p)
		}
		id, err := spiffeid.FromString(base)
		if err != nil {
			return nil, fmt.Errorf("caller pattern %q: %w", p, err)
		}
		if wildcard {
			a.prefixes = append(a.prefixes, id.String()+"/")
		} else {
			if id.Path() == "" {
				return nil, fmt.Errorf("caller pattern %q names a trust domain, not a workload: write %s/* for every workload of it", p, id)
			}
			a.exact[id.String()] = true
		}
		a.patterns = append(a.patterns, p)
	}
	return a, nil
}

// Allows reports whether the SPIFFE ID id matches a pattern. An empty id
// (no SVID) is allowed only by a nil Allowlist.
func (a *Allowlist) Allows(id string) bool {
	if a == nil {
		return true
	}
	if id == "" {
		return false
	}
	if a.exact[id] {
		return true
	}
	for _, p := range a.prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// String lists the patterns, comma-separated.
func (a *Allowlist) String() string {
	if a == nil {
		return "*"
	}
	return strings.Join(a.patterns, ",")
}

// FromTLS returns the SPIFFE ID of the client certificate of a completed
// handshake: the one spiffe URI SAN of the leaf. It reports false without a
// client certificate or when the leaf is not an X.509-SVID. The listener's
// TLS configuration must have verified the certificate.
func FromTLS(state *tls.ConnectionState) (string, bool) {
	if state == nil || len(state.PeerCertificates) == 0 {
		return "", false
	}
	id, err := x509svid.IDFromCert(state.PeerCertificates[0])
	if err != nil {
		return "", false
	}
	return id.String(), true
}

// WithCaller returns ctx carrying id as the engine's Credentials.Caller,
// keeping the principal token a front end may already have attached.
func WithCaller(ctx context.Context, id string) context.Context {
	c := engine.CredentialsFrom(ctx)
	c.Caller = id
	return engine.WithCredentials(ctx, c)
}

// Guard checks the callers of one listener against its allowlist and
// attaches the verified caller to each request's context. It is safe for
// concurrent use.
type Guard struct {
	listener string
	allow    *Allowlist
	open     map[string]bool
	log      *slog.Logger
}

// Option configures a Guard.
type Option func(*Guard)

// WithLogger logs each refusal at warn level (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(g *Guard) { g.log = l } }

// WithOpenServices exempts the named gRPC services (full names, such as
// grpc.health.v1.Health) from the allowlist: any caller the TLS layer
// accepted may call them.
func WithOpenServices(names ...string) Option {
	return func(g *Guard) {
		for _, n := range names {
			g.open[n] = true
		}
	}
}

// NewGuard returns the guard of the listener named listener (for logs);
// a nil allow admits every caller the TLS layer accepted.
func NewGuard(listener string, allow *Allowlist, opts ...Option) *Guard {
	g := &Guard{listener: listener, allow: allow, open: map[string]bool{}, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(g)
	}
	return g
}

// Allowlist returns the guard's allowlist; nil admits every caller.
func (g *Guard) Allowlist() *Allowlist { return g.allow }

// admit returns ctx with the caller attached, or the error of a refused
// caller. what names the call for the error and the log.
func (g *Guard) admit(ctx context.Context, state *tls.ConnectionState, what string, open bool) (context.Context, error) {
	id, _ := FromTLS(state)
	if id != "" {
		ctx = WithCaller(ctx, id)
	}
	if open || g.allow.Allows(id) {
		return ctx, nil
	}
	shown := id
	if shown == "" {
		shown = "a caller without an X.509-SVID"
	}
	g.log.Warn("caller refused", "listener", g.listener, "caller", id, "call", what)
	return ctx, fmt.Errorf("%w: %s may not call %s", engine.ErrCallerNotAllowed, shown, what)
}

// grpcState is the TLS state of a gRPC call's connection, or nil.
func grpcState(ctx context.Context) *tls.ConnectionState {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		return &info.State
	}
	return nil
}

// service is the service part of a gRPC full method name, /pkg.Svc/Method.
func service(fullMethod string) string {
	s, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return s
}

func (g *Guard) admitGRPC(ctx context.Context, method string) (context.Context, error) {
	ctx, err := g.admit(ctx, grpcState(ctx), method, g.open[service(method)])
	if err != nil {
		return ctx, engine.Classify(err).Status().Err()
	}
	return ctx, nil
}

// UnaryInterceptor refuses a unary call of a caller off the allowlist
// with PermissionDenied (reason CALLER_NOT_ALLOWED) before its handler
// runs.
func (g *Guard) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := g.admitGRPC(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor is UnaryInterceptor for streaming calls.
func (g *Guard) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := g.admitGRPC(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &stream{ServerStream: ss, ctx: ctx})
	}
}

// ServerOptions are the interceptors of the guard.
func (g *Guard) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(g.UnaryInterceptor()), grpc.ChainStreamInterceptor(g.StreamInterceptor())}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

// Middleware refuses a request of a caller off the allowlist with 403 and
// a JSON error carrying the reason CALLER_NOT_ALLOWED, before h runs.
func (g *Guard) Middleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, err := g.admit(r.Context(), r.TLS, r.Method+" "+r.URL.Path, false)
		if err != nil {
			f := engine.Classify(err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.HTTPStatus)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
				"status": f.HTTPStatus, "reason": f.Reason, "message": f.Message,
			}})
			return
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
