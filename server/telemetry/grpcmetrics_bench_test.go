package telemetry

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// BenchmarkGRPCMetricsInterceptor is the cost of the gRPC server metrics'
// unary interceptor around a handler that does nothing, for the latency
// budget (bench/README.md).
func BenchmarkGRPCMetricsInterceptor(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	ic := m.grpc.unary
	info := &grpc.UnaryServerInfo{FullMethod: "/intentpdp.v1.AuthorizationService/Authorize"}
	nothing := func(context.Context, any) (any, error) { return nil, nil }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ic(ctx, nil, info, nothing); err != nil {
			b.Fatal(err)
		}
	}
}
