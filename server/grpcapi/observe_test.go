package grpcapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/decisionlog"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
	"github.com/intentpdp/intentpdp/server/telemetry"
)

// observed is a PDP with every observer attached, served over bufconn.
type observed struct {
	client pdpv1.AuthorizationServiceClient
	spans  *tracetest.SpanRecorder
	reg    *prometheus.Registry
	log    *decisionlog.Writer
	logBuf *bytes.Buffer
}

func startObserved(t *testing.T, opts ...engine.Option) *observed {
	t.Helper()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	store := policystore.NewStore()
	if _, err := store.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	o := &observed{spans: tracetest.NewSpanRecorder(), reg: prometheus.NewRegistry(), logBuf: &bytes.Buffer{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	metrics, err := telemetry.NewMetrics(o.reg)
	if err != nil {
		t.Fatal(err)
	}
	if o.log, err = decisionlog.New(o.logBuf, decisionlog.WithQueueSize(8)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.log.Close(context.Background()) }) // a no-op if the test closed it
	if err := metrics.ObserveDecisionLog(o.log); err != nil {
		t.Fatal(err)
	}
	svc := newService(store, append([]engine.Option{
		engine.WithTracerProvider(tp), engine.WithMetrics(metrics), engine.WithDecisionLog(o.log),
	}, opts...)...)
	gs, _ := grpcapi.NewServer(svc, append(metrics.GRPCServerOptions(), telemetry.GRPCTracing(tp, pdpv1.AuthorizationService_Authorize_FullMethodName)...)...)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	o.client = pdpv1.NewAuthorizationServiceClient(conn)
	return o
}

const (
	callerTrace = "0af7651916cd43dd8448eb211c80319c"
	callerSpan  = "b7ad6b7169203331"
)

func withCallerTrace(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestDecisionSpanJoinsCallerTrace(t *testing.T) {
	t.Parallel()
	o := startObserved(t, engine.WithTracedIdentifiers(engine.TracedIdentifiers{PrincipalID: true}))
	req := exampleRequests(t)["read-readme-allowed"]
	resp, err := o.client.Authorize(withCallerTrace(t.Context()), req)
	if err != nil {
		t.Fatal(err)
	}
	// Authorize makes one decision: its decision span is its only span.
	spans := o.spans.Ended()
	if len(spans) != 1 || spans[0].Name() != engine.SpanName {
		t.Fatalf("spans %v: want the decision span alone", spans)
	}
	decision := spans[0]
	if got := decision.Parent().SpanID().String(); got != callerSpan || !decision.Parent().IsRemote() {
		t.Errorf("decision span parent = %s (remote %t), want the caller's span %s", got, decision.Parent().IsRemote(), callerSpan)
	}
	if got := decision.SpanContext().TraceID().String(); got != callerTrace {
		t.Errorf("decision span trace = %s, want the caller's %s", got, callerTrace)
	}
	a := spanAttrs(decision)
	want := map[string]string{
		engine.AttrDecision:      "ALLOW",
		engine.AttrDecisionID:    resp.GetDecisionId(),
		engine.AttrRevision:      resp.GetPolicyRevision(),
		engine.AttrPrincipalType: req.GetPrincipal().GetType(),
		engine.AttrPrincipalID:   req.GetPrincipal().GetId(),
		engine.AttrAction:        req.GetIntent().GetAction(),
		engine.AttrResourceType:  req.GetResource().GetType(),
		engine.AttrTaskID:        req.GetIntent().GetTaskId(),
		engine.AttrFrontEnd:      string(grpcapi.FrontEnd),
	}
	for k, v := range want {
		if got := a[attribute.Key(k)].AsString(); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	var reasonIDs []string
	for _, r := range resp.GetReasons() {
		reasonIDs = append(reasonIDs, r.GetPolicyId())
	}
	if got := a[engine.AttrPolicyIDs].AsStringSlice(); fmt.Sprint(got) != fmt.Sprint(reasonIDs) || len(got) == 0 {
		t.Errorf("policy ids = %v, want %v", got, reasonIDs)
	}
	if _, ok := a[engine.AttrResourceID]; ok {
		t.Error("resource id recorded although not configured")
	}
}

// TestDecisionSpanFollowsCallerTraceContext checks the rest of the W3C
// trace context read from the call's metadata: the caller's tracestate is
// carried on, a caller that did not sample its trace gets no recorded span
// (the tracer provider samples by parent), and a call without trace
// context starts a trace of its own.
func TestDecisionSpanFollowsCallerTraceContext(t *testing.T) {
	t.Parallel()
	o := startObserved(t)
	req := exampleRequests(t)["read-readme-allowed"]
	ctx := metadata.AppendToOutgoingContext(t.Context(),
		"traceparent", "00-"+callerTrace+"-"+callerSpan+"-01", "tracestate", "vendor=abc")
	if _, err := o.client.Authorize(ctx, req); err != nil {
		t.Fatal(err)
	}
	spans := o.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want the decision span", len(spans))
	}
	if got := spans[0].SpanContext().TraceState().String(); got != "vendor=abc" {
		t.Errorf("decision span tracestate = %q, want the caller's", got)
	}

	unsampled := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+callerTrace+"-"+callerSpan+"-00")
	if _, err := o.client.Authorize(unsampled, req); err != nil {
		t.Fatal(err)
	}
	if n := len(o.spans.Ended()); n != 1 {
		t.Errorf("%d spans after a call from an unsampled trace, want still 1", n)
	}

	// Without trace context, or with a malformed traceparent (no trace
	// context either), the decision span starts a trace of its own.
	for i, call := range []struct {
		name string
		ctx  context.Context
	}{
		{"a call without trace context", t.Context()},
		{"a call with a malformed traceparent", metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+callerTrace+"-not-a-span-01")},
	} {
		if _, err := o.client.Authorize(call.ctx, req); err != nil {
			t.Fatal(err)
		}
		spans = o.spans.Ended()
		if len(spans) != 2+i {
			t.Fatalf("%d spans after %s, want %d", len(spans), call.name, 2+i)
		}
		if root := spans[1+i]; root.Parent().IsValid() || !root.SpanContext().IsValid() || root.SpanContext().TraceID().String() == callerTrace {
			t.Errorf("span of %s: parent %v, context %v; want a new root", call.name, root.Parent(), root.SpanContext())
		}
	}
}

