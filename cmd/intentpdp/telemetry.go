package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/intentpdp/intentpdp/cmd/intentpdp/internal/tlsfiles"
	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/decisionlog"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/telemetry"
)

// ObservabilityConfig configures traces, metrics and the decision log.
// Tracing also honours the standard OTEL_* environment variables
// (OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*); the flags below win over them.
type ObservabilityConfig struct {
	// MetricsListen is the /metrics HTTP listen address; empty disables it.
	MetricsListen string
	// OTLPEndpoint is the OTLP collector URL (http://host:4317 for gRPC,
	// http://host:4318/v1/traces for HTTP). Tracing is off unless it or
	// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
	OTLPEndpoint string
	// OTLPProtocol is grpc or http/protobuf (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc).
	OTLPProtocol string
	// OTLPHeaders are k=v pairs sent with every export, comma-separated.
	OTLPHeaders string
	// OTLPCAFile verifies the collector's TLS certificate (https endpoints).
	OTLPCAFile string
	// TraceSampleRatio is the parent-based ratio of new traces sampled,
	// unless OTEL_TRACES_SAMPLER is set.
	TraceSampleRatio float64
	// TraceIdentifiers lists the identifiers decision spans carry besides
	// types: "principal", "resource" (possibly personal data; default none).
	TraceIdentifiers string
	// DecisionLog is a file path, "-" for stdout, or empty for no log.
	DecisionLog string
	// DecisionLogQueue bounds the records waiting to be written.
	DecisionLogQueue int
	// DecisionLogFull is what happens when the queue is full or the sink
	// failing: block, drop or deny.
	DecisionLogFull string
	// DecisionLogSync acknowledges a decision only once its record is
	// written and fsynced (group commit); it needs a file, not stdout.
	DecisionLogSync bool
	// DecisionLogMaxSizeMB rotates the file at this size, keeping
	// DecisionLogMaxBackups old files.
	DecisionLogMaxSizeMB  int
	DecisionLogMaxBackups int
	// DecisionLogRedact lists context fields (dotted paths) the log replaces
	// with [REDACTED], comma-separated.
	DecisionLogRedact string
	// DecisionLogOTLPEndpoint sends the decision log to an OpenTelemetry
	// Collector as OTLP log records too (beside DecisionLog, or alone):
	// http://host:4317 (gRPC) or http://host:4318 (HTTP, /v1/logs unless
	// the URL has a path of its own); an https URL is
	// verified with OTLPCAFile, and OTLPHeaders are sent. It has its own
	// queue of DecisionLogQueue records and DecisionLogFull mode.
	DecisionLogOTLPEndpoint string
	// DecisionLogOTLPProtocol is grpc or http/protobuf.
	DecisionLogOTLPProtocol string
	// DecisionLogRedactEntities replaces every attribute and tag value of
	// request entities with [REDACTED] (their uids and parents are kept).
	DecisionLogRedactEntities bool
}

// defaultObservability holds the defaults of the flags and of SetDefaults.
var defaultObservability = ObservabilityConfig{
	MetricsListen:         "127.0.0.1:9464",
	TraceSampleRatio:      1,
	DecisionLogQueue:      4096,
	DecisionLogFull:       "block",
	DecisionLogMaxSizeMB:  100,
	DecisionLogMaxBackups: 10,

	DecisionLogOTLPProtocol: "grpc",
}

// SetDefaults fills unset fields but those whose zero value is a choice:
// MetricsListen (off), TraceSampleRatio (sample no new traces) and
// DecisionLogMaxBackups (keep every rotated file).
func (c *ObservabilityConfig) SetDefaults() {
	d := defaultObservability
	setPositive(&c.DecisionLogQueue, d.DecisionLogQueue)
	setDefault(&c.DecisionLogFull, d.DecisionLogFull)
	setPositive(&c.DecisionLogMaxSizeMB, d.DecisionLogMaxSizeMB)
	setDefault(&c.DecisionLogOTLPProtocol, d.DecisionLogOTLPProtocol)
}

