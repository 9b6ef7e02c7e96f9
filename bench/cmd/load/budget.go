package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/bench/echo"
	"github.com/intentpdp/intentpdp/bench/load"
	"github.com/intentpdp/intentpdp/bench/scenario"
	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
	"github.com/intentpdp/intentpdp/server/telemetry"
)

// A rung of the latency budget: a server on loopback that adds one part of
// intentpdp to the rung before it, and the call that drives it.
type rung struct {
	name string
	base string // the rung it adds to; "" for the floor
	adds string // what it adds to base
	call load.Call
}

// runBudget attributes the gap between the echo floor and intentpdp: it
// serves a ladder of servers in process, each adding one part (protobuf,
// the handler and its interceptors, stream workers, metrics, tracing), measures every rung in alternating rounds so that all see the
// same machine load, and prints each rung's p50 and throughput and its
// difference to the rung it adds to. Along the chain echo, echo+workers,
// proto, intentpdp, metrics the differences add up to the gap; the other
// rungs are alternatives to the one they name.
func runBudget(ctx context.Context, cfg config, sc *scenario.Scenario, out io.Writer) error {
	store := policystore.NewStore()
	if _, err := store.Activate(ctx, sc.Bundle); err != nil {
		return err
	}
	sample, err := sampleResponse(ctx, store, sc.Queries[0].Request)
	if err != nil {
		return err
	}
	payload, _ := proto.Marshal(sc.Queries[0].Request) // a valid message always marshals
	reply, _ := proto.Marshal(sample)
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	var rungs []rung
	add := func(name, base, adds string, gs *grpc.Server, call func(*grpc.ClientConn) load.Call) error {
		stop, addr, err := serveLoopback(gs, "127.0.0.1:0")
		if err != nil {
			return err
		}
		stops = append(stops, stop)
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		stops = append(stops, func() { cc.Close() })
		rungs = append(rungs, rung{name, base, adds, call(cc)})
		return nil
	}
	echoCall := func(cc *grpc.ClientConn) load.Call {
		return func(ctx context.Context) error { return echo.Call(ctx, cc, payload) }
	}
	pdpCall := func(cc *grpc.ClientConn) load.Call {
		client := pdpv1.NewAuthorizationServiceClient(cc)
		var next atomic.Uint64
		return func(ctx context.Context) error {
			_, err := client.Authorize(ctx, sc.Queries[next.Add(1)%uint64(len(sc.Queries))].Request)
			return err
		}
	}
	echoServer := func(opts ...grpc.ServerOption) *grpc.Server {
		gs := grpc.NewServer(append([]grpc.ServerOption{echo.ServerOption()}, opts...)...)
		echo.Register(gs, reply)
		return gs
	}
	// NewServer's own stream-worker option comes first; a later one wins.
	noWorkers := grpc.NumStreamWorkers(0)
	workers := 16 * runtime.GOMAXPROCS(0) // a pool as large as grpcapi's was
	pdp := func(opts ...engine.Option) *grpcapi.Service { return grpcapi.New(engine.New(store, opts...)) }
	metrics, err := telemetry.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		return err
	}
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	sampled := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(telemetry.NewSpanBatcher(tracetest.NewNoopExporter())))
	defer unsampled.Shutdown(context.Background())
	defer sampled.Shutdown(context.Background())
	traced := func(tp *sdktrace.TracerProvider) (*grpcapi.Service, []grpc.ServerOption) {
		return pdp(engine.WithMetrics(metrics), engine.WithTracerProvider(tp)),
			append(metrics.GRPCServerOptions(), telemetry.GRPCTracing(tp, pdpv1.AuthorizationService_Authorize_FullMethodName)...)
	}
	defaultServer, _ := grpcapi.NewServer(pdp())
	noWorkersServer, _ := grpcapi.NewServer(pdp(), noWorkers)
	withMetrics, _ := grpcapi.NewServer(pdp(engine.WithMetrics(metrics)), metrics.GRPCServerOptions()...)
	metrics.InitializeGRPC(withMetrics)
	unsampledSvc, unsampledOpts := traced(unsampled)
	sampledSvc, sampledOpts := traced(sampled)
	withUnsampled, _ := grpcapi.NewServer(unsampledSvc, unsampledOpts...)
	withSampled, _ := grpcapi.NewServer(sampledSvc, sampledOpts...)
	fixedServer := func(opts ...grpc.ServerOption) *grpc.Server {
		gs := grpc.NewServer(opts...)
		pdpv1.RegisterAuthorizationServiceServer(gs, fixedAnswer{resp: sample})
		return gs
	}
	withWorkers := grpc.NumStreamWorkers(uint32(workers))
	for _, r := range []struct {
		name, base, adds string
		gs               *grpc.Server
		call             func(*grpc.ClientConn) load.Call
	}{
		{"echo", "", "the floor: raw bytes, no stream workers", echoServer(), echoCall},
		{"echo+workers", "echo", fmt.Sprintf("a pool of %d stream workers", workers), echoServer(withWorkers), echoCall},
		{"proto", "echo+workers", "protobuf on both ends and the generated service, a fixed answer", fixedServer(withWorkers), pdpCall},
		{"intentpdp", "proto", "intentpdp's interceptors and handler (decode, decide, encode, decision id)", defaultServer, pdpCall},
		{"metrics", "intentpdp", "Prometheus interceptor and decision metrics: intentpdp serve, tracing off", withMetrics, pdpCall},
		{"no-workers", "intentpdp", "intentpdp without stream workers", noWorkersServer, pdpCall},
		{"tracing-unsampled", "metrics", "tracing on, nothing sampled: tracing interceptors, unsampled decision span", withUnsampled, pdpCall},
		{"traced", "metrics", "tracing on, every decision sampled (the exporter discards)", withSampled, pdpCall},
	} {
		if err := add(r.name, r.base, r.adds, r.gs, r.call); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "latency budget, scenario %s: %d rungs, %s each per level in %d alternating rounds\n",
		sc.Spec.Name, len(rungs), cfg.duration, cfg.rounds)
	for _, c := range cfg.concurrency {
		opts := load.Options{Concurrency: c, Duration: cfg.duration / time.Duration(cfg.rounds)}
		results := make([][]load.Result, len(rungs))
		for range cfg.rounds {
			for i, r := range rungs {
				res, err := load.Run(ctx, r.call, opts)
				if err != nil {
					return err
				}
				if res.FirstError != nil {
					return fmt.Errorf("rung %s: %w", r.name, res.FirstError)
				}
				results[i] = append(results[i], res)
			}
		}
		fmt.Fprintf(out, "\nconcurrency %d\n  %-16s %10s %10s %12s %8s  %s\n", c, "rung", "p50", "Δp50", "throughput", "vs echo", "adds, to the rung named")
		byName := map[string]load.Result{}
		for i, r := range rungs {
			res := load.Combine(results[i]...)
			byName[r.name] = res
			floor, base := byName[rungs[0].name], byName[r.base]
			if r.base == "" {
				base = res
			}
			fmt.Fprintf(out, "  %-16s %10s %10s %10.0f/s %7.0f%%  %s: %s\n", r.name, res.P50, res.P50-base.P50,
				res.Throughput(), 100*res.Throughput()/floor.Throughput(), r.base, r.adds)
		}
		m := byName["metrics"]
		fmt.Fprintf(out, "  gap of intentpdp serve (metrics) over echo: p50 %+v, throughput %.0f%%\n",
			m.P50-byName["echo"].P50, 100*m.Throughput()/byName["echo"].Throughput())
	}
	return nil
}

