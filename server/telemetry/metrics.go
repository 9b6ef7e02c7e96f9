// Package telemetry defines intentpdp's Prometheus metrics. Nothing in it is
// global: every metric lives in the registry passed to NewMetrics.
package telemetry

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

const namespace = "intentpdp"

// The "outcome" label of decisions_total is a decision's outcome in lower
// case (policystore.Outcome.Lower: "allow", "deny"), or OutcomeError.
const (
	// OutcomeError is a request the decision path could not evaluate.
	OutcomeError = "error"
)

// Metrics records decisions, activations and the decision log. It is safe
// for concurrent use.
type Metrics struct {
	decisions   *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	batchSize   *prometheus.HistogramVec
	evalErrors  *prometheus.CounterVec
	activations *prometheus.CounterVec
	activation  prometheus.Histogram
	revision    *prometheus.GaugeVec
	revisionMu  sync.Mutex // keeps exactly one revision series at 1
	grpc        *grpcServerMetrics
	reg         prometheus.Registerer
	// perFrontEnd caches each front end's decision series, so a decision
	// costs no label hashing: front ends are a handful of constants.
	perFrontEnd sync.Map // front end → *frontEndSeries
}

// frontEndSeries are the decision series of one front end.
type frontEndSeries struct {
	allow, deny, failed prometheus.Counter
	latency             prometheus.Observer
	evalErrors          prometheus.Counter
}

func (m *Metrics) series(frontEnd engine.FrontEnd) *frontEndSeries {
	if s, ok := m.perFrontEnd.Load(frontEnd); ok {
		return s.(*frontEndSeries)
	}
	s, _ := m.perFrontEnd.LoadOrStore(frontEnd, &frontEndSeries{
		allow:      m.decisions.WithLabelValues(policystore.Allow.Lower(), string(frontEnd)),
		deny:       m.decisions.WithLabelValues(policystore.Deny.Lower(), string(frontEnd)),
		failed:     m.decisions.WithLabelValues(OutcomeError, string(frontEnd)),
		latency:    m.latency.WithLabelValues(string(frontEnd)),
		evalErrors: m.evalErrors.WithLabelValues(string(frontEnd)),
	})
	return s.(*frontEndSeries)
}

// NewMetrics registers intentpdp's metrics, gRPC server metrics included,
// with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "decisions_total",
			Help: "Decisions by outcome (allow, deny, error) and front end.",
		}, []string{"outcome", "front_end"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "decision_duration_seconds",
			Help:    "Time to evaluate one decision, decision log hand-off excluded.",
			Buckets: prometheus.ExponentialBuckets(5e-6, 2.5, 12), // 5µs to ~300ms
		}, []string{"front_end"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "batch_size",
			Help:    "Requests per batch call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 to 1024
		}, []string{"front_end"}),
		evalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "evaluation_errors_total",
			Help: "Policies that failed to evaluate during a decision (skipped, so never allowing).",
		}, []string{"front_end"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bundle_activations_total",
			Help: "Bundle activations by result (success, failure).",
		}, []string{"result"}),
		activation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "bundle_activation_duration_seconds",
			Help:    "Time to compile and activate a bundle.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 4, 8), // 1ms to ~16s
		}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_revision_info",
			Help: "The active bundle revision (value 1).",
		}, []string{"revision"}),
		grpc: newGRPCServerMetrics(),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.latency, m.batchSize, m.evalErrors, m.activations, m.activation, m.revision, m.grpc} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveDecision records one pass through the decision path: err non-nil
// means no decision was made.
func (m *Metrics) ObserveDecision(frontEnd engine.FrontEnd, d policystore.Decision, err error, latency time.Duration) {
	s := m.series(frontEnd)
	switch {
	case err != nil:
		s.failed.Inc()
		return
	case d.Allow:
		s.allow.Inc()
	default:
		s.deny.Inc()
	}
	s.latency.Observe(latency.Seconds())
	if n := len(d.Errors); n > 0 {
		s.evalErrors.Add(float64(n))
	}
}

// ObserveBatch records the size of one batch call.
func (m *Metrics) ObserveBatch(frontEnd engine.FrontEnd, n int) {
	m.batchSize.WithLabelValues(string(frontEnd)).Observe(float64(n))
}

