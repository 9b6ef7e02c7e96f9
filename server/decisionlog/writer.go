package decisionlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrQueueFull means the record was not queued because the queue was
	// full in Deny mode; the caller must deny the decision.
	ErrQueueFull = errors.New("decision log queue is full")
	// ErrClosed means the writer was closed; the record was not queued.
	ErrClosed = errors.New("decision log is closed")
)

// Mode is what Log does when the queue is full.
type Mode int

const (
	// Block waits for room: backpressure on the decision path, nothing lost.
	Block Mode = iota
	// Drop discards the record, counts it and warns periodically.
	Drop
	// Deny discards the record and returns ErrQueueFull so that the caller
	// denies the decision it could not log.
	Deny
)

// ParseMode parses "block", "drop" or "deny".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "block":
		return Block, nil
	case "drop":
		return Drop, nil
	case "deny":
		return Deny, nil
	}
	return 0, fmt.Errorf("decision log mode must be block, drop or deny, not %q", s)
}

func (m Mode) String() string {
	return [...]string{"block", "drop", "deny"}[m]
}

// Writer queues records and encodes them as JSON lines on its own
// goroutine, off the decision path. It is safe for concurrent use.
type Writer struct {
	mode       Mode
	redact     *redactor
	log        *slog.Logger
	warnEvery  time.Duration
	flushEvery time.Duration

	sink io.Writer
	// batch holds whole lines not yet written: the sink only ever sees
	// complete lines, so a rotating file never splits one.
	batch   []byte
	pending uint64 // records in batch

	mu     sync.RWMutex // Log holds it shared while queuing; Close exclusively
	closed bool
	queue  chan Record
	wake   chan struct{} // run drains the queue when signalled, or on a tick
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when run has written everything

	written, dropped, denied, failed atomic.Uint64
}

// Option configures a Writer.
type Option func(*Writer) error

// WithQueueSize bounds the queue (default 4096).
func WithQueueSize(n int) Option {
	return func(w *Writer) error {
		if n < 1 {
			return fmt.Errorf("decision log queue size must be positive, not %d", n)
		}
		w.queue = make(chan Record, n)
		return nil
	}
}

// WithMode sets what happens when the queue is full (default Block).
func WithMode(m Mode) Option { return func(w *Writer) error { w.mode = m; return nil } }

// WithRedact replaces the named context fields (dotted paths into the
// context as policies see it, e.g. "ticket.body" or
// "intent.attributes.prompt") with Redacted.
func WithRedact(paths []string) Option {
	return func(w *Writer) error {
		r, err := newRedactor(paths)
		w.redact = r
		return err
	}
}

// WithLogger sets the logger for drop warnings and write failures.
func WithLogger(l *slog.Logger) Option { return func(w *Writer) error { w.log = l; return nil } }

// WithFlushInterval sets how long a record may wait in the queue before it
// is written to the sink when the queue is less than half full (default
// 100ms). Close writes them all.
func WithFlushInterval(d time.Duration) Option {
	return func(w *Writer) error {
		if d <= 0 {
			return fmt.Errorf("decision log flush interval must be positive, not %v", d)
		}
		w.flushEvery = d
		return nil
	}
}

// WithWarnInterval sets how often dropped records are reported (default 10s).
func WithWarnInterval(d time.Duration) Option {
	return func(w *Writer) error { w.warnEvery = d; return nil }
}

