package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/decisionlog"
)

// SpanName is the name of the span that covers one decision. A batch gets
// one such span per item, all children of the batch call's span, so each
// decision is found and read the same way whatever front end asked.
const SpanName = "intentpdp.authorize"

// Front ends, as recorded in metrics, spans and the decision log.
const (
	FrontEndGRPC        = "grpc"
	FrontEndAuthZEN     = "authzen"
	FrontEndExtAuthz    = "ext_authz"
	FrontEndForwardAuth = "forward_auth"
)

// Span attributes of a decision span.
const (
	AttrDecision      = "intentpdp.decision"
	AttrPolicyIDs     = "intentpdp.policy_ids"
	AttrErrorCount    = "intentpdp.error_count"
	AttrRevision      = "intentpdp.policy_revision"
	AttrPrincipalType = "intentpdp.principal.type"
	AttrPrincipalID   = "intentpdp.principal.id"
	AttrAction        = "intentpdp.action"
	AttrResourceType  = "intentpdp.resource.type"
	AttrResourceID    = "intentpdp.resource.id"
	AttrTaskID        = "intentpdp.task_id"
	AttrDecisionID    = "intentpdp.decision_id"
	AttrFrontEnd      = "intentpdp.front_end"
)

// ErrDecisionNotLogged means a decision was made but could not be recorded
// in the decision log (it is closing, or in block mode or with a durable
// log the request's context ended first), so it is not returned.
var ErrDecisionNotLogged = errors.New("the decision could not be logged")

// DecisionObserver records decisions as metrics.
type DecisionObserver interface {
	ObserveDecision(frontEnd string, d policystore.Decision, err error, latency time.Duration)
	ObserveBatch(frontEnd string, n int)
}

// DecisionLogger records decisions in the decision log. Log returns an
// error wrapping decisionlog.ErrNotAccepted when the decision must be denied
// because it cannot be logged (deny mode: queue full or sink failing), and
// decisionlog.ErrNotLogged or ErrClosed when it must not be returned.
type DecisionLogger interface {
	Log(ctx context.Context, r decisionlog.Record) error
}

// TracedIdentifiers says which identifiers, possibly personal data, decision
// spans carry. Entity types, the action and the task id are always recorded.
type TracedIdentifiers struct {
	PrincipalID bool
	ResourceID  bool
}

// WithTracerProvider sets where decision spans go (default: nowhere).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Service) { s.tracer = tp.Tracer("github.com/intentpdp/intentpdp/server") }
}

// WithTracedIdentifiers sets which identifiers decision spans carry.
func WithTracedIdentifiers(ids TracedIdentifiers) Option {
	return func(s *Service) { s.tracedIDs = ids }
}

// WithMetrics sets the decision metrics.
func WithMetrics(m DecisionObserver) Option { return func(s *Service) { s.metrics = m } }

// WithDecisionLog sets the decision log. Every decision Evaluate returns
// has been queued to it, except a deny caused by the log refusing it.
func WithDecisionLog(l DecisionLogger) Option { return func(s *Service) { s.decisionLog = l } }

// ObserveBatch records the size of a batch call from a front end.
func (s *Service) ObserveBatch(frontEnd string, n int) { s.metrics.ObserveBatch(frontEnd, n) }

// observe gives one decision, started at start under span, its log record,
// metrics and span attributes; it returns what the caller may answer.
func (s *Service) observe(ctx context.Context, span trace.Span, start time.Time, frontEnd string, req policystore.Request,
	d policystore.Decision, id string, err error) (policystore.Decision, string, error) {
	latency := time.Since(start)
	if err == nil && s.decisionLog != nil {
		rec := decisionlog.Record{
			DecisionID: id, Time: start, FrontEnd: frontEnd,
			Request: req, Decision: d, Latency: latency,
		}
		if sc := span.SpanContext(); sc.IsValid() {
			rec.TraceID, rec.SpanID = sc.TraceID().String(), sc.SpanID().String()
		}
		d, err = s.logDecision(ctx, rec)
	}
	s.metrics.ObserveDecision(frontEnd, d, err, latency)
	if span.IsRecording() {
		s.annotate(span, frontEnd, req, d, id, err)
	}
	if err != nil {
		return policystore.Decision{}, "", err
	}
	return d, id, nil
}

// logDecision hands the decision's record to the log. When the log refuses
// it in deny mode (queue full, sink failing), the decision becomes a deny
// that says why: a decision that cannot be accounted for must not allow.
// When the log is closed, or the request's context ends before the log
// takes the record (block mode) or makes it durable (sync), there is no
// decision to return: ErrDecisionNotLogged.
func (s *Service) logDecision(ctx context.Context, rec decisionlog.Record) (policystore.Decision, error) {
	d := rec.Decision
	err := s.decisionLog.Log(ctx, rec)
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, decisionlog.ErrNotAccepted):
		msg := "denied: the decision log is full"
		if errors.Is(err, decisionlog.ErrSinkFailing) {
			msg = "denied: the decision log cannot write"
		}
		return policystore.Decision{
			Revision: d.Revision,
			Errors:   append(d.Errors, policystore.EvalError{PolicyID: "intentpdp.decision_log", Message: msg}),
		}, nil
	case errors.Is(err, decisionlog.ErrClosed), errors.Is(err, decisionlog.ErrNotLogged):
		return d, fmt.Errorf("%w: %w", ErrDecisionNotLogged, err)
	default:
		return d, err
	}
}

func (s *Service) annotate(span trace.Span, frontEnd string, req policystore.Request, d policystore.Decision, id string, err error) {
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		attribute.String(AttrFrontEnd, frontEnd),
		attribute.String(AttrPrincipalType, string(req.Principal.Type)),
		attribute.String(AttrAction, string(req.Action.ID)),
		attribute.String(AttrResourceType, string(req.Resource.Type)),
	)
	if req.Intent.TaskID != "" {
		attrs = append(attrs, attribute.String(AttrTaskID, req.Intent.TaskID))
	}
	if s.tracedIDs.PrincipalID {
		attrs = append(attrs, attribute.String(AttrPrincipalID, string(req.Principal.ID)))
	}
	if s.tracedIDs.ResourceID {
		attrs = append(attrs, attribute.String(AttrResourceID, string(req.Resource.ID)))
	}
	if err != nil {
		span.SetAttributes(attrs...)
		span.RecordError(err)
		span.SetStatus(codes.Error, "no decision")
		return
	}
	decision := "DENY"
	if d.Allow {
		decision = "ALLOW"
	}
	ids := d.PolicyIDs()
	span.SetAttributes(append(attrs,
		attribute.String(AttrDecision, decision),
		attribute.StringSlice(AttrPolicyIDs, ids),
		attribute.Int(AttrErrorCount, len(d.Errors)),
		attribute.String(AttrRevision, d.Revision),
		attribute.String(AttrDecisionID, id),
	)...)
}

// noMetrics is the default when no metrics are configured.
type noMetrics struct{}

func (noMetrics) ObserveDecision(string, policystore.Decision, error, time.Duration) {}
func (noMetrics) ObserveBatch(string, int)                                           {}
