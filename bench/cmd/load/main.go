// Command load drives an intentpdp server over gRPC with a benchmark
// scenario's queries and, in the same run, a bare gRPC echo of the same
// message sizes: the transport floor. It prints throughput and latency
// percentiles for both and their ratios, which stay meaningful on a noisy
// machine where absolute numbers do not.
//
//	go run ./bench/cmd/load -scenario p10k-e100k -concurrency 1,32,64
//	go run ./bench/cmd/load -write-bundle /tmp/b -scenario p10k-e100k   # for `intentpdp serve --bundle /tmp/b`
//	go run ./bench/cmd/load -addr 127.0.0.1:50051 -scenario p10k-e100k
//	go run ./bench/cmd/load -budget -scenario p10k-e100k   # where the gap over the echo goes
//	go run ./bench/cmd/load -serve-rung intentpdp -addr 127.0.0.1:50052   # one rung of -budget in its own process
//	go run ./bench/cmd/load -addr 127.0.0.1:50052 -echo-proto   # the echo called with protobuf messages as intentpdp is
//	go run ./bench/cmd/load -serve-echo 127.0.0.1:50053 -echo-work 3us   # an echo that works 3 µs per call
//	go run ./bench/cmd/load -addr 127.0.0.1:50052 -trace /tmp/client.trace   # go tool trace -pprof=sched /tmp/client.trace
//	go run ./bench/cmd/load -scenario p10-e1k -write-opa /tmp/o   # the scenario in Rego, for `opa run --server`
//	go run ./bench/cmd/load -scenario p10-e1k -serve-http-floor 127.0.0.1:18484   # the HTTP exchange without decision work
//	go run ./bench/cmd/load -scenario p10-e1k -authzen http://127.0.0.1:18481 -opa http://127.0.0.1:18482 -http-floor http://127.0.0.1:18484   # bench/opa.sh
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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

