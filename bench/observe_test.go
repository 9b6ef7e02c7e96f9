package bench_test

// Observability overhead: the same load with tracing and the decision log
// off and on, in process (the handler without network) and over gRPC on
// loopback. Run with: go test -run '^$' -bench Observe ./bench/
//
// The collector runs as `intentpdp serve` runs it by default: with its heap
// floor (--gc-min-heap-mib, heapfloor.DefaultMiB), unless the environment
// sets GOGC, which then decides alone, as it does for serve. GOGC=100 gives
// Go's default regime, in which the benchmark's live heap of about 1 MiB
// is collected every 3 MiB allocated and the collector is a third of the
// process's CPU. With the floor, the heap is touched up to it before the
// timed loop (touchHeap), which then runs on memory the process has
// already used, as a server's does once it has been running a while.

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/internal/heapfloor"
	"github.com/intentpdp/intentpdp/internal/testutil/agentrequests"
	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/decisionlog"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
	"github.com/intentpdp/intentpdp/server/telemetry"
)

// observeSetup is one benchmark configuration.
type observeSetup struct {
	name          string
	tracing, dlog bool
	// sampleRatio is the parent-based ratio of traces sampled (the
	// benchmark's calls carry no parent, so the ratio decides).
	sampleRatio float64
}

var observeSetups = []observeSetup{
	{"off", false, false, 0},
	{"tracing", true, false, 1},
	{"decisionlog", false, true, 0},
	{"both", true, true, 1},
	{"both-sampled-10pct", true, true, 0.1},
	{"tracing-sampled-10pct", true, false, 0.1},
}

// observedService builds the service for setup: spans sampled at the
// setup's ratio and batched to an exporter that discards (the collector's cost is not the
// PDP's), the decision log written to a file. It starts serve's heap
// floor for the benchmark's duration.
func observedService(b *testing.B, setup observeSetup) (*grpcapi.Service, []grpc.ServerOption) {
	b.Helper()
	if floor, _ := heapfloor.StartUnlessGOGC(heapfloor.DefaultMiB); floor != nil {
		b.Cleanup(floor.Stop)
		touchHeap(heapfloor.DefaultMiB)
	}
	bundle, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		b.Fatal(err)
	}
	store := policystore.NewStore()
	if _, err := store.Activate(b.Context(), bundle); err != nil {
		b.Fatal(err)
	}
	var opts []engine.Option
	var grpcOpts []grpc.ServerOption
	if setup.tracing {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(telemetry.NewSpanBatcher(tracetest.NewNoopExporter())), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(setup.sampleRatio))))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		opts = append(opts, engine.WithTracerProvider(tp))
		grpcOpts = append(grpcOpts, telemetry.GRPCTracing(tp, pdpv1.AuthorizationService_Authorize_FullMethodName)...)
	}
	if setup.dlog {
		sink, err := decisionlog.OpenSink(filepath.Join(b.TempDir(), "decisions.log"), 1024, 1)
		if err != nil {
			b.Fatal(err)
		}
		w, err := decisionlog.New(sink)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = w.Close(context.Background()) })
		opts = append(opts, engine.WithDecisionLog(w))
	}
	return grpcapi.New(engine.New(store, opts...)), grpcOpts
}

// touched keeps touchHeap's garbage from being optimised away.
var touched []byte

// touchHeap allocates, writes every page of, and drops mib MiB, so the
// heap grows once to the floor and the timed loop reuses memory the
// process has already touched, as a server that has been running does.
// Otherwise a benchmark of a second pays a page fault for every page it
// allocates (over gRPC about 3 per call, some 2 µs each on this machine),
// which serve pays once, at start.
func touchHeap(mib int) {
	for range mib {
		touched = make([]byte, 1<<20)
		for i := 0; i < len(touched); i += os.Getpagesize() {
			touched[i] = 1
		}
	}
	touched = nil
	runtime.GC() // the pages go back to the heap, not to the system
}

// observeRequests are the example bundle's requests, each answered once
// outside the timed loop.
func observeRequests(b *testing.B, svc *grpcapi.Service) []*pdpv1.AuthorizeRequest {
	b.Helper()
	reqs, err := agentrequests.Load()
	if err != nil || len(reqs) == 0 {
		b.Fatalf("example requests: %v", err)
	}
	out := make([]*pdpv1.AuthorizeRequest, len(reqs))
	for i, r := range reqs {
		if _, err := svc.Authorize(b.Context(), r.Request); err != nil {
			b.Fatalf("%s: %v", r.Name, err)
		}
		out[i] = r.Request
	}
	return out
}

// BenchmarkObserveHandler is the handler without network, the collector
// as serve runs it (see the top of this file).
func BenchmarkObserveHandler(b *testing.B) {
	for _, setup := range observeSetups {
		b.Run(setup.name, func(b *testing.B) {
			svc, _ := observedService(b, setup)
			reqs := observeRequests(b, svc)
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := svc.Authorize(context.Background(), reqs[next.Add(1)%uint64(len(reqs))]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkObserveGRPC is gRPC over loopback, the transport spans of the
// tracing interceptors included when tracing is on, the collector as
// serve runs it (see the top of this file).
func BenchmarkObserveGRPC(b *testing.B) {
	for _, setup := range observeSetups {
		b.Run(setup.name, func(b *testing.B) {
			svc, grpcOpts := observedService(b, setup)
			reqs := observeRequests(b, svc)
			gs, _ := grpcapi.NewServer(svc, grpcOpts...)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() { _ = gs.Serve(lis) }()
			b.Cleanup(gs.Stop)
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = conn.Close() })
			client := pdpv1.NewAuthorizationServiceClient(conn)
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.Authorize(context.Background(), reqs[next.Add(1)%uint64(len(reqs))]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// reportCPU reports the process CPU time (user and system, every goroutine:
// the log writer and span exporter included) per operation. On a shared
// machine it varies much less than wall time, which other tenants' load
// inflates; the ratio of CPU per decision is the throughput ratio when the
// PDP is CPU-bound. It also reports the page faults per operation: memory
// touched for the first time, which a server that has been running no
// longer pays. Call the returned function after the timed loop.
func reportCPU(b *testing.B) func() {
	start := usage(b)
	return func() {
		end := usage(b)
		b.ReportMetric(float64((cpuTime(end)-cpuTime(start)).Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(end.Minflt-start.Minflt)/float64(b.N), "faults/op")
	}
}

func usage(b *testing.B) syscall.Rusage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru
}

func cpuTime(ru syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
