// Package grpcapi is intentpdp's gRPC front end: AuthorizationService
// (Authorize, BatchAuthorize) deciding through the engine, the
// PolicyAdminService, and the gRPC server that carries them with panic
// recovery, a codec that refuses malformed messages as InvalidArgument,
// health and reflection. It decodes wire requests (values through
// cedarvalue) and maps errors with engine.Classify.
package grpcapi

import (
	"context"
	"fmt"
	"log/slog"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

// FrontEnd is how metrics, spans and the decision log name this front end.
const FrontEnd engine.FrontEnd = "grpc"

// Service implements pdpv1.AuthorizationServiceServer. It is safe for
// concurrent use.
type Service struct {
	pdpv1.UnimplementedAuthorizationServiceServer

	engine     *engine.Engine
	limits     engine.Limits
	log        *slog.Logger
	sinkHealth SinkHealthReporter // nil: no decision log to report on
}

// Option configures a Service.
type Option func(*Service)

// WithLimits sets the request limits; unset fields keep their defaults.
func WithLimits(l engine.Limits) Option {
	return func(s *Service) {
		l.SetDefaults()
		s.limits = l
	}
}

// WithLogger sets the logger of internal errors and recovered panics.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithDecisionLogHealth makes the health service follow the decision log's
// sink (see Health); l is the engine's decision log.
func WithDecisionLogHealth(l SinkHealthReporter) Option {
	return func(s *Service) { s.sinkHealth = l }
}

// New returns a Service deciding through eng.
func New(eng *engine.Engine, opts ...Option) *Service {
	s := &Service{engine: eng, limits: engine.DefaultLimits, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Authorize decides one request.
func (s *Service) Authorize(ctx context.Context, req *pdpv1.AuthorizeRequest) (*pdpv1.AuthorizeResponse, error) {
	p, err := s.engine.Pin()
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	resp, err := s.decide(withToken(ctx, req.GetPrincipalToken()), p, req)
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	return resp, nil
}

// withToken returns ctx carrying the principal token for the authenticate
// step, beside the caller the transport set, if any.
func withToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	c := engine.CredentialsFrom(ctx)
	c.PrincipalToken = token
	return engine.WithCredentials(ctx, c)
}

// BatchAuthorize decides every request against one snapshot.
func (s *Service) BatchAuthorize(ctx context.Context, req *pdpv1.BatchAuthorizeRequest) (*pdpv1.BatchAuthorizeResponse, error) {
	n := len(req.GetRequests())
	if n == 0 {
		return nil, toStatus(s.log, engine.Invalid("requests is empty"))
	}
	if err := s.limits.CheckBatch(n); err != nil {
		return nil, toStatus(s.log, err)
	}
	p, err := s.engine.Pin()
	if err != nil {
		return nil, toStatus(s.log, err)
	}
	s.engine.ObserveBatch(FrontEnd, n)
	out := &pdpv1.BatchAuthorizeResponse{
		Responses:      make([]*pdpv1.AuthorizeResponse, n),
		PolicyRevision: p.Revision(),
	}
	batchCtx := withToken(ctx, req.GetPrincipalToken())
	for i, r := range req.GetRequests() {
		itemCtx := batchCtx
		if r.GetPrincipalToken() != "" {
			itemCtx = withToken(ctx, r.GetPrincipalToken())
		}
		resp, err := s.decide(itemCtx, p, r)
		if err != nil {
			return nil, toStatus(s.log, fmt.Errorf("requests[%d]: %w", i, err))
		}
		out.Responses[i] = resp
	}
	return out, nil
}

// decide decodes and checks one wire request, then evaluates it.
func (s *Service) decide(ctx context.Context, p engine.Pinned, req *pdpv1.AuthorizeRequest) (*pdpv1.AuthorizeResponse, error) {
	d := decoder{cedarvalue.New(s.limits)}
	preq, err := d.request(req, engine.CredentialsFrom(ctx).PrincipalToken != "")
	if err != nil {
		return nil, err
	}
	res, err := p.Evaluate(ctx, FrontEnd, preq)
	if err != nil {
		return nil, err
	}
	return EncodeDecision(res.Decision, res.ID), nil
}

// Decide decodes req and decides it through eng within limits, as
// Authorize does, for callers outside a server (the eval command).
func Decide(ctx context.Context, eng *engine.Engine, req *pdpv1.AuthorizeRequest, limits engine.Limits) (*pdpv1.AuthorizeResponse, error) {
	p, err := eng.Pin()
	if err != nil {
		return nil, err
	}
	s := Service{engine: eng, limits: limits}
	return s.decide(withToken(ctx, req.GetPrincipalToken()), p, req)
}
