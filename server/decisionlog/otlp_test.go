package decisionlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/intentpdp/intentpdp/internal/testutil/otlplogs"
	"github.com/intentpdp/intentpdp/server/decisionlog"
)

// otlpExporters build an exporter of each protocol, without retries of its
// own: the Writer retries and counts.
var otlpExporters = []struct {
	name  string
	start func(t testing.TB, failFirst int) *otlplogs.Receiver
	new   func(t *testing.T, addr string) sdklog.Exporter
}{
	{"grpc", otlplogs.StartGRPC, func(t *testing.T, addr string) sdklog.Exporter {
		exp, err := otlploggrpc.New(t.Context(), otlploggrpc.WithEndpoint(addr), otlploggrpc.WithInsecure(),
			otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}},
	{"http", otlplogs.StartHTTP, func(t *testing.T, addr string) sdklog.Exporter {
		exp, err := otlploghttp.New(t.Context(), otlploghttp.WithEndpoint(addr), otlploghttp.WithInsecure(),
			otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}},
}

// TestOTLPSink sends decision records to a real OTLP receiver, over gRPC
// and over HTTP, that refuses the first exports: the writer retries them
// with backoff and counts the failures, every acknowledged record arrives
// exactly once with its attributes, and Close flushes what is queued.
func TestOTLPSink(t *testing.T) {
	t.Parallel()
	for _, tt := range otlpExporters {
		for _, failFirst := range []int{0, 3} {
			t.Run(fmt.Sprintf("%s/refuse %d", tt.name, failFirst), func(t *testing.T) {
				t.Parallel()
				recv := tt.start(t, failFirst)
				res := resource.NewSchemaless(attribute.String("service.name", "intentpdp"))
				w, err := decisionlog.New(decisionlog.NewOTLPSink(tt.new(t, recv.Addr), res),
					decisionlog.WithMode(decisionlog.Block), decisionlog.WithQueueSize(16),
					decisionlog.WithFlushInterval(time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				const n = 100 // more than the queue holds: Log blocks while exports fail
				for i := range n {
					if err := w.Log(t.Context(), record(t, fmt.Sprintf("d%03d", i), nil, nil)); err != nil {
						t.Fatalf("Log %d: %v", i, err)
					}
				}
				if err := w.Close(t.Context()); err != nil {
					t.Fatal(err)
				}
				if got := recv.Refused(); got != failFirst {
					t.Fatalf("receiver refused %d exports, want %d", got, failFirst)
				}
				if w.WriteErrors() != uint64(failFirst) || w.Written() != n || w.Failed() != 0 {
					t.Fatalf("write errors %d (want %d), written %d, failed %d", w.WriteErrors(), failFirst, w.Written(), w.Failed())
				}
				recs := recv.Records()
				if len(recs) != n {
					t.Fatalf("received %d records, want %d", len(recs), n)
				}
				for i, r := range recs {
					id := fmt.Sprintf("d%03d", i)
					if r.Attr("decision_id") != id || r.Attr("decision") != "ALLOW" || r.Attr("front_end") != "grpc" ||
						r.Attr("policy_revision") != "r1" || r.Service != "intentpdp" {
						t.Fatalf("record %d: attributes %v, service %q", i, r.GetAttributes(), r.Service)
					}
					var line map[string]any
					if err := json.Unmarshal([]byte(r.GetBody().GetStringValue()), &line); err != nil || line["decision_id"] != id {
						t.Fatalf("record %d body %q: %v", i, r.GetBody().GetStringValue(), err)
					}
					if got := time.Unix(0, int64(r.GetTimeUnixNano())).UTC(); !got.Equal(time.Unix(1700000000, 5)) {
						t.Fatalf("record %d time %v", i, got)
					}
				}
			})
		}
	}
}

// TestOTLPSinkUnreachable: with no collector listening, Deny mode refuses
// decisions once the sink is failing, and Close gives up within its bound
// and counts what it could not export as failed rather than dropping it
// silently.
func TestOTLPSinkUnreachable(t *testing.T) {
	t.Parallel()
	recv := otlplogs.StartHTTP(t, 1<<30) // refuses everything
	w, err := decisionlog.New(decisionlog.NewOTLPSink(otlpExporters[1].new(t, recv.Addr), nil),
		decisionlog.WithMode(decisionlog.Deny), decisionlog.WithFlushInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Log(t.Context(), record(t, "first", nil, nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return !w.SinkHealthy() && w.WriteErrors() > 0 })
	if err := w.Log(t.Context(), record(t, "second", nil, nil)); err == nil {
		t.Fatal("Deny mode accepted a record while the collector refuses exports")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); err == nil {
		t.Fatal("Close succeeded with a record never exported")
	}
	eventually(t, func() bool { return w.Failed() == 1 })
	if w.Denied() != 1 || w.Written() != 0 {
		t.Fatalf("denied %d, written %d", w.Denied(), w.Written())
	}
}
