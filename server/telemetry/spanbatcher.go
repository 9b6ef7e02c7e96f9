package telemetry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Span batching defaults, those of the OpenTelemetry SDK's batch processor.
const (
	spanQueueSize   = 2048
	spanBatchSize   = 512
	spanFlushPeriod = 5 * time.Second
)

// SpanBatcher hands sampled spans to an exporter in batches. The SDK's
// batch processor sends every ended span over a channel to its goroutine,
// which costs a goroutine wake-up per span when the cores are not all
// busy; here ending a span appends it to a slice under a lock, and the
// exporting goroutine wakes once a batch is full or a period has passed.
// A span that finds the queue full is dropped and counted, never waited
// for. It is safe for concurrent use.
type SpanBatcher struct {
	exp sdktrace.SpanExporter

	mu      sync.Mutex
	pending []sdktrace.ReadOnlySpan
	closed  bool

	exportMu sync.Mutex // one export at a time, in order
	full     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	dropped  atomic.Uint64
	once     sync.Once
}

var _ sdktrace.SpanProcessor = (*SpanBatcher)(nil)

// NewSpanBatcher starts a batcher exporting to exp.
func NewSpanBatcher(exp sdktrace.SpanExporter) *SpanBatcher {
	b := &SpanBatcher{exp: exp, full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *SpanBatcher) run() {
	defer close(b.done)
	tick := time.NewTicker(spanFlushPeriod)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		case <-b.full:
		}
		_ = b.ForceFlush(context.Background()) // the exporter reports its own errors
	}
}

// OnStart does nothing: spans are handled when they end.
func (*SpanBatcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span.
func (b *SpanBatcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	b.mu.Lock()
	if b.closed || len(b.pending) >= spanQueueSize {
		b.mu.Unlock()
		b.dropped.Add(1)
		return
	}
	b.pending = append(b.pending, s)
	n := len(b.pending)
	b.mu.Unlock()
	if n == spanBatchSize {
		select {
		case b.full <- struct{}{}:
		default: // a wake-up is already due
		}
	}
}

// Dropped is the number of spans dropped because the queue was full or
// the batcher shut down.
func (b *SpanBatcher) Dropped() uint64 { return b.dropped.Load() }

// ForceFlush exports every queued span.
func (b *SpanBatcher) ForceFlush(ctx context.Context) error {
	b.exportMu.Lock()
	defer b.exportMu.Unlock()
	b.mu.Lock()
	spans := b.pending
	if len(spans) > 0 {
		// A new slice, since the exporter may keep what it was given; with
		// a batch's room, so filling it does not regrow it.
		b.pending = make([]sdktrace.ReadOnlySpan, 0, spanBatchSize)
	}
	b.mu.Unlock()
	var errs []error
	for len(spans) > 0 {
		n := min(len(spans), spanBatchSize)
		errs = append(errs, b.exp.ExportSpans(ctx, spans[:n]))
		spans = spans[n:]
	}
	return errors.Join(errs...)
}

// Shutdown stops the batcher, exports what is queued and shuts the
// exporter down. Spans ending afterwards are dropped; a second call does
// nothing.
func (b *SpanBatcher) Shutdown(ctx context.Context) error {
	var err error
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.stop)
		select {
		case <-b.done:
		case <-ctx.Done():
		}
		err = errors.Join(b.ForceFlush(ctx), b.exp.Shutdown(ctx))
	})
	return err
}
