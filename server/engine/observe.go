package engine

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

// decisionSpanKind is made once: an option built per call would allocate.
var decisionSpanKind = trace.WithSpanKind(trace.SpanKindInternal)

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
	AttrTaskState     = "intentpdp.task_state"
	AttrDecisionID    = "intentpdp.decision_id"
	AttrFrontEnd      = "intentpdp.front_end"
	// AttrWouldHave lists the log-only policies that would have changed
	// the decision (policystore.Decision.WouldHave); absent when none.
	AttrWouldHave = "intentpdp.would_have"
)

// DecisionObserver records decisions as metrics (telemetry.Metrics).
type DecisionObserver interface {
	// ObserveDecision records one pass through Evaluate; err non-nil means
	// no decision was made.
	ObserveDecision(frontEnd FrontEnd, d policystore.Decision, err error, latency time.Duration)
	ObserveBatch(frontEnd FrontEnd, n int)
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

// admit is the decision-log admission step of Evaluate: it hands the
// decision's record to the log and returns the decision that may be
// answered. When the log refuses it in deny mode (queue full, sink
// failing), the decision becomes a deny that says why. When the log is
// closed, or the request's context ends before the log takes the record
// (block mode) or makes it durable (sync), there is no decision to
// return: ErrDecisionNotLogged.
func (e *Engine) admit(ctx context.Context, span trace.Span, start time.Time, latency time.Duration,
	frontEnd FrontEnd, req policystore.Request, res Result) (policystore.Decision, error) {
	d := res.Decision
	rec := decisionlog.Record{
		DecisionID: res.ID, Time: start, FrontEnd: string(frontEnd),
		Request: req, Decision: d, Latency: latency,
	}
	if sc := span.SpanContext(); sc.IsValid() {
		rec.TraceID, rec.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	err := e.decisionLog.Log(ctx, rec)
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

// RefusalPolicyID is the policy id of the one error of a refusal record.
const RefusalPolicyID = "intentpdp.authenticate"

// refused reports whether err is a refusal of the authenticate step.
func refused(err error) bool {
	return errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrPrincipalMismatch)
}

// logRefusal records a request the authenticate step refused: a deny
// with no reasons and one error, RefusalPolicyID with the machine-readable
// reason (TOKEN_EXPIRED, ...) as its message; nothing of the token. The
// principal is the one the request claimed. It is best effort: the
// request is refused whatever the log answers.
func (e *Engine) logRefusal(ctx context.Context, span trace.Span, start time.Time, latency time.Duration,
	frontEnd FrontEnd, req policystore.Request, revision string, err error) {
	rec := decisionlog.Record{
		DecisionID: e.newID(), Time: start, FrontEnd: string(frontEnd), Request: req, Latency: latency,
		Decision: policystore.Decision{Revision: revision, Errors: []policystore.EvalError{{PolicyID: RefusalPolicyID, Message: Classify(err).Reason}}},
	}
	if sc := span.SpanContext(); sc.IsValid() {
		rec.TraceID, rec.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	_ = e.decisionLog.Log(ctx, rec)
}

// maxDecisionAttrs is the most attributes a decision span gets.
const maxDecisionAttrs = 14

// attrBuffer holds the attributes of one decision span, and its policy
// ids, while they are built. The SDK copies what SetAttributes is given
// (and StringSlice the ids), so the buffer goes back to the engine's pool
// afterwards; handed to the span's interface method, a local array would
// escape to the heap at every decision.
type attrBuffer struct {
	attrs [maxDecisionAttrs]attribute.KeyValue
	ids   [4]string
}

// annotate is the span step of Evaluate: only for a span that records, so
// an unsampled decision builds no attribute. All attributes go in one
// SetAttributes call, which takes the span's lock once and grows its
// attribute slice once.
func (e *Engine) annotate(span trace.Span, frontEnd FrontEnd, req policystore.Request, res Result, err error) {
	buf := e.attrBuffers.Get().(*attrBuffer)
	attrs := append(buf.attrs[:0],
		attribute.String(AttrFrontEnd, string(frontEnd)),
		attribute.String(AttrPrincipalType, string(req.Principal.Type)),
		attribute.String(AttrAction, string(req.Action.ID)),
		attribute.String(AttrResourceType, string(req.Resource.Type)),
	)
	if req.Intent.TaskID != "" {
		attrs = append(attrs, attribute.String(AttrTaskID, req.Intent.TaskID))
	}
	if req.TaskState != "" {
		attrs = append(attrs, attribute.String(AttrTaskState, req.TaskState))
	}
	if e.tracedIDs.PrincipalID {
		attrs = append(attrs, attribute.String(AttrPrincipalID, string(req.Principal.ID)))
	}
	if e.tracedIDs.ResourceID {
		attrs = append(attrs, attribute.String(AttrResourceID, string(req.Resource.ID)))
	}
	if err == nil {
		d := res.Decision
		attrs = append(attrs,
			attribute.String(AttrDecision, string(d.Outcome())),
			attribute.StringSlice(AttrPolicyIDs, policyIDs(buf.ids[:0], d.Reasons)),
			attribute.Int(AttrErrorCount, len(d.Errors)),
			attribute.String(AttrRevision, d.Revision),
			attribute.String(AttrDecisionID, res.ID),
		)
		if len(d.WouldHave) > 0 {
			attrs = append(attrs, attribute.StringSlice(AttrWouldHave, d.WouldHave))
		}
	}
	span.SetAttributes(attrs...)
	*buf = attrBuffer{} // the pool must not keep the request's strings alive
	e.attrBuffers.Put(buf)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "no decision")
	}
}

// policyIDs appends the policy ids of reasons to ids.
func policyIDs(ids []string, reasons []policystore.Reason) []string {
	for _, r := range reasons {
		ids = append(ids, r.PolicyID)
	}
	return ids
}

// noMetrics is the default when no metrics are configured.
type noMetrics struct{}

func (noMetrics) ObserveDecision(FrontEnd, policystore.Decision, error, time.Duration) {}
func (noMetrics) ObserveBatch(FrontEnd, int)                                           {}
