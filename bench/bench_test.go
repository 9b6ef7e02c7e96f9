// Package bench holds intentpdp's benchmark suite; see README.md. The
// benchmarks only run with -bench (make bench); scenarios are built once
// per process and their queries' decisions checked before any timing.
package bench

import (
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/bench/echo"
	"github.com/intentpdp/intentpdp/bench/load"
	"github.com/intentpdp/intentpdp/bench/scenario"
	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// fixture is a built scenario with its compiled snapshot and decoded
// queries.
type fixture struct {
	sc      *scenario.Scenario
	snap    *policystore.Snapshot
	decoded []policystore.Request
}

var (
	fixtureMu sync.Mutex
	current   *fixture
)

// fixtureFor builds and checks the scenario named name. Only the latest
// fixture is kept: the large ones hold hundreds of megabytes, and a live
// heap of several would make the garbage collector part of every result.
// Benchmarks ask for their scenarios in order, so each is built once per
// benchmark function.
// service decides against the fixture's snapshot: the bundle is compiled
// once per fixture, not again per benchmark.
func (f *fixture) service() *grpcapi.Service { return grpcapi.New(engine.New(engine.Fixed(f.snap))) }

func fixtureFor(b *testing.B, name string) *fixture {
	b.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if current != nil && current.sc.Spec.Name == name {
		return current
	}
	current = nil
	runtime.GC()
	spec, ok := scenario.Find(name)
	if !ok {
		b.Fatalf("no scenario %q", name)
	}
	sc := scenario.Build(spec)
	snap, err := policystore.Compile(sc.Bundle)
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{sc: sc, snap: snap}
	for _, q := range sc.Queries {
		req, err := grpcapi.DecodeRequest(q.Request, engine.DefaultLimits)
		if err != nil {
			b.Fatalf("%s: %v", q.Name, err)
		}
		req.Now = time.Now()
		d, err := snap.Decide(context.Background(), req)
		if err != nil || d.Allow != q.Allow || len(d.Errors) > 0 {
			b.Fatalf("%s: allow=%v errors=%v err=%v, scenario expects allow=%v", q.Name, d.Allow, d.Errors, err, q.Allow)
		}
		f.decoded = append(f.decoded, req)
	}
	current = f
	return f
}

// latencies samples per-operation durations, to report percentiles next
// to the mean that the testing package reports.
type latencies []time.Duration

func (l *latencies) time(start time.Time) { *l = append(*l, time.Since(start)) }

func (l latencies) report(b *testing.B) {
	slices.Sort(l)
	b.ReportMetric(float64(load.Percentile(l, 50)), "p50-ns")
	b.ReportMetric(float64(load.Percentile(l, 99)), "p99-ns")
}

var floorSpecs = []string{"p10-e1k", "p1k-e1k", "p10k-e100k"}

// BenchmarkCedarFloor is cedar-go's own Authorize over every policy of the
// scenario with the same entities: what the PDP would cost without its
// index, and the floor its own overhead is measured against.
func BenchmarkCedarFloor(b *testing.B) {
	for _, name := range floorSpecs {
		b.Run(name, func(b *testing.B) {
			f := fixtureFor(b, name)
			ps, err := cedar.NewPolicySetFromBytes("policies.cedar", f.sc.Bundle.Files["policies.cedar"])
			if err != nil {
				b.Fatal(err)
			}
			entities := f.snap.Entities()
			b.ReportAllocs()
			contexts := make([]types.Record, len(f.decoded))
			for i, r := range f.decoded {
				if contexts[i], err = r.CedarContext(); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				r := f.decoded[i%len(f.decoded)]
				cedar.Authorize(ps, entities, cedar.Request{Principal: r.Principal, Action: r.Action, Resource: r.Resource, Context: contexts[i%len(f.decoded)]})
				i++
			}
		})
	}
}

var decideSpecs = []string{"p10-e1k", "p1k-e1k", "p1k-e100k", "p10k-e100k", "p10k-e100k-ctx50", "p100k-e100k", "p1m-e1m"}

// BenchmarkDecide is Snapshot.Decide with the index, on decoded requests.
// Each request's context.now is the clock read when its decision starts,
// as the engine sets it: a fixed time per request would make requests that
// the server gives one context (same intent, same millisecond) differ.
// (Figures in README.md before "Round 3" of the allocation work used the
// time each request was decoded at, fixed when the fixture was built.)
func BenchmarkDecide(b *testing.B) {
	for _, name := range decideSpecs {
		b.Run(name, func(b *testing.B) {
			f := fixtureFor(b, name)
			lat := make(latencies, 0, 1<<16)
			b.ReportAllocs()
			mallocs := countMallocs()
			i := 0
			for b.Loop() {
				start := time.Now()
				req := f.decoded[i%len(f.decoded)]
				req.Now = start
				if _, err := f.snap.Decide(context.Background(), req); err != nil {
					b.Fatal(err)
				}
				lat.time(start)
				i++
			}
			mallocs.report(b, i)
			lat.report(b)
		})
	}
}

// mallocCount is the process's allocation count at some point.
type mallocCount uint64

func countMallocs() mallocCount {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return mallocCount(m.Mallocs)
}

// report reports the allocations per operation since c, over n operations,
// with the fraction that allocs/op truncates (10.0 and 10.9 both show as
// 10).
func (c mallocCount) report(b *testing.B, n int) {
	b.ReportMetric(float64(countMallocs()-c)/float64(max(n, 1)), "mallocs/op")
}

// BenchmarkHandler is the gRPC handler without the network: decode,
// decide, encode, decision id, from the wire message to the response.
func BenchmarkHandler(b *testing.B) {
	for _, name := range []string{"p10-e1k", "p10k-e100k", "p10k-e100k-ctx50", "p100k-e100k"} {
		f := fixtureFor(b, name)
		svc := f.service()
		ctx := context.Background()
		b.Run(name, func(b *testing.B) {
			lat := make(latencies, 0, 1<<16)
			b.ReportAllocs()
			mallocs := countMallocs()
			i := 0
			for b.Loop() {
				start := time.Now()
				if _, err := svc.Authorize(ctx, f.sc.Queries[i%len(f.sc.Queries)].Request); err != nil {
					b.Fatal(err)
				}
				lat.time(start)
				i++
			}
			mallocs.report(b, i)
			lat.report(b)
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := svc.Authorize(ctx, f.sc.Queries[i%len(f.sc.Queries)].Request); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// serveLoopback starts s on a loopback TCP port until the benchmark ends.
func serveLoopback(b *testing.B, s *grpc.Server) *grpc.ClientConn {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cc.Close()
		s.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			b.Error(err)
		}
	})
	return cc
}

// BenchmarkLoopback is Authorize over real loopback TCP, next to a bare
// gRPC echo of the same message sizes (the transport floor), one caller
// and many. Parallelism is raised so that RunParallel keeps 32 and 64
// calls in flight on this 2-core machine.
func BenchmarkLoopback(b *testing.B) {
	f := fixtureFor(b, "p10k-e100k")
	gs, _ := grpcapi.NewServer(f.service())
	client := pdpv1.NewAuthorizationServiceClient(serveLoopback(b, gs))
	ctx := context.Background()
	resp, err := client.Authorize(ctx, f.sc.Queries[0].Request)
	if err != nil {
		b.Fatal(err)
	}
	reqBytes, _ := proto.Marshal(f.sc.Queries[0].Request)
	respBytes, _ := proto.Marshal(resp)
	es := grpc.NewServer(echo.ServerOption())
	echo.Register(es, respBytes)
	echoConn := serveLoopback(b, es)

	authorize := func(i int) error {
		_, err := client.Authorize(ctx, f.sc.Queries[i%len(f.sc.Queries)].Request)
		return err
	}
	floor := func(int) error { return echo.Call(ctx, echoConn, reqBytes) }
	for _, c := range []struct {
		name string
		call func(int) error
	}{{"echo", floor}, {"authorize", authorize}} {
		b.Run(c.name+"/streams-1", func(b *testing.B) {
			lat := make(latencies, 0, 1<<16)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				start := time.Now()
				if err := c.call(i); err != nil {
					b.Fatal(err)
				}
				lat.time(start)
				i++
			}
			lat.report(b)
		})
		for _, streams := range []int{32, 64} {
			b.Run(c.name+"/streams-"+strconv.Itoa(streams), func(b *testing.B) {
				b.SetParallelism((streams + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if err := c.call(i); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkBatch compares decisions per second of BatchAuthorize with 100
// requests against single Authorize calls, both over loopback.
func BenchmarkBatch(b *testing.B) {
	f := fixtureFor(b, "p10k-e100k")
	gs, _ := grpcapi.NewServer(f.service())
	client := pdpv1.NewAuthorizationServiceClient(serveLoopback(b, gs))
	ctx := context.Background()
	batch := &pdpv1.BatchAuthorizeRequest{}
	for i := range 100 {
		batch.Requests = append(batch.Requests, f.sc.Queries[i%len(f.sc.Queries)].Request)
	}
	b.Run("batch-100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.BatchAuthorize(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(batch.Requests))/b.Elapsed().Seconds(), "decisions/s")
	})
	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := client.Authorize(ctx, f.sc.Queries[i%len(f.sc.Queries)].Request); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	})
}

// BenchmarkDecideDuringReloads measures decisions while another goroutine
// activates a 10,000-policy bundle over and over, against the same
// decisions with no reloads. The bundle has the tenants' 16,000 entities
// only, so that a reload takes a fraction of a second and many happen.
func BenchmarkDecideDuringReloads(b *testing.B) {
	f := fixtureFor(b, "p10k-e1k")
	for _, reloading := range []bool{false, true} {
		name := "idle"
		if reloading {
			name = "reloading"
		}
		b.Run(name, func(b *testing.B) {
			store := policystore.NewStore()
			if _, err := store.Activate(context.Background(), f.sc.Bundle); err != nil {
				b.Fatal(err)
			}
			reloads := 0
			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				if !reloading {
					done <- nil
					return
				}
				for {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					if _, err := store.Activate(context.Background(), f.sc.Bundle); err != nil {
						done <- err
						return
					}
					reloads++
				}
			}()
			lat := make(latencies, 0, 1<<16)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				start := time.Now()
				snap, err := store.Current()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := snap.Decide(context.Background(), f.decoded[i%len(f.decoded)]); err != nil {
					b.Fatal(err)
				}
				lat.time(start)
				i++
			}
			close(stop)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			lat.report(b)
			b.ReportMetric(float64(reloads), "reloads")
		})
	}
}

// BenchmarkActivate is the cost of Compile (parse, index, entity closure)
// per bundle size, with the heap a snapshot retains per policy.
func BenchmarkActivate(b *testing.B) {
	for _, name := range []string{"p1k-e1k", "p10k-e1k", "p10k-e100k", "p100k-e100k"} {
		b.Run(name, func(b *testing.B) {
			spec, _ := scenario.Find(name)
			bundle := scenario.Build(spec).Bundle
			var snap *policystore.Snapshot
			retained := heapDelta(func() {
				var err error
				if snap, err = policystore.Compile(bundle); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := policystore.Compile(bundle); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(retained)/float64(snap.PolicyCount()+snap.EntityCount()), "retained-B/(policy+entity)")
			b.ReportMetric(float64(retained)/(1<<20), "retained-MiB")
			runtime.KeepAlive(snap)
		})
	}
}

// heapDelta is the live heap that fn leaves behind.
func heapDelta(fn func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}
