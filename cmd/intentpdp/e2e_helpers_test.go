package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// startupDeadline bounds waiting for the binary to listen or exit; it is
// not a timing assertion.
const startupDeadline = time.Minute

// servedBinary is a running `intentpdp serve` (the real binary) with JSON
// logs and every listener on loopback.
type servedBinary struct {
	cmd         *exec.Cmd
	adminAddr   string // set before the gRPC address is known; guarded by mu
	mcpAddr     string // likewise
	grpcAddr    string
	metricsAddr string
	httpAddr    string
	exited      chan error
	conn        *grpc.ClientConn
	client      pdpv1.AuthorizationServiceClient

	mu     sync.Mutex
	output bytes.Buffer // everything the binary logged
}

// admin dials the admin API, whose address is logged before gRPC's.
func (p *servedBinary) admin(t *testing.T) pdpv1.PolicyAdminServiceClient {
	t.Helper()
	p.mu.Lock()
	addr := p.adminAddr
	p.mu.Unlock()
	if addr == "" {
		t.Fatal("the admin API is off")
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pdpv1.NewPolicyAdminServiceClient(conn)
}

// logs returns what the binary has logged so far.
func (p *servedBinary) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// startServe runs the binary with env and args (JSON logs, every
// listener on a loopback port the kernel chooses) and waits until it serves
// gRPC and /metrics.
func startServe(t *testing.T, env []string, args ...string) *servedBinary {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cmd := exec.Command(bin, slices.Concat([]string{"serve", "--log-format", "json"}, loopbackFlags, args)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &servedBinary{cmd: cmd, exited: make(chan error, 1)}
	addrs := make(chan [3]string, 1)
	go p.watchLog(stderr, addrs)
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // a no-op once the test has stopped it
	})
	select {
	case a := <-addrs:
		p.grpcAddr, p.metricsAddr, p.httpAddr = a[0], a[1], a[2]
	case err := <-p.exited:
		t.Fatalf("intentpdp exited before serving: %v\n%s", err, p.logs())
	case <-time.After(startupDeadline):
		t.Fatal("intentpdp did not start serving")
	}
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p.conn = conn
	p.client = pdpv1.NewAuthorizationServiceClient(conn)
	return p
}

// watchLog reads the binary's JSON log, keeps it, and reports the gRPC,
// metrics and HTTP addresses once all are known.
func (p *servedBinary) watchLog(r io.Reader, addrs chan<- [3]string) {
	var grpcAddr, metricsAddr, httpAddr string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var l struct{ Level, Msg, Addr string }
		_ = json.Unmarshal(sc.Bytes(), &l) // unstructured output (a panic) is kept too
		p.mu.Lock()
		p.output.Write(append(sc.Bytes(), '\n'))
		p.mu.Unlock()
		switch l.Msg {
		case "serving admin API":
			p.mu.Lock()
			p.adminAddr = l.Addr
			p.mu.Unlock()
		case "serving the MCP gateway over Streamable HTTP":
			p.mu.Lock()
			p.mcpAddr = l.Addr
			p.mu.Unlock()
		case "serving gRPC":
			grpcAddr = l.Addr
		case "serving metrics":
			metricsAddr = l.Addr
		case "serving AuthZEN and forward-auth over HTTP":
			httpAddr = l.Addr
		}
		if grpcAddr != "" && metricsAddr != "" && httpAddr != "" {
			addrs <- [3]string{grpcAddr, metricsAddr, httpAddr}
			grpcAddr = ""
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *servedBinary) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("intentpdp exited with %v after SIGTERM\n%s", err, p.logs())
		}
	case <-time.After(startupDeadline):
		t.Fatal("intentpdp did not exit after SIGTERM")
	}
}

// scrape fetches /metrics and parses it.
func (p *servedBinary) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// sample sums the samples of name whose labels include every pair in
// labels (k1, v1, k2, v2, …); counters, gauges and histogram counts.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	var sum float64
	for _, m := range mfs[name].GetMetric() {
		if hasLabels(m, labels) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// otlpReceiver is an OTLP/gRPC trace service that keeps what it receives.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	got  []*tracepb.ResourceSpans
}

func startReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: lis.Addr().String()}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, r)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req.GetResourceSpans()...)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// receivedSpan is a span with its resource's service name.
type receivedSpan struct {
	service string
	*tracepb.Span
}

func (r *otlpReceiver) spans() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedSpan
	for _, rs := range r.got {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				out = append(out, receivedSpan{service, s})
			}
		}
	}
	return out
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			if arr := kv.GetValue().GetArrayValue(); arr != nil {
				var vs []string
				for _, v := range arr.GetValues() {
					vs = append(vs, v.GetStringValue())
				}
				return strings.Join(vs, ",")
			}
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// logLine is the part of a decision log line the tests check.
type logLine struct {
	DecisionID string `json:"decision_id"`
	Decision   string `json:"decision"`
	TraceID    string `json:"trace_id"`
	FrontEnd   string `json:"front_end"`
	Principal  struct {
		Type, ID string
	} `json:"principal"`
}

// readLog parses every line of the decision log at path.
func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.DecisionID == "" {
			t.Fatalf("decision log line %d unparseable (%v): %s", len(out)+1, err, sc.Bytes())
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