// Validate reports every problem.
func (c *ObservabilityConfig) Validate() []error {
	var errs []error
	if _, err := decisionlog.ParseMode(c.DecisionLogFull); err != nil {
		errs = append(errs, fmt.Errorf("decision-log-full: %w", err))
	}
	if c.DecisionLogSync && (c.DecisionLog == "" || c.DecisionLog == decisionlog.Stdout) {
		errs = append(errs, errors.New("decision-log-sync needs --decision-log set to a file"))
	}
	if _, err := c.tracedIdentifiers(); err != nil {
		errs = append(errs, err)
	}
	if c.TraceSampleRatio < 0 || c.TraceSampleRatio > 1 {
		errs = append(errs, fmt.Errorf("trace-sample-ratio must be within [0, 1], not %v", c.TraceSampleRatio))
	}
	if p := c.protocol(); p != "grpc" && p != "http/protobuf" {
		errs = append(errs, fmt.Errorf("otlp-protocol must be grpc or http/protobuf, not %q", p))
	}
	if _, err := keyValues(c.OTLPHeaders); err != nil {
		errs = append(errs, fmt.Errorf("otlp-headers: %w", err))
	}
	errs = append(errs, c.validateDecisionLogOTLP()...)
	return errs
}

func (c *ObservabilityConfig) bindFlags(fs *flag.FlagSet) {
	d := defaultObservability
	fs.StringVar(&c.MetricsListen, "metrics-listen", d.MetricsListen, "Prometheus /metrics listen address (empty: off)")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "OTLP trace collector URL, e.g. http://127.0.0.1:4317 (default: OTEL_EXPORTER_OTLP_ENDPOINT; empty: tracing off)")
	fs.StringVar(&c.OTLPProtocol, "otlp-protocol", "", "OTLP protocol: grpc or http/protobuf (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)")
	fs.StringVar(&c.OTLPHeaders, "otlp-headers", "", "OTLP export headers, k=v,k2=v2 (default: OTEL_EXPORTER_OTLP_HEADERS)")
	fs.StringVar(&c.OTLPCAFile, "otlp-ca-file", "", "CA certificate that verifies an https collector (default: OTEL_EXPORTER_OTLP_CERTIFICATE)")
	fs.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", d.TraceSampleRatio, "parent-based ratio of new traces sampled (OTEL_TRACES_SAMPLER wins when set)")
	fs.StringVar(&c.TraceIdentifiers, "trace-identifiers", "", "identifiers decision spans carry: principal,resource (may be personal data)")
	fs.StringVar(&c.DecisionLog, "decision-log", "", "decision log file, or - for stdout (empty: off)")
	fs.IntVar(&c.DecisionLogQueue, "decision-log-queue", d.DecisionLogQueue, "decision log queue bound")
	fs.StringVar(&c.DecisionLogFull, "decision-log-full", d.DecisionLogFull, "when the decision log queue is full or its sink failing: block, drop (counted) or deny the decision")
	fs.BoolVar(&c.DecisionLogSync, "decision-log-sync", false, "acknowledge a decision only once its log record is written and fsynced (group commit)")
	fs.IntVar(&c.DecisionLogMaxSizeMB, "decision-log-max-size-mb", d.DecisionLogMaxSizeMB, "rotate the decision log file at this size")
	fs.IntVar(&c.DecisionLogMaxBackups, "decision-log-max-backups", d.DecisionLogMaxBackups, "rotated decision log files kept (0: all)")
	fs.StringVar(&c.DecisionLogOTLPEndpoint, "decision-log-otlp-endpoint", "", "also send decision records to an OpenTelemetry Collector as OTLP logs, e.g. http://127.0.0.1:4317 (TLS for https, with --otlp-ca-file and --otlp-headers; empty: off)")
	fs.StringVar(&c.DecisionLogOTLPProtocol, "decision-log-otlp-protocol", d.DecisionLogOTLPProtocol, "OTLP protocol of --decision-log-otlp-endpoint: grpc or http/protobuf")
	fs.StringVar(&c.DecisionLogRedact, "decision-log-redact", "", "context fields the decision log redacts, comma-separated dotted paths (e.g. ticket.body,intent.attributes.prompt)")
	fs.BoolVar(&c.DecisionLogRedactEntities, "decision-log-redact-entities", false, "redact every attribute and tag value of request entities in the decision log")
}

