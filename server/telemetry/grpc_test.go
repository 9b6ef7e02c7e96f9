package telemetry

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// TestRPCSpanParentComesFromTraceparentOnly checks that the parent of an
// RPC span is the caller's traceparent and nothing else: a span already in
// the call's context (an outer interceptor's, say) is no parent, also when
// the caller sends a malformed traceparent.
func TestRPCSpanParentComesFromTraceparentOnly(t *testing.T) {
	t.Parallel()
	const callerTrace, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	outer := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	for _, call := range []struct {
		name, traceparent string
		wantParent        string // span id, "" for a new root
	}{
		{"the caller's traceparent", "00-" + callerTrace + "-" + callerSpan + "-01", callerSpan},
		{"a malformed traceparent", "00-" + callerTrace + "-not-a-span-01", ""},
		{"no traceparent", "", ""},
	} {
		t.Run(call.name, func(t *testing.T) {
			t.Parallel()
			spans := tracetest.NewSpanRecorder()
			tracer := grpcTracer{tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)).Tracer("test")}
			md := metadata.MD{}
			if call.traceparent != "" {
				md.Set(traceparentKey, call.traceparent)
			}
			ctx := metadata.NewIncomingContext(trace.ContextWithSpanContext(context.Background(), outer), md)
			_, err := tracer.unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/svc/Method"},
				func(context.Context, any) (any, error) { return nil, nil })
			if err != nil {
				t.Fatal(err)
			}
			ended := spans.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d spans, want the RPC span", len(ended))
			}
			parent := ended[0].Parent()
			switch {
			case call.wantParent == "" && parent.IsValid():
				t.Errorf("RPC span parent = %v, want none (a new root)", parent)
			case call.wantParent != "" && (parent.SpanID().String() != call.wantParent || !parent.IsRemote()):
				t.Errorf("RPC span parent = %v, want the caller's remote span %s", parent, call.wantParent)
			}
		})
	}
}
