package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
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

// FuzzContinueCallerTrace: whatever trace context a caller sends, the
// parent put on the call's context is the span context the W3C propagator
// reads from those headers alone (invalid for a malformed one), never a
// span the context held before.
func FuzzContinueCallerTrace(f *testing.F) {
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "vendor=abc")
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "")
	f.Add("00-0af7651916cd43dd8448eb211c80319c-not-a-span-01", "vendor=abc")
	f.Add("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "")
	f.Add("", "")
	outer := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	f.Fuzz(func(t *testing.T, traceparent, tracestate string) {
		headers := map[string]string{traceparentKey: traceparent, "tracestate": tracestate}
		ctx := metadata.NewIncomingContext(trace.ContextWithSpanContext(context.Background(), outer), metadata.New(headers))
		got := trace.SpanContextFromContext(continueCallerTrace(ctx))
		want := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(headers)))
		if !got.Equal(want) {
			t.Errorf("traceparent %q, tracestate %q: parent %v, want %v", traceparent, tracestate, got, want)
		}
	})
}