func (c *ObservabilityConfig) tracedIdentifiers() (engine.TracedIdentifiers, error) {
	var ids engine.TracedIdentifiers
	for _, name := range splitList(c.TraceIdentifiers) {
		switch name {
		case "principal":
			ids.PrincipalID = true
		case "resource":
			ids.ResourceID = true
		default:
			return ids, fmt.Errorf("trace-identifiers: unknown identifier %q (want principal or resource)", name)
		}
	}
	return ids, nil
}

func (c *ObservabilityConfig) protocol() string {
	for _, p := range []string{c.OTLPProtocol, os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")} {
		if p != "" {
			return p
		}
	}
	return "grpc"
}

// tracingEnabled: an endpoint is configured and the SDK is not disabled.
func (c *ObservabilityConfig) tracingEnabled() bool {
	if os.Getenv("OTEL_SDK_DISABLED") == "true" || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return c.OTLPEndpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// observability is what serve builds from ObservabilityConfig: the
// providers, the metrics registry and the decision log. serve runs the
// /metrics listener and the flushes as components.
type observability struct {
	tp          trace.TracerProvider
	exporter    *sdktrace.TracerProvider // nil when tracing is off
	spans       *telemetry.SpanBatcher   // nil when tracing is off
	metrics     *telemetry.Metrics
	registry    *prometheus.Registry
	decisionLog *decisionlog.Writer // nil when off
	otlpLog     *decisionlog.Writer // nil when off
	svcOpts     []engine.Option
	log         *slog.Logger
}

// newObservability builds the providers and opens the decision log; on
// failure it releases what it had built.
func newObservability(ctx context.Context, c *ObservabilityConfig, log *slog.Logger) (*observability, error) {
	o := &observability{tp: noop.NewTracerProvider(), log: log}
	steps := []func(context.Context, *ObservabilityConfig) error{o.startTracing, o.startMetrics, o.startDecisionLog}
	for _, step := range steps {
		if err := step(ctx, c); err != nil {
			o.release(ctx)
			return nil, err
		}
	}
	ids, _ := c.tracedIdentifiers() // checked by Validate
	o.svcOpts = append(o.svcOpts, engine.WithTracerProvider(o.tp), engine.WithTracedIdentifiers(ids), engine.WithMetrics(o.metrics))
	return o, nil
}

// release closes what a failed newObservability had opened.
func (o *observability) release(ctx context.Context) {
	if o.decisionLog != nil {
		_ = o.decisionLog.Close(ctx)
	}
	if o.otlpLog != nil {
		_ = o.otlpLog.Close(ctx)
	}
	if o.exporter != nil {
		_ = o.exporter.Shutdown(ctx)
	}
}

// metricsHandler serves the registry's metrics on GET /metrics.
func (o *observability) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", telemetry.Handler(o.registry))
	return mux
}

// serviceOption applies every observability option of the service.
func (o *observability) serviceOption() engine.Option {
	return func(s *engine.Engine) {
		for _, opt := range o.svcOpts {
			opt(s)
		}
	}
}

// grpcOptions add the gRPC server metrics and, when tracing is on,
// transport spans that continue the caller's W3C trace context; Authorize,
// one decision per call, is traced by its decision span alone. With
// tracing off the tracing interceptors would only cost time on every call.
func (o *observability) grpcOptions() []grpc.ServerOption {
	opts := o.metrics.GRPCServerOptions()
	if o.exporter != nil {
		opts = append(opts, telemetry.GRPCTracing(o.tp, pdpv1.AuthorizationService_Authorize_FullMethodName)...)
	}
	return opts
}

// httpHandler traces the HTTP front ends (AuthZEN, forward-auth) when
// tracing is on; off, the wrapper would only cost time on every request.
func (o *observability) httpHandler(h http.Handler) http.Handler {
	if o.exporter == nil {
		return h
	}
	return telemetry.HTTPHandler(o.tp, h)
}

