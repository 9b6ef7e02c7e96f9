package telemetry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/intentpdp/intentpdp/server/telemetry"
)

// TestSpanBatcherExportsEverySampledSpan ends spans from many goroutines,
// sampled and not, and checks that flushing exports each sampled span
// exactly once and nothing else.
func TestSpanBatcherExportsEverySampledSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	b := telemetry.NewSpanBatcher(exp)
	sampled := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithSampler(sdktrace.NeverSample()))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				_, s := sampled.Tracer("t").Start(context.Background(), fmt.Sprintf("s-%d-%d", g, i))
				s.End()
				_, u := unsampled.Tracer("t").Start(context.Background(), "unsampled")
				u.End()
			}
		})
	}
	wg.Wait()
	if err := b.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, s := range exp.GetSpans() {
		seen[s.Name]++
	}
	if len(seen) != 800 || seen["unsampled"] != 0 {
		t.Errorf("%d distinct spans exported (unsampled %d), want the 800 sampled ones", len(seen), seen["unsampled"])
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("span %s exported %d times", name, n)
		}
	}
	if b.Dropped() != 0 {
		t.Errorf("%d spans dropped", b.Dropped())
	}
}

// TestSpanBatcherBoundsItsQueue ends more spans than the queue holds
// while the exporter is stuck: the excess is dropped and counted, never
// waited for, and everything else is exported at shutdown. After
// shutdown spans are dropped too, and a second shutdown is a no-op.
func TestSpanBatcherBoundsItsQueue(t *testing.T) {
	exp := stuckExporter{tracetest.NewInMemoryExporter(), make(chan struct{})}
	b := telemetry.NewSpanBatcher(exp)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	const ended = 5000
	for range ended {
		_, s := tp.Tracer("t").Start(context.Background(), "s")
		s.End()
	}
	close(exp.release)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	exported, dropped := len(exp.GetSpans()), int(b.Dropped())
	if dropped == 0 || exported+dropped != ended {
		t.Errorf("exported %d, dropped %d, want them to add up to %d with some dropped", exported, dropped, ended)
	}
	_, late := sdktrace.NewTracerProvider().Tracer("t").Start(context.Background(), "late")
	late.End()
	b.OnEnd(late.(sdktrace.ReadOnlySpan))
	if got := int(b.Dropped()); got != dropped+1 {
		t.Errorf("a span ended after shutdown: dropped %d, want %d", got, dropped+1)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
}

// stuckExporter exports only once released.
type stuckExporter struct {
	*tracetest.InMemoryExporter
	release chan struct{}
}

func (e stuckExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	<-e.release
	return e.InMemoryExporter.ExportSpans(ctx, spans)
}

// Shutdown keeps the exported spans for the test to read.
func (stuckExporter) Shutdown(context.Context) error { return nil }