// New starts a Writer that writes to sink. Close it to flush.
func New(sink io.Writer, opts ...Option) (*Writer, error) {
	w := &Writer{
		redact:     &redactor{},
		log:        slog.New(slog.DiscardHandler),
		warnEvery:  10 * time.Second,
		flushEvery: 100 * time.Millisecond,
		sink:       sink,
		queue:      make(chan Record, 4096),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, opt := range opts {
		if err := opt(w); err != nil {
			return nil, err
		}
	}
	go w.run()
	go w.warnDrops()
	return w, nil
}

// Log queues r. It returns nil once r is queued (or, in Drop mode, counted
// as dropped); ErrQueueFull in Deny mode when there is no room; ErrClosed
// after Close; and ctx's error if ctx ends while Block mode waits.
func (w *Writer) Log(ctx context.Context, r Record) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select {
	case w.queue <- r:
		if len(w.queue) >= cap(w.queue)/2 {
			w.wakeUp()
		}
		return nil
	default:
	}
	w.wakeUp()
	switch w.mode {
	case Drop:
		w.dropped.Add(1)
		return nil
	case Deny:
		w.denied.Add(1)
		return ErrQueueFull
	}
	select {
	case w.queue <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wakeUp asks run to drain the queue now rather than at the next tick.
func (w *Writer) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Close stops accepting records, writes every queued one, flushes, and
// closes the sink if it is an io.Closer. It gives up when ctx ends, so a
// stuck sink cannot hold shutdown forever.
func (w *Writer) Close(ctx context.Context) error {
	// Log calls blocked on a full queue hold the lock until the writer makes
	// room, which a stuck sink may never do: wait for them only as long as
	// ctx allows.
	go w.stopAccepting()
	select {
	case <-w.done:
	case <-ctx.Done():
		return fmt.Errorf("flush decision log: %w (%d records queued)", ctx.Err(), len(w.queue))
	}
	if c, ok := w.sink.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (w *Writer) stopAccepting() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.queue)
		close(w.stop)
	}
}

// QueueDepth is the number of records waiting to be written.
func (w *Writer) QueueDepth() int { return len(w.queue) }

// QueueCapacity is the queue's bound.
func (w *Writer) QueueCapacity() int { return cap(w.queue) }

// Written counts records written to the sink.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped counts records discarded in Drop mode.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Denied counts records refused in Deny mode (their decisions were denied).
func (w *Writer) Denied() uint64 { return w.denied.Load() }

// Failed counts records lost to encoding or write errors.
func (w *Writer) Failed() uint64 { return w.failed.Load() }

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-w.wake:
		case <-w.stop:
		}
		open := w.drain()
		w.flush()
		if !open {
			return
		}
	}
}

// drain moves every queued record into the batch, writing full batches. It
// reports false once the queue is closed and empty.
//
// The writer drains on a tick, or when Log finds the queue half full,
// instead of receiving each record as it comes: waking a goroutine per
// decision costs more than encoding the decision, and writing in batches
// makes one write per batch, not per line.
func (w *Writer) drain() bool {
	for {
		select {
		case r, ok := <-w.queue:
			if !ok {
				return false
			}
			w.add(&r)
			if len(w.batch) >= batchBytes {
				w.flush()
			}
		default:
			return true
		}
	}
}

// batchBytes is the batch size that triggers a write under load.
const batchBytes = 64 << 10

// warnDrops reports drops periodically until the writer stops. It runs on
// its own goroutine because drops happen exactly when run is stuck on a
// slow sink.
func (w *Writer) warnDrops() {
	tick := time.NewTicker(w.warnEvery)
	defer tick.Stop()
	var warned uint64 // dropped count at the last warning
	for {
		select {
		case <-w.done:
			return
		case <-tick.C:
			if d := w.dropped.Load(); d > warned {
				w.log.Warn("decision log queue full: records dropped", "dropped", d-warned, "dropped_total", d)
				warned = d
			}
		}
	}
}

// add appends r's line to the batch. A record whose context cannot be
// encoded is logged without it, with the reason, rather than lost.
func (w *Writer) add(r *Record) {
	b, err := appendLine(w.batch, r, w.redact, "")
	if err != nil {
		b, err = appendLine(w.batch, r, w.redact, err.Error())
	}
	if err != nil {
		w.failed.Add(1)
		w.log.Error("decision log: encode record", "decision_id", r.DecisionID, "err", err)
		return
	}
	w.batch = b
	w.pending++
}

func (w *Writer) flush() {
	if w.pending == 0 {
		return
	}
	if _, err := w.sink.Write(w.batch); err != nil {
		w.failed.Add(w.pending)
		w.log.Error("decision log: write failed", "records", w.pending, "err", err)
	} else {
		w.written.Add(w.pending)
	}
	w.batch, w.pending = w.batch[:0], 0
}
