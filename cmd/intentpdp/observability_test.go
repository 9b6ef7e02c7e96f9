package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/internal/testutil/agentrequests"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// exampleRequests are the example bundle's requests, sorted by name.
func exampleRequests(t *testing.T) []*pdpv1.AuthorizeRequest {
	t.Helper()
	reqs, err := agentrequests.Load()
	if err != nil || len(reqs) == 0 {
		t.Fatalf("example requests: %v (%d)", err, len(reqs))
	}
	out := make([]*pdpv1.AuthorizeRequest, len(reqs))
	for i, r := range reqs {
		out[i] = r.Request
	}
	return out
}

func decisionName(d pdpv1.Decision) string { return strings.TrimPrefix(d.String(), "DECISION_") }

// TestServeObservability runs the real binary with an OTLP endpoint, a
// decision log and /metrics, and checks that every decision shows up in all
// three, the spans under the caller's trace.
func TestServeObservability(t *testing.T) {
	t.Parallel()
	recv := startReceiver(t)
	logPath := filepath.Join(t.TempDir(), "decisions.log")
	p := startServe(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + recv.addr, "OTEL_SERVICE_NAME=intentpdp-e2e"},
		"--decision-log", logPath, "--trace-identifiers", "principal")

	before := p.scrape(t)
	if got := sample(before, "intentpdp_policy_revision_info", "revision", "agents-example-v1"); got != 1 {
		t.Errorf("policy_revision_info{revision=agents-example-v1} = %v, want 1", got)
	}
	if got := sample(before, "intentpdp_bundle_activations_total", "result", "success"); got != 1 {
		t.Errorf("bundle_activations_total{result=success} = %v, want 1", got)
	}

	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	reqs := exampleRequests(t)
	decisions := map[string]string{} // decision id → ALLOW/DENY
	for _, req := range reqs {
		resp, err := p.client.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		decisions[resp.GetDecisionId()] = decisionName(resp.GetDecision())
	}
	batch, err := p.client.BatchAuthorize(ctx, &pdpv1.BatchAuthorizeRequest{Requests: reqs[:3]})
	if err != nil {
		t.Fatal(err)
	}
	for _, resp := range batch.GetResponses() {
		decisions[resp.GetDecisionId()] = decisionName(resp.GetDecision())
	}
	httpID, httpDecision := authzenEvaluation(t, p.httpAddr)
	decisions[httpID] = httpDecision
	n := len(reqs) + 3 + 1
	if len(decisions) != n {
		t.Fatalf("%d distinct decision ids for %d decisions", len(decisions), n)
	}

	after := p.scrape(t)
	for name, want := range map[string]float64{
		"intentpdp_decisions_total":                    float64(n),
		"intentpdp_decision_duration_seconds":          float64(n),
		"intentpdp_batch_size":                         1,
		"intentpdp_decision_log_queue_capacity":        4096,
		"intentpdp_decision_log_dropped_total":         0,
		"intentpdp_decision_log_failed_total":          0,
		"intentpdp_policy_revision_info":               1,
		"grpc_server_handled_total":                    float64(len(reqs) + 1),
		"intentpdp_decision_log_denied_total":          0,
		"intentpdp_bundle_activation_duration_seconds": 1,
		"intentpdp_trace_spans_dropped_total":          0,
	} {
		if after[name] == nil {
			t.Errorf("%s is not exported", name) // a zero below must be a series that says zero
		}
		if got := sample(after, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := sample(after, "intentpdp_decisions_total", "front_end", "authzen"); got != 1 {
		t.Errorf("decisions_total{front_end=authzen} = %v, want 1", got)
	}
	if got := sample(after, "grpc_server_handled_total", "grpc_method", "Authorize", "grpc_code", "OK"); got != float64(len(reqs)) {
		t.Errorf("grpc_server_handled_total{Authorize,OK} = %v, want %d", got, len(reqs))
	}

	p.stop(t) // flushes the decision log and the span exporter

	lines := readLog(t, logPath)
	if len(lines) != n {
		t.Errorf("decision log has %d lines, want %d", len(lines), n)
	}
	for _, l := range lines {
		if wantFE := map[bool]string{true: "authzen", false: "grpc"}[l.DecisionID == httpID]; l.FrontEnd != wantFE {
			t.Errorf("log line %s: front end %q, want %q", l.DecisionID, l.FrontEnd, wantFE)
		}
		if decisions[l.DecisionID] != l.Decision || l.TraceID != callerTrace {
			t.Errorf("log line %s: %s in trace %s; response said %q in trace %s", l.DecisionID, l.Decision, l.TraceID, decisions[l.DecisionID], callerTrace)
		}
	}

	checkSpans(t, recv.spans(), decisions)
}

// authzenEvaluation asks the AuthZEN endpoint for one decision within the
// caller's trace and returns its decision id and decision.
func authzenEvaluation(t *testing.T, addr string) (string, string) {
	t.Helper()
	body := `{"subject": {"type": "Agent", "id": "code-reviewer"}, "action": {"name": "read_file"},
		"resource": {"type": "Document", "id": "payments-api/README.md"}, "context": {"purpose": "code-review", "task_id": "PR-311"}}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/access/v1/evaluation", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Decision bool
		Context  struct {
			DecisionID string `json:"decision_id"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Context.DecisionID == "" {
		t.Fatalf("AuthZEN evaluation: %s, %v, %+v", resp.Status, err, out)
	}
	return out.Context.DecisionID, map[bool]string{true: "ALLOW", false: "DENY"}[out.Decision]
}

// checkSpans asserts one decision span per decision, each the child of
// the caller's span (gRPC Authorize) or of a server span (gRPC batch,
// HTTP) that is the child of the caller's span.
func checkSpans(t *testing.T, spans []receivedSpan, decisions map[string]string) {
	t.Helper()
	byID := map[string]receivedSpan{}
	for _, s := range spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	seen := 0
	for _, s := range spans {
		if s.GetName() != "intentpdp.authorize" {
			continue
		}
		seen++
		id := spanAttr(s.Span, "intentpdp.decision_id")
		if got := spanAttr(s.Span, "intentpdp.decision"); got != decisions[id] {
			t.Errorf("span for decision %s: decision %q, response %q", id, got, decisions[id])
		}
		if s.service != "intentpdp-e2e" || hex.EncodeToString(s.GetTraceId()) != callerTrace {
			t.Errorf("span for decision %s: service %q trace %x", id, s.service, s.GetTraceId())
		}
		if spanAttr(s.Span, "intentpdp.principal.id") == "" || spanAttr(s.Span, "intentpdp.policy_revision") != "agents-example-v1" {
			t.Errorf("span for decision %s lacks principal id or revision: %v", id, s.GetAttributes())
		}
		parent := hex.EncodeToString(s.GetParentSpanId())
		if parent == callerSpan {
			continue // Authorize: one decision, no RPC span of its own
		}
		rpc, ok := byID[parent]
		if !ok || !(strings.HasPrefix(rpc.GetName(), "intentpdp.v1.AuthorizationService/") || rpc.GetName() == "POST /access/v1/evaluation") {
			t.Errorf("span for decision %s: parent %x is not an RPC span", id, s.GetParentSpanId())
			continue
		}
		if got := hex.EncodeToString(rpc.GetParentSpanId()); got != callerSpan {
			t.Errorf("RPC span %s: parent %s, want the caller's span %s", rpc.GetName(), got, callerSpan)
		}
	}
	if seen != len(decisions) {
		t.Errorf("%d decision spans, want %d", seen, len(decisions))
	}
}

// TestSIGTERMUnderLoadLosesNoDecision signals the binary while clients keep
// asking, with a small decision log queue in block mode: every decision a
// client received must be in the log, exactly once.
func TestSIGTERMUnderLoadLosesNoDecision(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "decisions.log")
	p := startServe(t, nil, "--decision-log", logPath, "--decision-log-queue", "8", "--decision-log-full", "block")
	reqs := exampleRequests(t)

	const workers = 4
	var acked sync.Map // decision id → struct{}
	var count atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				resp, err := p.client.Authorize(t.Context(), reqs[(g+i)%len(reqs)])
				if err != nil {
					if c := status.Code(err); c != codes.Unavailable && !errors.Is(err, t.Context().Err()) {
						t.Errorf("Authorize during shutdown: %v", err)
					}
					return
				}
				acked.Store(resp.GetDecisionId(), struct{}{})
				if count.Add(1) >= 300 {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	select {
	case <-enough:
	case <-clientsDone:
		t.Fatal("clients stopped before the load was up")
	}
	p.stop(t)
	<-clientsDone

	logged := map[string]bool{}
	for _, l := range readLog(t, logPath) {
		if logged[l.DecisionID] {
			t.Errorf("decision %s logged twice", l.DecisionID)
		}
		logged[l.DecisionID] = true
	}
	missing := 0
	acked.Range(func(id, _ any) bool {
		if !logged[id.(string)] {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged decisions missing from the log", missing, count.Load())
	}
	t.Logf("%d acknowledged decisions, %d logged", count.Load(), len(logged))
}

// TestServeTracesOverOTLPHTTP exports over OTLP/HTTP, configured by flags
// alone, to an in-process receiver.
func TestServeTracesOverOTLPHTTP(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		// Only exports that carry the configured --otlp-headers are kept.
		if err != nil || r.URL.Path != "/v1/traces" || r.Header.Get("X-Tenant") != "a" || proto.Unmarshal(body, req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	}))
	t.Cleanup(recv.Close)
	p := startServe(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT="}, "--otlp-protocol", "http/protobuf", "--otlp-endpoint", recv.URL+"/v1/traces", "--otlp-headers", "x-tenant=a")
	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := p.client.Authorize(ctx, exampleRequests(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	p.stop(t)
	mu.Lock()
	defer mu.Unlock()
	for _, req := range got {
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					if spanAttr(s, "intentpdp.decision_id") == resp.GetDecisionId() && hex.EncodeToString(s.GetTraceId()) == callerTrace {
						return
					}
				}
			}
		}
	}
	t.Fatalf("no span for decision %s in the caller's trace arrived over OTLP/HTTP", resp.GetDecisionId())
}
