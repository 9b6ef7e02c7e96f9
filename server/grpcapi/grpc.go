package grpcapi

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/decisionlog"
	"github.com/intentpdp/intentpdp/server/engine"
)

// streamWorkersPerCPU sizes the pool of goroutines that run calls; calls
// beyond it still get goroutines of their own.
const streamWorkersPerCPU = 16

// NewServer returns a gRPC server carrying svc, health and reflection,
// with panic recovery outermost and malformed messages refused as
// InvalidArgument. Health starts NOT_SERVING: call SetServing once a bundle
// is active. With WithDecisionLogHealth, health follows the decision log's
// sink too (see Health).
func NewServer(svc *Service, extra ...grpc.ServerOption) (*grpc.Server, *Health) {
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
	h := &Health{Server: health.NewServer(), logHealthy: true}
	h.update()
	healthpb.RegisterHealthServer(gs, h.Server)
	reflection.Register(gs)
	if l := svc.sinkHealth; l != nil {
		h.hasLog = true
		l.OnSinkHealth(func(healthy bool) { h.setLogHealthy(healthy, l.Mode()) })
	}
	return gs, h
}

// SinkHealthReporter is a decision log that reports whether its sink
// accepts writes (decisionlog.Writer).
type SinkHealthReporter interface {
	Mode() decisionlog.Mode
	OnSinkHealth(f func(healthy bool))
}

// DecisionLogHealthService is the health service name that reports the
// decision log's sink: SERVING while it accepts writes.
const DecisionLogHealthService = "intentpdp.DecisionLog"

// Health is the gRPC health service of a PDP. The server ("") and the
// authorization service are SERVING once SetServing(true) was called and,
// when the decision log runs in block or deny mode, while its sink accepts
// writes: in those modes a failing sink means decisions wait or are denied,
// so traffic belongs elsewhere. In drop mode decisions are answered
// regardless. DecisionLogHealthService reports the sink itself, whatever
// the mode. Health is safe for concurrent use.
type Health struct {
	*health.Server

	mu         sync.Mutex
	serving    bool
	hasLog     bool
	logHealthy bool
	logGates   bool // the log's mode makes its health the server's
}

// SetServing marks the server and the authorization service as serving (or
// not) in the health service, subject to the decision log's health.
func SetServing(h *Health, serving bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.serving = serving
	h.update()
}

func (h *Health) setLogHealthy(healthy bool, mode decisionlog.Mode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logHealthy, h.logGates = healthy, mode != decisionlog.Drop
	h.update()
}

// update publishes the statuses; h.mu is held (or h is not shared yet).
func (h *Health) update() {
	st := servingStatus(h.serving && (h.logHealthy || !h.logGates))
	h.SetServingStatus("", st)
	h.SetServingStatus(pdpv1.AuthorizationService_ServiceDesc.ServiceName, st)
	if h.hasLog {
		h.SetServingStatus(DecisionLogHealthService, servingStatus(h.logHealthy))
	}
}

func servingStatus(serving bool) healthpb.HealthCheckResponse_ServingStatus {
	if serving {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
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
	return statusOf(engine.InternalFailure())
}
