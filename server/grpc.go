package server

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// streamWorkersPerCPU sizes the pool of goroutines that run calls; calls
// beyond it still get goroutines of their own.
const streamWorkersPerCPU = 16

// NewGRPCServer returns a gRPC server carrying svc, health and reflection,
// with panic recovery outermost and malformed messages refused as
// InvalidArgument. Health starts NOT_SERVING: call
// health.SetServingStatus("", SERVING) once a bundle is active.
func NewGRPCServer(svc *Service, extra ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	codec := newRequestCodec()
	opts := append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(codec),
		// Long-lived workers keep the stacks a decision grows to; a fresh
		// goroutine per call would grow and copy its stack every time.
		grpc.NumStreamWorkers(uint32(streamWorkersPerCPU * runtime.GOMAXPROCS(0))),
		grpc.MaxRecvMsgSize(svc.limits.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(recoverUnary(svc.log), codec.unary()),
		grpc.ChainStreamInterceptor(recoverStream(svc.log), codec.stream()),
	}, extra...)
	gs := grpc.NewServer(opts...)
	pdpv1.RegisterAuthorizationServiceServer(gs, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(pdpv1.AuthorizationService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return gs, hs
}

// SetServing marks the server and the authorization service as serving (or
// not) in the health service.
func SetServing(hs *health.Server, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	hs.SetServingStatus("", st)
	hs.SetServingStatus(pdpv1.AuthorizationService_ServiceDesc.ServiceName, st)
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = recovered(log, info.FullMethod, r)
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = recovered(log, info.FullMethod, r)
			}
		}()
		return handler(srv, ss)
	}
}

func recovered(log *slog.Logger, method string, r any) error {
	log.Error("panic in handler", "method", method, "panic", r, "stack", string(debug.Stack()))
	return withReason(codes.Internal, ReasonInternal, "internal error; the request was not evaluated")
}