func (o *observability) startTracing(ctx context.Context, c *ObservabilityConfig) error {
	if !c.tracingEnabled() {
		return nil
	}
	exp, err := newExporter(ctx, c)
	if err != nil {
		return fmt.Errorf("trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "intentpdp")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv()) // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
	if err != nil {
		return fmt.Errorf("trace resource: %w", err)
	}
	o.spans = telemetry.NewSpanBatcher(exp)
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(o.spans), sdktrace.WithResource(res)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.TraceSampleRatio))))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	o.tp, o.exporter = tp, tp
	o.log.Info("tracing on", "protocol", c.protocol(), "endpoint", c.OTLPEndpoint)
	return nil
}

func newExporter(ctx context.Context, c *ObservabilityConfig) (sdktrace.SpanExporter, error) {
	headers, _ := keyValues(c.OTLPHeaders) // checked by Validate
	tlsConf, err := tlsfiles.ClientConfig(c.OTLPCAFile)
	if err != nil {
		return nil, fmt.Errorf("otlp-ca-file: %w", err)
	}
	if c.protocol() == "http/protobuf" {
		var opts []otlptracehttp.Option
		if c.OTLPEndpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(c.OTLPEndpoint))
		}
		if headers != nil {
			opts = append(opts, otlptracehttp.WithHeaders(headers))
		}
		if tlsConf != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsConf))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	var opts []otlptracegrpc.Option
	if c.OTLPEndpoint != "" {
		opts = append(opts, otlptracegrpc.WithEndpointURL(c.OTLPEndpoint))
	}
	if headers != nil {
		opts = append(opts, otlptracegrpc.WithHeaders(headers))
	}
	if tlsConf != nil {
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsConf)))
	}
	return otlptracegrpc.New(ctx, opts...)
}

func (o *observability) startMetrics(_ context.Context, c *ObservabilityConfig) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		return err
	}
	o.metrics, o.registry = m, reg
	if o.spans != nil {
		return m.ObserveSpanDrops(o.spans.Dropped)
	}
	return nil
}

func (o *observability) startDecisionLog(ctx context.Context, c *ObservabilityConfig) error {
	if c.DecisionLog == "" && c.DecisionLogOTLPEndpoint == "" {
		return nil
	}
	mode, _ := decisionlog.ParseMode(c.DecisionLogFull) // checked by Validate
	opts := []decisionlog.Option{
		decisionlog.WithQueueSize(c.DecisionLogQueue),
		decisionlog.WithMode(mode),
		decisionlog.WithRedact(splitList(c.DecisionLogRedact)),
		decisionlog.WithRedactEntities(c.DecisionLogRedactEntities),
		decisionlog.WithLogger(o.log),
	}
	var logs []*decisionlog.Writer
	if c.DecisionLog != "" {
		sink, err := decisionlog.OpenSink(c.DecisionLog, c.DecisionLogMaxSizeMB, c.DecisionLogMaxBackups)
		if err != nil {
			return fmt.Errorf("decision log: %w", err)
		}
		w, err := decisionlog.New(sink, append(opts, decisionlog.WithSync(c.DecisionLogSync))...)
		if err != nil {
			return fmt.Errorf("decision log: %w", err)
		}
		o.decisionLog = w
		logs = append(logs, w)
		o.log.Info("decision log on", "path", c.DecisionLog, "full", mode.String(), "queue", c.DecisionLogQueue, "sync", c.DecisionLogSync)
		if err := o.metrics.ObserveDecisionLog(w); err != nil {
			return err
		}
	}
	if c.DecisionLogOTLPEndpoint != "" {
		w, err := o.startOTLPDecisionLog(ctx, c, opts)
		if err != nil {
			return fmt.Errorf("decision log OTLP exporter: %w", err)
		}
		logs = append(logs, w)
	}
	if len(logs) == 1 {
		o.svcOpts = append(o.svcOpts, engine.WithDecisionLog(logs[0]))
	} else {
		o.svcOpts = append(o.svcOpts, engine.WithDecisionLog(decisionlog.NewTee(logs...)))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// keyValues parses "k=v,k2=v2"; nil for an empty list.
func keyValues(s string) (map[string]string, error) {
	var out map[string]string
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%q is not k=v", kv)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

// observeActivation records every bundle activation attempt; it is the
// store's activation observer.
func (o *observability) observeActivation(r policystore.ActivationResult) {
	o.metrics.ObserveActivation(r.Revision, r.Err, r.Duration)
}