func TestBatchGetsOneSpanPerDecision(t *testing.T) {
	t.Parallel()
	o := startObserved(t)
	reqs := exampleRequests(t)
	batch := &pdpv1.BatchAuthorizeRequest{Requests: []*pdpv1.AuthorizeRequest{
		reqs["read-readme-allowed"], reqs["outsider-read-denied"], reqs["secret-without-approved-purpose-denied"],
	}}
	resp, err := o.client.BatchAuthorize(withCallerTrace(t.Context()), batch)
	if err != nil {
		t.Fatal(err)
	}
	var rpc sdktrace.ReadOnlySpan
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range o.spans.Ended() {
		if s.Name() == engine.SpanName {
			byID[spanAttrs(s)[engine.AttrDecisionID].AsString()] = s
		} else {
			rpc = s
		}
	}
	if len(byID) != len(batch.Requests) || rpc == nil {
		t.Fatalf("%d decision spans and RPC span %v, want %d and one", len(byID), rpc, len(batch.Requests))
	}
	if rpc.Name() != "intentpdp.v1.AuthorizationService/BatchAuthorize" || rpc.Parent().SpanID().String() != callerSpan || !rpc.Parent().IsRemote() {
		t.Errorf("RPC span %s with parent %s (remote %t), want BatchAuthorize under the caller's span %s", rpc.Name(), rpc.Parent().SpanID(), rpc.Parent().IsRemote(), callerSpan)
	}
	for i, r := range resp.GetResponses() {
		s, ok := byID[r.GetDecisionId()]
		if !ok {
			t.Fatalf("responses[%d]: no span for decision %s", i, r.GetDecisionId())
		}
		if s.Parent().SpanID() != rpc.SpanContext().SpanID() {
			t.Errorf("responses[%d]: span parent is not the batch RPC span", i)
		}
		want := strings.TrimPrefix(r.GetDecision().String(), "DECISION_")
		if got := spanAttrs(s)[engine.AttrDecision].AsString(); got != want {
			t.Errorf("responses[%d]: span decision %s, response %s", i, got, want)
		}
	}
	if got := histogramCount(t, o.reg, "intentpdp_batch_size"); got != 1 {
		t.Errorf("batch_size count = %d, want 1", got)
	}
}

