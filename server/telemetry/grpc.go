package telemetry

import (
	"net/http"
	"slices"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// GRPCStatsHandler traces RPCs into tp, continuing the caller's W3C trace
// context, so decision spans are children of the RPC span and of the
// caller's. decisionMethods are the full names of methods that make
// exactly one decision: they get no RPC span, their decision span stands
// for the call as the child of the caller's span (one recorded span per
// decision instead of two). Its OpenTelemetry RPC metrics are off: the
// gRPC server metrics are Prometheus ones (GRPCServerOptions), and
// recording both would cost twice.
func GRPCStatsHandler(tp trace.TracerProvider, decisionMethods ...string) grpc.ServerOption {
	return grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
		otelgrpc.WithMeterProvider(noopmetric.NewMeterProvider()),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
			return !slices.Contains(decisionMethods, info.FullMethodName)
		})))
}

// HTTPHandler traces every request to h into tp, continuing the caller's
// W3C trace context: the HTTP front ends' counterpart of GRPCStatsHandler.
func HTTPHandler(tp trace.TracerProvider, h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "intentpdp.http",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithMeterProvider(noopmetric.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}