type config struct {
	// activateOnly, decideFor, memProfile and cpuProfile: see activateOnly.
	activateOnly bool
	decideFor    time.Duration
	memProfile   string
	cpuProfile   string

	addr        string
	scenario    string
	concurrency []int
	duration    time.Duration
	rate        float64
	batch       int
	rounds      int
	writeBundle string
	echoAddr    string
	serveEcho   string
	serveRung   string
	echoProto   bool
	echoWork    time.Duration
	trace       string
	budget      bool
	// writeOPA, authzenURLs, opaURL, httpFloorURL and serveHTTPFloor: see
	// writeOPA, compareOPA and serveHTTPFloor.
	writeOPA       string
	authzenURLs    []string
	opaURL         string
	httpFloorURL   string
	serveHTTPFloor string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func parse(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "", "intentpdp gRPC address; empty starts one in process on loopback with the scenario's bundle")
	fs.StringVar(&c.scenario, "scenario", "p10k-e100k", "scenario name: "+specNames())
	fs.BoolVar(&c.activateOnly, "activate-only", false, "activate the scenario's bundle in this process, report the time, the snapshot's heap and RSS, "+
		"then Decide's latency for -decide-for, and exit; no server, no load")
	fs.DurationVar(&c.decideFor, "decide-for", 3*time.Second, "with -activate-only, how long to time Decide over the queries (0: not at all)")
	fs.StringVar(&c.memProfile, "memprofile", "", "with -activate-only, write a heap profile of the activated snapshot to this file")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "with -activate-only, write a CPU profile of the activation to this file")
	levels := fs.String("concurrency", "1,32,64", "comma-separated concurrency levels (calls in flight)")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "duration of each measurement")
	fs.Float64Var(&c.rate, "rate", 0, "calls per second in total; 0 runs closed-loop, as fast as possible")
	fs.IntVar(&c.batch, "batch", 0, "send BatchAuthorize with this many requests instead of Authorize")
	fs.IntVar(&c.rounds, "rounds", 5, "alternate echo and intentpdp this many times per level, so both see the same machine load")
	fs.StringVar(&c.writeBundle, "write-bundle", "", "write the scenario's bundle to this directory and exit")
	fs.StringVar(&c.echoAddr, "echo-addr", "", "echo floor address (a `load -serve-echo` process); empty starts one in process. "+
		"A comma-separated list measures each (say, echoes of different -echo-work) in the same alternating rounds; the first is the floor of the summary")
	fs.StringVar(&c.serveEcho, "serve-echo", "", "serve only the echo floor, sized for the scenario, on this address until interrupted: "+
		"run it as its own process when -addr is a separate intentpdp process, so that both floors cross a process boundary")
	fs.StringVar(&c.serveRung, "serve-rung", "", "serve one rung of the -budget ladder (intentpdp, metrics, limits or static-window) on -addr until interrupted, "+
		"to measure it across a process boundary against a -serve-echo process")
	fs.BoolVar(&c.echoProto, "echo-proto", false, "call the echo with the scenario's requests and responses as protobuf messages, as intentpdp is called, "+
		"so that the client's protobuf work is on both sides of the comparison")
	fs.DurationVar(&c.echoWork, "echo-work", 0, "keep the echo's CPU busy this long before each reply (with -serve-echo or the echo in process): "+
		"a floor doing a known amount of work per call, to see what a microsecond of server work costs at p50")
	fs.StringVar(&c.trace, "trace", "", "write a runtime execution trace of this process, from start to exit, to this file (go tool trace)")
	fs.BoolVar(&c.budget, "budget", false, "measure the latency budget: a ladder of in-process servers, each adding one part of intentpdp to a bare echo, "+
		"measured in alternating rounds; prints each part's share of the gap")
	fs.StringVar(&c.writeOPA, "write-opa", "", "write the scenario as a Rego policy (policy.rego) and OPA data (data.json) to this directory and exit")
	authzenURLs := fs.String("authzen", "", "with -opa: base URL of intentpdp's AuthZEN API (intentpdp serve --http-listen); "+
		"several, comma-separated, are measured in the same rounds (an earlier build beside this one)")
	fs.StringVar(&c.opaURL, "opa", "", "base URL of an OPA server serving -write-opa's files: compare its data API with the AuthZEN API at -authzen, "+
		"over HTTP with the same requests in alternating rounds")
	fs.StringVar(&c.httpFloorURL, "http-floor", "", "with -opa: base URL of a -serve-http-floor process, measured in the same rounds")
	fs.StringVar(&c.serveHTTPFloor, "serve-http-floor", "", "serve the floor of -opa's comparison on this address until interrupted: "+
		"the AuthZEN endpoint answering the scenario's evaluations from their expected decisions, the HTTP exchange without decision work")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *authzenURLs != "" {
		c.authzenURLs = strings.Split(*authzenURLs, ",")
	}
	if (len(c.authzenURLs) == 0) != (c.opaURL == "") || (c.httpFloorURL != "" && c.opaURL == "") {
		return c, fmt.Errorf("-authzen and -opa go together, and -http-floor with them")
	}
	if c.rounds < 1 {
		return c, fmt.Errorf("rounds must be at least 1, not %d", c.rounds)
	}
	for _, l := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil || n < 1 {
			return c, fmt.Errorf("concurrency: %q is not a positive number", l)
		}
		c.concurrency = append(c.concurrency, n)
	}
	return c, nil
}

