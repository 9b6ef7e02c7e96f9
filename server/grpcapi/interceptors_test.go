package grpcapi

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// BenchmarkInterceptors is the cost of each of NewServer's unary
// interceptors around a handler that does nothing, for the latency budget
// (bench/README.md).
func BenchmarkInterceptors(b *testing.B) {
	info := &grpc.UnaryServerInfo{FullMethod: pdpv1.AuthorizationService_Authorize_FullMethodName}
	req := &pdpv1.AuthorizeRequest{}
	nothing := func(context.Context, any) (any, error) { return nil, nil }
	for name, ic := range map[string]grpc.UnaryServerInterceptor{
		"recover":     recoverUnary(slog.New(slog.DiscardHandler)),
		"codec-check": newRequestCodec().unary(),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if _, err := ic(ctx, req, info, nothing); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