// sampleResponse decides req once, for the fixed answer and the echo's
// reply size.
func sampleResponse(ctx context.Context, store *policystore.Store, req *pdpv1.AuthorizeRequest) (*pdpv1.AuthorizeResponse, error) {
	return grpcapi.Decide(ctx, engine.New(store), req, engine.DefaultLimits)
}

// fixedAnswer is the generated service with nothing behind it: every call
// gets the same response, so a rung with it measures protobuf and gRPC's
// method dispatch.
type fixedAnswer struct {
	pdpv1.UnimplementedAuthorizationServiceServer
	resp *pdpv1.AuthorizeResponse
}

func (f fixedAnswer) Authorize(context.Context, *pdpv1.AuthorizeRequest) (*pdpv1.AuthorizeResponse, error) {
	return f.resp, nil
}

// serveRung serves one rung of the ladder on listen until ctx ends, so
// that it can be measured across a process boundary like intentpdp serve:
// intentpdp (grpcapi's server, no metrics), metrics (with the Prometheus
// interceptor), limits (with serve's default transport limits) or
// static-window (with fixed flow-control windows). The ladder's proto rung
// answers every query alike and so cannot pass load's decision check.
func serveRung(ctx context.Context, sc *scenario.Scenario, name, listen string, out io.Writer) error {
	store := policystore.NewStore()
	if _, err := store.Activate(ctx, sc.Bundle); err != nil {
		return err
	}
	var gs *grpc.Server
	switch name {
	case "intentpdp":
		gs, _ = grpcapi.NewServer(grpcapi.New(engine.New(store)))
	case "metrics":
		metrics, err := telemetry.NewMetrics(prometheus.NewRegistry())
		if err != nil {
			return err
		}
		gs, _ = grpcapi.NewServer(grpcapi.New(engine.New(store, engine.WithMetrics(metrics))), metrics.GRPCServerOptions()...)
		metrics.InitializeGRPC(gs)
	case "limits":
		// intentpdp serve's default transport limits and keepalive.
		gs, _ = grpcapi.NewServer(grpcapi.New(engine.New(store)),
			grpc.MaxConcurrentStreams(1000),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
			grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute, Time: 2 * time.Minute, Timeout: 20 * time.Second}))
	case "static-window":
		// Fixed flow-control windows turn off gRPC's bandwidth estimation,
		// which at one stream sends a ping and a window update per call.
		gs, _ = grpcapi.NewServer(grpcapi.New(engine.New(store)), grpc.InitialWindowSize(1<<20), grpc.InitialConnWindowSize(1<<20))
	default:
		return fmt.Errorf("serve-rung: %q is not intentpdp, metrics, limits or static-window", name)
	}
	stop, addr, err := serveLoopback(gs, listen)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "serving rung %s on %s\n", name, addr)
	<-ctx.Done()
	return nil
}