func specNames() string {
	var names []string
	for _, s := range scenario.Specs {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parse(args)
	if err != nil {
		return err
	}
	spec, ok := scenario.Find(cfg.scenario)
	if !ok {
		return fmt.Errorf("unknown scenario %q (have %s)", cfg.scenario, specNames())
	}
	sc := scenario.Build(spec)
	if cfg.trace != "" {
		stopTrace, err := startTrace(cfg.trace)
		if err != nil {
			return err
		}
		defer stopTrace()
	}
	if cfg.writeBundle != "" {
		return writeBundle(cfg.writeBundle, sc.Bundle)
	}
	if cfg.writeOPA != "" {
		return writeOPA(cfg.writeOPA, sc)
	}
	if cfg.opaURL != "" {
		return compareOPA(ctx, cfg, sc, out)
	}
	if cfg.serveHTTPFloor != "" {
		return serveHTTPFloor(ctx, sc, cfg.serveHTTPFloor, out)
	}
	if cfg.activateOnly {
		return activateOnly(ctx, sc, cfg, out)
	}
	if cfg.serveEcho != "" {
		return serveEcho(ctx, sc, cfg, out)
	}
	if cfg.serveRung != "" {
		return serveRung(ctx, sc, cfg.serveRung, cfg.addr, out)
	}
	if cfg.budget {
		return runBudget(ctx, cfg, sc, out)
	}
	addr := cfg.addr
	if addr == "" {
		stopServer, a, err := startServer(ctx, sc.Bundle)
		if err != nil {
			return err
		}
		defer stopServer()
		addr = a
	}
	pdp, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer pdp.Close()
	client := pdpv1.NewAuthorizationServiceClient(pdp)
	resp, err := replySample(ctx, client, sc.Queries, cfg.batch)
	if err != nil {
		return err
	}
	echoAddrs := splitList(cfg.echoAddr)
	if len(echoAddrs) == 0 {
		a, stopEcho, err := startEcho(resp, "127.0.0.1:0", cfg.echoWork)
		if err != nil {
			return err
		}
		defer stopEcho()
		echoAddrs = []string{a}
	}
	fmt.Fprintf(out, "scenario %s: %d tenants, %d entities, %d queries; target %s; %s per row in %d alternating rounds; GOMAXPROCS %d\n",
		spec.Name, sc.Tenants, sc.Entities, len(sc.Queries), addr, cfg.duration, cfg.rounds, runtime.GOMAXPROCS(0))
	var pdpCall load.Call
	var per int
	echoCalls := make([]load.Call, len(echoAddrs))
	for i, a := range echoAddrs {
		echoConn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer echoConn.Close()
		pdpCall, echoCalls[i], per = calls(client, echoConn, sc.Queries, cfg.batch)
		if cfg.echoProto && cfg.batch == 0 {
			echoCalls[i] = protoEcho(echoConn, sc.Queries)
		}
	}
	for _, c := range cfg.concurrency {
		opts := load.Options{Concurrency: c, Duration: cfg.duration / time.Duration(cfg.rounds), Rate: cfg.rate}
		floors := make([][]load.Result, len(echoCalls))
		var gots []load.Result
		for range cfg.rounds {
			for i, echoCall := range echoCalls {
				floor, err := load.Run(ctx, echoCall, opts)
				if err != nil {
					return err
				}
				floors[i] = append(floors[i], floor)
			}
			got, err := load.Run(ctx, pdpCall, opts)
			if err != nil {
				return err
			}
			gots = append(gots, got)
		}
		report(out, c, per, load.Combine(floors[0]...), load.Combine(gots...))
		for i, f := range floors[1:] {
			reportFloor(out, echoAddrs[i+1], load.Combine(f...), load.Combine(gots...))
		}
	}
	return nil
}

// calls returns the PDP call, the echo call with the same request size,
// and the decisions per call.
func calls(client pdpv1.AuthorizationServiceClient, echoConn *grpc.ClientConn, queries []scenario.Query, batch int) (pdp, floor load.Call, per int) {
	var next atomic.Uint64
	pick := func() *pdpv1.AuthorizeRequest { return queries[next.Add(1)%uint64(len(queries))].Request }
	if batch > 0 {
		breq := batchRequest(queries, batch)
		payload, _ := proto.Marshal(breq) // a valid message always marshals
		return func(ctx context.Context) error {
				_, err := client.BatchAuthorize(ctx, breq)
				return err
			}, func(ctx context.Context) error {
				return echo.Call(ctx, echoConn, payload)
			}, batch
	}
	payload, _ := proto.Marshal(queries[0].Request)
	return func(ctx context.Context) error {
			_, err := client.Authorize(ctx, pick())
			return err
		}, func(ctx context.Context) error {
			return echo.Call(ctx, echoConn, payload)
		}, 1
}

// protoEcho calls the echo with the scenario's requests in turn, encoded
// and its reply decoded by the protobuf codec, as the intentpdp client does.
func protoEcho(echoConn *grpc.ClientConn, queries []scenario.Query) load.Call {
	var next atomic.Uint64
	return func(ctx context.Context) error {
		return echoConn.Invoke(ctx, echo.Method, queries[next.Add(1)%uint64(len(queries))].Request, new(pdpv1.AuthorizeResponse))
	}
}

func report(out io.Writer, concurrency, per int, floor, got load.Result) {
	fmt.Fprintf(out, "\nconcurrency %d\n  echo      %s\n  intentpdp %s\n", concurrency, floor, got)
	if per > 1 {
		fmt.Fprintf(out, "  decisions/s %.0f (batches of %d)\n", got.Throughput()*float64(per), per)
	}
	fmt.Fprintf(out, "  p50 over echo %+v   throughput %.0f%% of echo\n",
		got.P50-floor.P50, 100*got.Throughput()/floor.Throughput())
	for _, r := range []load.Result{floor, got} {
		if r.FirstError != nil {
			fmt.Fprintf(out, "  first error: %v\n", r.FirstError)
		}
	}
}

// reportFloor reports a further echo of -echo-addr and the PDP's gap over it.
func reportFloor(out io.Writer, addr string, floor, got load.Result) {
	fmt.Fprintf(out, "  echo %s %s\n  p50 over echo %s %+v   throughput %.0f%% of it\n",
		addr, floor, addr, got.P50-floor.P50, 100*got.Throughput()/floor.Throughput())
	if floor.FirstError != nil {
		fmt.Fprintf(out, "  first error: %v\n", floor.FirstError)
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var items []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// checkQueries asks every query once and compares the decision with the
// scenario's, so that a server with the wrong bundle is caught before
// anything is measured. It returns a response to size the echo reply.
func checkQueries(ctx context.Context, client pdpv1.AuthorizationServiceClient, queries []scenario.Query) ([]byte, error) {
	var sample []byte
	for _, q := range queries {
		resp, err := client.Authorize(ctx, q.Request)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", q.Name, err)
		}
		if allow := resp.GetDecision() == pdpv1.Decision_DECISION_ALLOW; allow != q.Allow {
			return nil, fmt.Errorf("query %s: allow=%v, the scenario expects %v: is the server serving the scenario's bundle?", q.Name, allow, q.Allow)
		}
		if sample == nil {
			sample, _ = proto.Marshal(resp)
		}
	}
	return sample, nil
}

// startServer serves bundle with intentpdp's own gRPC server on loopback.
func startServer(ctx context.Context, bundle *policystore.Bundle) (stop func(), addr string, err error) {
	store := policystore.NewStore()
	if _, err := store.Activate(ctx, bundle); err != nil {
		return nil, "", err
	}
	gs, _ := grpcapi.NewServer(grpcapi.New(engine.New(store)))
	return serveLoopback(gs, "127.0.0.1:0")
}

func startEcho(reply []byte, listen string, work time.Duration) (addr string, stop func(), err error) {
	gs := grpc.NewServer(echo.ServerOption())
	echo.RegisterWorking(gs, reply, work)
	stop, addr, err = serveLoopback(gs, listen)
	return addr, stop, err
}

// batchRequest is the batch of n of the scenario's queries that -batch sends.
func batchRequest(queries []scenario.Query, n int) *pdpv1.BatchAuthorizeRequest {
	breq := &pdpv1.BatchAuthorizeRequest{}
	for i := range n {
		breq.Requests = append(breq.Requests, queries[i%len(queries)].Request)
	}
	return breq
}

// replySample checks the queries and returns a response of the size the
// measured calls get, single or batch, to size the echo's reply.
func replySample(ctx context.Context, client pdpv1.AuthorizationServiceClient, queries []scenario.Query, batch int) ([]byte, error) {
	single, err := checkQueries(ctx, client, queries)
	if err != nil || batch == 0 {
		return single, err
	}
	resp, err := client.BatchAuthorize(ctx, batchRequest(queries, batch))
	if err != nil {
		return nil, err
	}
	return proto.Marshal(resp)
}

// serveEcho serves the echo floor on cfg.serveEcho, its reply sized by a
// decision (or a batch of cfg.batch decisions) of the scenario, until ctx
// ends.
func serveEcho(ctx context.Context, sc *scenario.Scenario, cfg config, out io.Writer) error {
	stopServer, addr, err := startServer(ctx, sc.Bundle)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		stopServer()
		return err
	}
	reply, err := replySample(ctx, pdpv1.NewAuthorizationServiceClient(conn), sc.Queries, cfg.batch)
	conn.Close()
	stopServer()
	if err != nil {
		return err
	}
	echoAddr, stop, err := startEcho(reply, cfg.serveEcho, cfg.echoWork)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "serving echo on %s\n", echoAddr)
	<-ctx.Done()
	return nil
}

func serveLoopback(gs *grpc.Server, listen string) (stop func(), addr string, err error) {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", err
	}
	done := make(chan error, 1)
	go func() { done <- gs.Serve(lis) }()
	return func() {
		gs.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			fmt.Fprintln(os.Stderr, "load: server:", err)
		}
	}, lis.Addr().String(), nil
}

// startTrace writes a runtime execution trace to path until stop.
func startTrace(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		trace.Stop()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "load: trace:", err)
		}
	}, nil
}

func writeBundle(dir string, b *policystore.Bundle) error {
	for name, data := range b.Files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
