package telemetry

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// GRPCTracing traces RPCs into tp, continuing the caller's W3C trace
// context, so decision spans are children of the RPC span and of the
// caller's. decisionMethods are the full names of methods that make
// exactly one decision: they get no RPC span, their decision span stands
// for the call as the child of the caller's span (one recorded span per
// decision instead of two).
//
// It is made of interceptors, not a stats handler: with a stats handler
// installed, gRPC builds an event for every stage of every call (and
// copies each message's bytes for it), sampled or not. RPC spans carry
// rpc.system, rpc.service, rpc.method and rpc.grpc.status_code.
func GRPCTracing(tp trace.TracerProvider, decisionMethods ...string) []grpc.ServerOption {
	t := grpcTracer{tracer: tp.Tracer("github.com/intentpdp/intentpdp/server/telemetry"), decisionMethods: decisionMethods}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(t.unary), grpc.ChainStreamInterceptor(t.stream)}
}

type grpcTracer struct {
	tracer          trace.Tracer
	decisionMethods []string
}

var rpcSpanKind = trace.WithSpanKind(trace.SpanKindServer)

// noParent is the parent of a call that carries no trace context: a span
// with an invalid span context, made once.
var noParent = trace.SpanFromContext(trace.ContextWithSpanContext(context.Background(), trace.SpanContext{}))

// start continues the caller's trace and, unless method makes one
// decision, starts its RPC span (nil otherwise).
//
// The caller's span context, or an invalid one when the call carries
// none, is put on top of ctx: the SDK looks the parent up three or four
// times per span (parent span, parent context, sampler), and a lookup
// that finds nothing walks all of gRPC's context chain (together about
// 2 µs per call in a CPU profile of bench BenchmarkObserveGRPC).
func (t grpcTracer) start(ctx context.Context, method string) (context.Context, trace.Span) {
	ctx = continueCallerTrace(ctx)
	if slices.Contains(t.decisionMethods, method) {
		return ctx, nil
	}
	name := strings.TrimPrefix(method, "/")
	service, rpc, _ := strings.Cut(name, "/")
	return t.tracer.Start(ctx, name, rpcSpanKind, trace.WithAttributes(
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", rpc)))
}

// end ends span with the call's status; server-side failures, as
// OpenTelemetry's gRPC conventions count them, are errors.
func end(span trace.Span, err error) {
	if span == nil {
		return
	}
	s := status.Convert(err)
	span.SetAttributes(attribute.Int64("rpc.grpc.status_code", int64(s.Code())))
	switch s.Code() {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		span.SetStatus(otelcodes.Error, s.Message())
	}
	span.End()
}

func (t grpcTracer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, span := t.start(ctx, info.FullMethod)
	resp, err := handler(ctx, req)
	end(span, err)
	return resp, err
}

func (t grpcTracer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, span := t.start(ss.Context(), info.FullMethod)
	err := handler(srv, tracedStream{ss, ctx})
	end(span, err)
	return err
}

// tracedStream carries the traced context to a streaming handler.
type tracedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s tracedStream) Context() context.Context { return s.ctx }

// traceparentKey is the W3C trace context header that carries the
// caller's span; tracestate comes with it.
const traceparentKey = "traceparent"

// continueCallerTrace puts the caller's W3C trace context, read from the
// call's incoming metadata, on top of ctx, or noParent when the call
// carries none (or a malformed one). The metadata is read where it is:
// metadata.FromIncomingContext would copy every header of every call. A
// call without traceparent costs one lookup: the propagator, and the
// carrier it needs on the heap, are for calls that carry one.
//
// The propagator extracts onto an empty context: given ctx, a malformed
// traceparent would leave ctx as it is, and a span already in ctx would
// pass for the caller's.
func continueCallerTrace(ctx context.Context) context.Context {
	if traceparent := metadata.ValueFromIncomingContext(ctx, traceparentKey); len(traceparent) > 0 {
		extracted := propagation.TraceContext{}.Extract(context.Background(), &incomingCarrier{ctx: ctx, traceparent: traceparent[0]})
		if caller := trace.SpanContextFromContext(extracted); caller.IsValid() {
			return trace.ContextWithRemoteSpanContext(ctx, caller)
		}
	}
	return trace.ContextWithSpan(ctx, noParent)
}

// incomingCarrier gives the propagator the traceparent already read and
// reads the rest from the call's metadata.
type incomingCarrier struct {
	ctx         context.Context
	traceparent string
}

func (c *incomingCarrier) Get(key string) string {
	if key == traceparentKey {
		return c.traceparent
	}
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set does nothing: the carrier is only extracted from.
func (*incomingCarrier) Set(string, string) {}

// Keys is not needed by the W3C trace context propagator, which asks for
// its two keys by name.
func (*incomingCarrier) Keys() []string { return nil }

// HTTPHandler traces every request to h into tp, continuing the caller's
// W3C trace context: the HTTP front ends' counterpart of GRPCTracing.
func HTTPHandler(tp trace.TracerProvider, h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "intentpdp.http",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithMeterProvider(noopmetric.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}