// ObserveActivation records one bundle activation; a success also makes
// revision the active one. It fits the store's activation hook.
func (m *Metrics) ObserveActivation(revision string, err error, d time.Duration) {
	m.activation.Observe(d.Seconds())
	if err != nil {
		m.activations.WithLabelValues("failure").Inc()
		return
	}
	m.activations.WithLabelValues("success").Inc()
	m.SetActiveRevision(revision)
}

// SetActiveRevision makes revision the one series of policy_revision_info.
func (m *Metrics) SetActiveRevision(revision string) {
	m.revisionMu.Lock()
	defer m.revisionMu.Unlock()
	m.revision.Reset()
	m.revision.WithLabelValues(revision).Set(1)
}

// DecisionLogStats is what a decision-log writer reports
// (decisionlog.Writer).
type DecisionLogStats interface {
	QueueDepth() int
	QueueCapacity() int
	Written() uint64
	WriteErrors() uint64
	Dropped() uint64
	Denied() uint64
	Failed() uint64
	SinkHealthy() bool
}

// ObserveDecisionLog exports the file (or stdout) decision log's queue and
// counters as intentpdp_decision_log_*, read at scrape time.
func (m *Metrics) ObserveDecisionLog(l DecisionLogStats) error {
	return m.observeLog(logMetrics{subsystem: "decision_log", sink: "sink", written: "written", errors: "write_errors_total"}, l)
}

// ObserveOTLPDecisionLog exports the OTLP decision log's queue and
// counters as intentpdp_decision_log_otlp_*, beside the file log's.
func (m *Metrics) ObserveOTLPDecisionLog(l DecisionLogStats) error {
	return m.observeLog(logMetrics{subsystem: "decision_log_otlp", sink: "exporter", written: "exported", errors: "export_errors_total"}, l)
}

// ObserveSpanDrops exports the spans the tracer's batcher dropped (queue
// full, or exported after shutdown) as intentpdp_trace_spans_dropped_total,
// read at scrape time: without it a collector too slow for the decision
// rate loses spans with no signal.
func (m *Metrics) ObserveSpanDrops(dropped func() uint64) error {
	return m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: "trace", Name: "spans_dropped_total",
		Help: "Spans dropped by the span batcher because its queue was full or it had shut down."}, func() float64 { return float64(dropped()) }))
}

// logMetrics names one decision log's series: its subsystem, what its sink
// is called, what it does to a record and its error counter.
type logMetrics struct{ subsystem, sink, written, errors string }

func (m *Metrics) observeLog(n logMetrics, l DecisionLogStats) error {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: n.subsystem, Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: n.subsystem, Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	for _, c := range []prometheus.Collector{
		gauge("queue_depth", "Records waiting to be "+n.written+".", func() float64 { return float64(l.QueueDepth()) }),
		gauge("queue_capacity", "The queue's bound.", func() float64 { return float64(l.QueueCapacity()) }),
		gauge("sink_healthy", "1 while the last write to the "+n.sink+" succeeded, 0 while writes fail and are retried.", func() float64 {
			if l.SinkHealthy() {
				return 1
			}
			return 0
		}),
		counter("written_total", "Records "+n.written+".", l.Written),
		counter(n.errors, "Failed writes of a batch to the "+n.sink+", each retried with backoff.", l.WriteErrors),
		counter("dropped_total", "Records discarded because the queue was full or the "+n.sink+" failing (drop mode).", l.Dropped),
		counter("denied_total", "Decisions denied because the queue was full or the "+n.sink+" failing (deny mode).", l.Denied),
		counter("failed_total", "Records lost to encoding errors, or left unwritten when shutdown gave up on a failing "+n.sink+".", l.Failed),
	} {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// GRPCServerOptions are the interceptors that feed the gRPC server metrics.
func (m *Metrics) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.grpc.unary),
		grpc.ChainStreamInterceptor(m.grpc.stream),
	}
}

// InitializeGRPC creates the gRPC metrics of every method of gs at zero, so
// they are visible before the first call.
func (m *Metrics) InitializeGRPC(gs *grpc.Server) { m.grpc.initialize(gs) }

// Handler serves g's metrics in the Prometheus exposition format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
