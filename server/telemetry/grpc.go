package telemetry

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// GRPCStatsHandler traces every RPC into tp, continuing the caller's W3C
// trace context, so decision spans are children of the RPC span and of the
// caller's. Its OpenTelemetry RPC metrics are off: the gRPC server metrics
// are Prometheus ones (GRPCServerOptions), and recording both would cost
// twice.
func GRPCStatsHandler(tp trace.TracerProvider) grpc.ServerOption {
	return grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
		otelgrpc.WithMeterProvider(noopmetric.NewMeterProvider())))
}
