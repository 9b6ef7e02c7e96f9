// Package engine makes intentpdp's decisions. Every front end (gRPC,
// AuthZEN, Envoy ext_authz, forward-auth) decodes its own wire format into
// a policystore.Request and hands it to Evaluate, which runs the same named
// steps for all of them and gives each decision one span, one metric series
// and one decision log record. The engine names no front end: each front
// end package declares its own FrontEnd value, and depends on the engine,
// never the reverse.
package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/intentpdp/intentpdp/policystore"
)

// FrontEnd names who asked for a decision, as metrics, spans and the
// decision log record it ("grpc", "authzen", ...). Each front end package
// declares its own.
type FrontEnd string

// SnapshotSource yields the snapshot to decide against (a policystore.Store).
type SnapshotSource interface {
	Current() (*policystore.Snapshot, error)
}

// Fixed is a SnapshotSource that always yields snap (offline evaluation,
// tests).
func Fixed(snap *policystore.Snapshot) SnapshotSource { return fixed{snap} }

type fixed struct{ snap *policystore.Snapshot }

func (f fixed) Current() (*policystore.Snapshot, error) { return f.snap, nil }

// Engine decides requests against the current snapshot of its source. It
// is safe for concurrent use.
type Engine struct {
	store           SnapshotSource
	rejectOverrides bool
	log             *slog.Logger
	now             func() time.Time
	newID           func() string
	tracer          trace.Tracer // nil: no decision spans
	tracedIDs       TracedIdentifiers
	metrics         DecisionObserver
	decisionLog     DecisionLogger // nil: no decision log
	authenticator   Authenticator  // nil: none
	enricher        Enricher       // nil: none
	shadow          Shadow         // nil: none
	consumer        Consumer       // nil: none
	attrBuffers     sync.Pool      // of *attrBuffer, for annotate
}

// Option configures an Engine.
type Option func(*Engine)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithClock sets the clock behind context.now.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithRejectEntityOverrides makes request entity data that contradicts the
// bundle an error (*policystore.EntityOverrideError) instead of being
// ignored and reported.
func WithRejectEntityOverrides(reject bool) Option {
	return func(e *Engine) { e.rejectOverrides = reject }
}

// WithTracerProvider sets where decision spans go (default: nowhere).
// With a no-op provider, as by default, no span is started at all.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(e *Engine) {
		if _, off := tp.(noop.TracerProvider); off {
			e.tracer = nil
			return
		}
		e.tracer = tp.Tracer("github.com/intentpdp/intentpdp/server/engine")
	}
}

// WithTracedIdentifiers sets which identifiers decision spans carry.
func WithTracedIdentifiers(ids TracedIdentifiers) Option {
	return func(e *Engine) { e.tracedIDs = ids }
}

// WithMetrics sets the decision metrics (default: none).
func WithMetrics(m DecisionObserver) Option { return func(e *Engine) { e.metrics = m } }

// WithDecisionLog sets the decision log. Every decision Evaluate returns
// has been queued to it, except a deny caused by the log refusing it (see
// Evaluate).
func WithDecisionLog(l DecisionLogger) Option { return func(e *Engine) { e.decisionLog = l } }

// WithAuthenticator sets the authentication step (default: none).
func WithAuthenticator(a Authenticator) Option { return func(e *Engine) { e.authenticator = a } }

// WithEnricher sets the enrichment step (default: none).
func WithEnricher(en Enricher) Option { return func(e *Engine) { e.enricher = en } }

// WithShadow sets the shadow step (default: none).
func WithShadow(s Shadow) Option { return func(e *Engine) { e.shadow = s } }

// WithConsumer sets the consume step after Decide (default: none).
func WithConsumer(c Consumer) Option { return func(e *Engine) { e.consumer = c } }

// WithDecisionID sets how decision ids are made (default: UUIDv7).
func WithDecisionID(newID func() string) Option { return func(e *Engine) { e.newID = newID } }

// New returns an Engine deciding against store's current snapshot.
func New(store SnapshotSource, opts ...Option) *Engine {
	ids := newIDSource()
	e := &Engine{
		store:   store,
		log:     slog.New(slog.DiscardHandler),
		now:     time.Now,
		newID:   func() string { return ids.next(time.Now()) },
		metrics: noMetrics{},
	}
	e.attrBuffers.New = func() any { return new(attrBuffer) }
	for _, opt := range opts {
		opt(e)
	}
	return e
}

// Result is a decision and the id it was given, shared with the decision
// log and the decision span.
type Result struct {
	Decision policystore.Decision
	ID       string
	// TaskState is what the enrich step found for intent.task_id (see
	// policystore.Request.TaskState), so a front end can tell the caller
	// why a task-bound call was denied.
	TaskState string
}

// Evaluate decides req against the current snapshot. It is Pin followed by
// Pinned.Evaluate; see there for the steps.
func (e *Engine) Evaluate(ctx context.Context, frontEnd FrontEnd, req policystore.Request) (Result, error) {
	p, err := e.Pin()
	if err != nil {
		return Result{}, err
	}
	return p.Evaluate(ctx, frontEnd, req)
}

// Pin loads the current snapshot once, so that every decision made
// through the result (a batch, a search) sees one revision. It fails with
// policystore.ErrNoSnapshot before the first activation.
func (e *Engine) Pin() (Pinned, error) {
	snap, err := e.store.Current()
	if err != nil {
		return Pinned{}, err
	}
	return Pinned{e: e, snap: snap}, nil
}