func TestConcurrentDecisionsLoggedExactlyOnce(t *testing.T) {
	t.Parallel()
	o := startObserved(t)
	reqs := exampleRequests(t)
	var all []*pdpv1.AuthorizeRequest
	for _, r := range reqs {
		all = append(all, r)
	}
	const workers, each = 8, 40
	var mu sync.Mutex
	ids := map[string]string{} // decision id → decision
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				resp, err := o.client.Authorize(t.Context(), all[(g+i)%len(all)])
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[resp.GetDecisionId()] = strings.TrimPrefix(resp.GetDecision().String(), "DECISION_")
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := o.log.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(o.logBuf.String(), "\n"), "\n")
	if len(lines) != workers*each || len(ids) != workers*each {
		t.Fatalf("%d log lines, %d distinct responses; want %d of each", len(lines), len(ids), workers*each)
	}
	for i, l := range lines {
		rec := parseLine(t, l)
		if ids[rec.DecisionID] != rec.Decision {
			t.Fatalf("line %d: decision %s %s, response said %q", i+1, rec.DecisionID, rec.Decision, ids[rec.DecisionID])
		}
		delete(ids, rec.DecisionID) // a second line for the same id now fails
	}

	allow, deny := counterValue(t, o.reg, "intentpdp_decisions_total", "outcome", "allow"), counterValue(t, o.reg, "intentpdp_decisions_total", "outcome", "deny")
	if allow == 0 || deny == 0 || allow+deny != workers*each {
		t.Errorf("decisions_total allow %v + deny %v, want both > 0 summing to %d", allow, deny, workers*each)
	}
	if got := histogramCount(t, o.reg, "intentpdp_decision_duration_seconds"); got != workers*each {
		t.Errorf("decision_duration_seconds count = %d, want %d", got, workers*each)
	}
	if got := counterValue(t, o.reg, "intentpdp_decision_log_written_total", "", ""); got != workers*each {
		t.Errorf("decision_log_written_total = %v, want %d", got, workers*each)
	}
	if got := counterValue(t, o.reg, "grpc_server_handled_total", "grpc_method", "Authorize"); got != workers*each {
		t.Errorf("grpc_server_handled_total{Authorize} = %v, want %d", got, workers*each)
	}
}

// refusingLog is a decision log that cannot take any record.
type refusingLog struct{ err error }

func (l refusingLog) Log(context.Context, decisionlog.Record) error { return l.err }

func TestDecisionThatCannotBeLogged(t *testing.T) {
	t.Parallel()
	allowed := exampleRequests(t)["read-readme-allowed"]
	t.Run("deny mode denies", func(t *testing.T) {
		t.Parallel()
		o := startObserved(t, engine.WithDecisionLog(refusingLog{decisionlog.ErrQueueFull}))
		resp, err := o.client.Authorize(t.Context(), allowed)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetDecision() != pdpv1.Decision_DECISION_DENY || len(resp.GetErrors()) == 0 {
			t.Fatalf("got %v, want a deny that says the log was full", resp)
		}
	})
	t.Run("closed log is unavailable", func(t *testing.T) {
		t.Parallel()
		o := startObserved(t, engine.WithDecisionLog(refusingLog{decisionlog.ErrClosed}))
		_, err := o.client.Authorize(t.Context(), allowed)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v, want Unavailable", err)
		}
		if got := counterValue(t, o.reg, "intentpdp_decisions_total", "outcome", "error"); got != 1 {
			t.Errorf("decisions_total{outcome=error} = %v, want 1", got)
		}
	})
}

type logLine struct {
	DecisionID string `json:"decision_id"`
	Decision   string `json:"decision"`
}

func parseLine(t *testing.T, l string) logLine {
	t.Helper()
	var rec logLine
	if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.DecisionID == "" {
		t.Fatalf("bad log line %q: %v", l, err)
	}
	return rec
}

// counterValue sums the counter name over series whose label has value
// (every series when label is "").
func counterValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	var sum float64
	for _, m := range family(t, g, name) {
		if label == "" || labelValue(m, label) == value {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	var n uint64
	for _, m := range family(t, g, name) {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

func family(t *testing.T, g prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
