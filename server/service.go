// Package server serves intentpdp's decisions over gRPC.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// SnapshotSource yields the snapshot to decide against.
type SnapshotSource interface {
	Current() (*policystore.Snapshot, error)
}

// Service implements pdpv1.AuthorizationServiceServer. It is safe for
// concurrent use.
type Service struct {
	pdpv1.UnimplementedAuthorizationServiceServer

	store           SnapshotSource
	limits          Limits
	rejectOverrides bool
	log             *slog.Logger
	now             func() time.Time
	newID           func() string
	tracer          trace.Tracer
	tracedIDs       TracedIdentifiers
	metrics         DecisionObserver
	decisionLog     DecisionLogger // nil: no decision log
}

// Option configures a Service.
type Option func(*Service)

// WithLimits sets the request limits; unset fields keep their defaults.
func WithLimits(l Limits) Option {
	return func(s *Service) {
		l.SetDefaults()
		s.limits = l
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithClock sets the clock behind context.now.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithRejectEntityOverrides makes request entity data that contradicts the
// bundle an InvalidArgument error instead of being ignored and reported.
func WithRejectEntityOverrides(reject bool) Option {
	return func(s *Service) { s.rejectOverrides = reject }
}

// NewService returns a Service deciding against store's current snapshot.
func NewService(store SnapshotSource, opts ...Option) *Service {
	s := &Service{
		store:  store,
		limits: DefaultLimits,
		log:    slog.New(slog.DiscardHandler),
		now:    time.Now,
		newID:  newDecisionID,
	}
	s.tracer, s.metrics = noop.NewTracerProvider().Tracer(""), noMetrics{}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Limits returns the limits the service enforces.
func (s *Service) Limits() Limits { return s.limits }

func newDecisionID() string { return uuid.Must(uuid.NewV7()).String() }

// Authorize decides one request.
func (s *Service) Authorize(ctx context.Context, req *pdpv1.AuthorizeRequest) (*pdpv1.AuthorizeResponse, error) {
	snap, err := s.store.Current()
	if err != nil {
		return nil, ToStatus(s.log, err)
	}
	resp, err := s.decide(ctx, snap, req)
	if err != nil {
		return nil, ToStatus(s.log, err)
	}
	return resp, nil
}

// BatchAuthorize decides every request against one snapshot.
func (s *Service) BatchAuthorize(ctx context.Context, req *pdpv1.BatchAuthorizeRequest) (*pdpv1.BatchAuthorizeResponse, error) {
	n := len(req.GetRequests())
	if n == 0 {
		return nil, ToStatus(s.log, Invalid("requests is empty"))
	}
	if err := s.limits.CheckBatch(n); err != nil {
		return nil, ToStatus(s.log, err)
	}
	snap, err := s.store.Current()
	if err != nil {
		return nil, ToStatus(s.log, err)
	}
	s.ObserveBatch(FrontEndGRPC, n)
	out := &pdpv1.BatchAuthorizeResponse{
		Responses:      make([]*pdpv1.AuthorizeResponse, n),
		PolicyRevision: snap.Revision(),
	}
	for i, r := range req.GetRequests() {
		resp, err := s.decide(ctx, snap, r)
		if err != nil {
			return nil, ToStatus(s.log, fmt.Errorf("requests[%d]: %w", i, err))
		}
		out.Responses[i] = resp
	}
	return out, nil
}

// decide is the gRPC front end's decision path: decode and check the wire
// request, then Evaluate.
func (s *Service) decide(ctx context.Context, snap *policystore.Snapshot, req *pdpv1.AuthorizeRequest) (*pdpv1.AuthorizeResponse, error) {
	preq, err := DecodeRequest(req, s.limits)
	if err != nil {
		return nil, err
	}
	d, id, err := s.Evaluate(ctx, FrontEndGRPC, snap, preq)
	if err != nil {
		return nil, err
	}
	return EncodeDecision(d, id), nil
}

// Evaluate is the one decision path every front end (gRPC, Envoy ext_authz,
// AuthZEN, forward-auth) goes through: it decides a checked request against
// snap and assigns the decision id. Errors mean no decision was made; front
// ends must then deny (fail closed). Each decision gets a span, metrics and
// a decision log record, all naming frontEnd (FrontEndGRPC, ...), who asked.
func (s *Service) Evaluate(ctx context.Context, frontEnd string, snap *policystore.Snapshot, req policystore.Request) (policystore.Decision, string, error) {
	start := time.Now()
	ctx, span := s.tracer.Start(ctx, SpanName, trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	d, id, err := s.evaluate(ctx, snap, req)
	return s.observe(ctx, span, start, frontEnd, req, d, id, err)
}

func (s *Service) evaluate(ctx context.Context, snap *policystore.Snapshot, req policystore.Request) (policystore.Decision, string, error) {
	if err := ctx.Err(); err != nil {
		return policystore.Decision{}, "", err
	}
	req.Now = s.now()
	req.RejectOverrides = s.rejectOverrides
	d, err := snap.Decide(ctx, req)
	if err != nil {
		return policystore.Decision{}, "", err
	}
	return d, s.newID(), nil
}

// Now is the service clock, the source of context.now for every front end.
func (s *Service) Now() time.Time { return s.now() }

// Store returns the snapshot source the service decides against.
func (s *Service) Store() SnapshotSource { return s.store }