// ObserveBatch records the size of a batch call from a front end.
func (e *Engine) ObserveBatch(frontEnd FrontEnd, n int) { e.metrics.ObserveBatch(frontEnd, n) }

// Pinned decides against one snapshot. It is a small value, safe for
// concurrent use, and meant to live for one call.
type Pinned struct {
	e    *Engine
	snap *policystore.Snapshot
}

// Revision is the revision of the pinned snapshot.
func (p Pinned) Revision() string { return p.snap.Revision() }

// Snapshot is the pinned snapshot, for what a front end reads besides
// decisions (a search's candidates from the bundle's catalog).
func (p Pinned) Snapshot() *policystore.Snapshot { return p.snap }

// Evaluate is the one decision path of every front end. It runs, in order:
//
//  1. authenticate: the Authenticator, if any, verifies the caller and the
//     principal's token and may set identity on the request;
//  2. enrich: the Enricher, if any, adds runtime data (a live task grant);
//  3. the engine sets context.now from its clock and the entity-override
//     mode;
//  4. Snapshot.Decide against the pinned snapshot, and a decision id;
//  5. consume: when the request carries a task grant, the Consumer, if
//     any, settles the grant's use (a one-shot grant is used by exactly
//     one allow; an allow whose use cannot be taken becomes a deny);
//  6. shadow: the Shadow, if any, is offered the request and Decide's
//     decision, to decide it again against a candidate bundle off the
//     caller's path; it cannot change the answer or delay it;
//  7. decision-log admission: the record is handed to the decision log,
//     which may block (block mode), refuse the decision (the request's
//     context ended, or the log closed: ErrDecisionNotLogged), or, in deny
//     mode when the log is full or its sink failing, turn the decision into
//     a deny that says why. With consume, these are the only steps after
//     Decide that can change an answer, and only into a deny: a decision
//     that cannot be accounted for must not allow;
//  8. the decision span gets its attributes (frontEnd, decision, ids);
//  9. the metrics observe it.
//
// An error means no decision was made; front ends must then deny (fail
// closed) and map the error with Classify. A refusal of the authenticate
// step (a missing or invalid token, a principal mismatch) is still
// recorded in the decision log, as a deny whose one error names the
// reason (see logRefusal).
func (p Pinned) Evaluate(ctx context.Context, frontEnd FrontEnd, req policystore.Request) (Result, error) {
	e := p.e
	start := time.Now()
	// Without a tracer, span is the caller's (for the decision log's trace
	// id), never annotated or ended here.
	var span trace.Span
	if e.tracer != nil {
		ctx, span = e.tracer.Start(ctx, SpanName, decisionSpanKind)
		defer span.End()
	} else {
		span = trace.SpanFromContext(ctx)
	}
	req, res, err := e.decide(ctx, p.snap, req)
	latency := time.Since(start)
	if err == nil && e.shadow != nil {
		e.shadow.Offer(frontEnd, req, res)
	}
	if err == nil && e.decisionLog != nil {
		res.Decision, err = e.admit(ctx, span, start, latency, frontEnd, req, res)
	} else if e.decisionLog != nil && refused(err) {
		e.logRefusal(ctx, span, start, latency, frontEnd, req, p.snap.Revision(), err)
	}
	if e.tracer != nil && span.IsRecording() {
		e.annotate(span, frontEnd, req, res, err)
	}
	e.metrics.ObserveDecision(frontEnd, res.Decision, err, latency)
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// Prepare runs the steps of Evaluate before Decide (authenticate, enrich,
// clock and override mode) and returns the request as Decide would see it,
// without deciding, logging or observing anything. Front ends use it to ask
// what could be allowed rather than to decide (the MCP gateway's filtered
// tool list, see policystore.Snapshot.CouldAllow).
func (p Pinned) Prepare(ctx context.Context, req policystore.Request) (policystore.Request, error) {
	return p.e.prepare(ctx, req)
}

// prepare runs steps 1 to 3 of Evaluate.
func (e *Engine) prepare(ctx context.Context, req policystore.Request) (policystore.Request, error) {
	var err error
	if e.authenticator != nil {
		if req, err = e.authenticator.Authenticate(ctx, req); err != nil {
			return req, err
		}
	}
	if e.enricher != nil {
		if req, err = e.enricher.Enrich(ctx, req); err != nil {
			return req, err
		}
	}
	req.Now = e.now()
	req.RejectOverrides = e.rejectOverrides
	return req, nil
}

// decide runs steps 1 to 5 of Evaluate and returns the request as decided.
func (e *Engine) decide(ctx context.Context, snap *policystore.Snapshot, req policystore.Request) (policystore.Request, Result, error) {
	if err := ctx.Err(); err != nil {
		return req, Result{}, err
	}
	req, err := e.prepare(ctx, req)
	if err != nil {
		return req, Result{}, err
	}
	d, err := snap.Decide(ctx, req)
	if err != nil {
		return req, Result{}, err
	}
	if e.consumer != nil && req.Task != nil {
		decided := d
		req, d = e.consumer.Consume(ctx, req, d)
		if d.Allow && !decided.Allow {
			d = decided // a consume step never allows what Decide denied
		}
	}
	return req, Result{Decision: d, ID: e.newID(), TaskState: req.TaskState}, nil
}
