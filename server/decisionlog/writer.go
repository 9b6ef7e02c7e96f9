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
	// ErrNotAccepted means the writer refused the record, because its queue
	// was full or its sink is failing, in Deny mode: the caller must deny
	// the decision. ErrQueueFull and ErrSinkFailing both wrap it.
	ErrNotAccepted = errors.New("decision log did not accept the record")
	// ErrQueueFull is ErrNotAccepted because the queue was full.
	ErrQueueFull = fmt.Errorf("%w: the queue is full", ErrNotAccepted)
	// ErrSinkFailing is ErrNotAccepted because the sink is failing.
	ErrSinkFailing = fmt.Errorf("%w: its sink is failing", ErrNotAccepted)
	// ErrNotLogged means ctx ended before the record was accepted (Block
	// mode, queue full or sink failing) or, with WithSync, before it was
	// durably written. It wraps ctx's error. The caller must not answer
	// with the decision. A record already queued is still written.
	ErrNotLogged = errors.New("decision not logged")
	// ErrClosed means the writer was closed; the record was not queued.
	ErrClosed = errors.New("decision log is closed")
)

// Mode is what Log does when the writer cannot take a record now: its
// queue is full, or its sink is failing (a write or sync returned an error
// and the retry has not succeeded yet).
type Mode int

const (
	// Block waits until the record can be queued: backpressure on the
	// decision path, bounded by the caller's context (ErrNotLogged).
	// Nothing acknowledged is lost: while the sink fails, decisions wait.
	Block Mode = iota
	// Drop discards the record, counts it and warns periodically; the
	// decision is answered unlogged.
	Drop
	// Deny discards the record and returns ErrNotAccepted (ErrQueueFull or
	// ErrSinkFailing) so that the caller denies the decision it could not
	// log.
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

// Syncer is a sink that can make what it was given durable. A Sync that
// fails must discard everything written since the last successful Sync
// (the writer writes it again), as the file sink of OpenSink does.
type Syncer interface {
	io.Writer
	Sync() error
}

// Writer queues records and encodes them as JSON lines on its own
// goroutine, off the decision path. It is safe for concurrent use.
//
// The sink only ever receives whole batches of whole lines. When a write
// fails the writer keeps the batch, marks the sink unhealthy and retries it
// with backoff, continuing after the bytes the sink reported written, so a
// record queued before the failure is neither lost nor duplicated. While
// the sink is unhealthy Log applies the mode as for a full queue.
type Writer struct {
	mode       Mode
	redact     *redactor
	log        *slog.Logger
	warnEvery  time.Duration
	flushEvery time.Duration
	syncer     Syncer // non-nil with WithSync
	wantSync   bool

	sink io.Writer
	// batch holds whole lines not yet written: the sink only ever sees
	// complete lines, so a rotating file never splits one. off is how much
	// of it the sink has taken across failed attempts.
	batch   []byte
	off     int
	pending uint64       // records in batch
	acks    []chan error // WithSync waiters of the records in batch

	mu      sync.RWMutex // Log holds it shared while queuing; Close exclusively
	closed  bool
	queue   chan entry
	wake    chan struct{} // run drains the queue when signalled, or on a tick
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when run has written everything
	warned  chan struct{} // closed when warn has reported everything
	abandon chan struct{} // closed when Close gives up: stop waiting and retrying
	giveUp  sync.Once

	health    sync.Mutex
	healthy   atomic.Bool
	recovered chan struct{} // non-nil while unhealthy; closed on recovery
	hooks     []func(healthy bool)
	errs      errLimiter

	written, dropped, denied, failed, writeErrors atomic.Uint64
}

// entry is a queued record and, with WithSync, where its writer reports
// that it is durable.
type entry struct {
	rec Record
	ack chan error
}

// Option configures a Writer.
type Option func(*Writer) error

// WithQueueSize bounds the queue (default 4096).
func WithQueueSize(n int) Option {
	return func(w *Writer) error {
		if n < 1 {
			return fmt.Errorf("decision log queue size must be positive, not %d", n)
		}
		w.queue = make(chan entry, n)
		return nil
	}
}

// WithMode sets what happens when the queue is full or the sink is failing
// (default Block).
func WithMode(m Mode) Option { return func(w *Writer) error { w.mode = m; return nil } }

// WithSync makes the log durable: Log returns only once the batch holding
// its record has been written and synced (group commit: one Sync per
// batch, however many callers wait on it). The sink must be a Syncer.
func WithSync(on bool) Option { return func(w *Writer) error { w.wantSync = on; return nil } }

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

// WithRedactEntities replaces every attribute and tag value of request
// entities with Redacted; their uids and parents are still logged. Apply
// it after WithRedact.
func WithRedactEntities(on bool) Option {
	return func(w *Writer) error { w.redact.entities = on; return nil }
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

// WithWarnInterval sets how often dropped records and write failures are
// reported (default 10s): at most one failure line per interval, with the
// number of failures it stands for.
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
		queue:      make(chan entry, 4096),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		warned:     make(chan struct{}),
		abandon:    make(chan struct{}),
	}
	for _, opt := range opts {
		if err := opt(w); err != nil {
			return nil, err
		}
	}
	if w.wantSync {
		s, ok := sink.(Syncer)
		if !ok {
			return nil, errors.New("decision log sync needs a file, not this sink")
		}
		w.syncer = s
	}
	w.healthy.Store(true)
	go w.run()
	go w.warn()
	return w, nil
}

// Log hands r to the writer. It returns nil once r is queued (with
// WithSync, once r is written and synced) or, in Drop mode, counted as
// dropped. When the queue is full or the sink is failing, Deny mode returns
// ErrQueueFull or ErrSinkFailing (both ErrNotAccepted) and Block mode waits,
// returning ErrNotLogged (wrapping ctx's error) if ctx ends first. It
// returns ErrClosed after Close.
func (w *Writer) Log(ctx context.Context, r Record) error {
	e := entry{rec: r}
	if w.syncer != nil {
		e.ack = make(chan error, 1)
	}
	queued, err := w.enqueue(ctx, e)
	if err != nil || !queued || e.ack == nil {
		return err
	}
	select {
	case err := <-e.ack:
		return err
	default:
	}
	ctx, cancel := replyInTime(ctx)
	defer cancel()
	select {
	case err := <-e.ack:
		return err
	case <-ctx.Done():
		return notLogged("not yet synced", ctx.Err())
	case <-w.abandon:
		return ErrClosed
	}
}

// replyMargin bounds the time a waiting Log leaves its caller, before the
// caller's deadline, to send its answer: the caller then hears why (the
// decision was not logged) rather than only that its deadline passed.
const replyMargin = 100 * time.Millisecond

// replyInTime returns ctx with its deadline moved earlier by a tenth of
// what is left, at most replyMargin.
func replyInTime(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	margin := min(time.Until(dl)/10, replyMargin)
	return context.WithDeadlineCause(ctx, dl.Add(-margin), context.DeadlineExceeded)
}

// refuse applies Drop or Deny mode to a record the writer cannot take
// now, for the reason why: Drop counts it and drops it, Deny counts it and
// returns why. In Block mode it refuses nothing: the caller waits instead.
func (w *Writer) refuse(why error) (refused bool, err error) {
	switch w.mode {
	case Drop:
		w.dropped.Add(1)
		return true, nil
	case Deny:
		w.denied.Add(1)
		return true, why
	}
	return false, nil
}

// enqueue queues e, applying the mode when it cannot; queued is false when
// Drop mode dropped it.
func (w *Writer) enqueue(ctx context.Context, e entry) (queued bool, err error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false, ErrClosed
	}
	if !w.healthy.Load() {
		if refused, err := w.refuse(ErrSinkFailing); refused {
			return false, err
		}
		if err := w.awaitHealthy(ctx); err != nil {
			return false, err
		}
	}
	select {
	case w.queue <- e:
		if e.ack != nil || len(w.queue) >= cap(w.queue)/2 {
			w.wakeUp()
		}
		return true, nil
	default:
	}
	w.wakeUp()
	if refused, err := w.refuse(ErrQueueFull); refused {
		return false, err
	}
	ctx, cancel := replyInTime(ctx)
	defer cancel()
	select {
	case w.queue <- e:
		return true, nil
	case <-ctx.Done():
		return false, notLogged("the queue is full", ctx.Err())
	case <-w.abandon:
		return false, ErrClosed
	}
}

// awaitHealthy waits until the sink recovers, for Block mode.
func (w *Writer) awaitHealthy(ctx context.Context) error {
	w.health.Lock()
	recovered := w.recovered
	w.health.Unlock()
	if recovered == nil {
		return nil
	}
	ctx, cancel := replyInTime(ctx)
	defer cancel()
	select {
	case <-recovered:
		return nil
	case <-ctx.Done():
		return notLogged("the sink is failing", ctx.Err())
	case <-w.abandon:
		return ErrClosed
	}
}

func notLogged(why string, err error) error {
	return fmt.Errorf("%w (%s): %w", ErrNotLogged, why, err)
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
// stuck or failing sink cannot hold shutdown forever: the writer then
// stops retrying and counts what it could not write as failed.
func (w *Writer) Close(ctx context.Context) error {
	// Log calls blocked on a full queue hold the lock until the writer makes
	// room, which a stuck sink may never do: wait for them only as long as
	// ctx allows.
	go w.stopAccepting()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.giveUp.Do(func() { close(w.abandon) })
		return fmt.Errorf("flush decision log: %w (%d records queued)", ctx.Err(), len(w.queue))
	}
	<-w.warned
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

// Failed counts records lost to encoding errors, or left unwritten when
// Close gave up on a failing sink.
func (w *Writer) Failed() uint64 { return w.failed.Load() }

// WriteErrors counts failed writes (or syncs) of a batch to the sink; each
// is retried with backoff, so it counts attempts, not lost records.
func (w *Writer) WriteErrors() uint64 { return w.writeErrors.Load() }

// Mode is what Log does when it cannot queue a record.
func (w *Writer) Mode() Mode { return w.mode }

// SinkHealthy reports whether the last write to the sink succeeded.
func (w *Writer) SinkHealthy() bool { return w.healthy.Load() }

// OnSinkHealth calls f with the sink's health now and on every change, in
// order. f runs on the writer's goroutine and must not call the Writer.
func (w *Writer) OnSinkHealth(f func(healthy bool)) {
	w.health.Lock()
	defer w.health.Unlock()
	w.hooks = append(w.hooks, f)
	f(w.healthy.Load())
}

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
		case e, ok := <-w.queue:
			if !ok {
				return false
			}
			w.add(&e)
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

// Retry backoff after a failed write: doubling from minBackoff to maxBackoff.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// warn reports drops and suppressed write failures periodically until the
// writer stops. It runs on its own goroutine because both happen exactly
// when run is stuck on a slow or failing sink.
func (w *Writer) warn() {
	defer close(w.warned)
	tick := time.NewTicker(w.warnEvery)
	defer tick.Stop()
	var warned uint64 // dropped count at the last warning
	for {
		select {
		case <-w.done:
			w.errs.report(w.log, w.healthy.Load(), time.Time{})
			return
		case now := <-tick.C:
			if d := w.dropped.Load(); d > warned {
				w.log.Warn("decision log: records dropped", "dropped", d-warned, "dropped_total", d)
				warned = d
			}
			w.errs.report(w.log, w.healthy.Load(), now)
		}
	}
}

// add appends e's line to the batch. A record whose context cannot be
// encoded is logged without it, with the reason, rather than lost.
func (w *Writer) add(e *entry) {
	r := &e.rec
	b, err := appendLine(w.batch, r, w.redact, "")
	if err != nil {
		b, err = appendLine(w.batch, r, w.redact, err.Error())
	}
	if err != nil {
		w.failed.Add(1)
		w.log.Error("decision log: encode record", "decision_id", r.DecisionID, "err", err)
		if e.ack != nil {
			e.ack <- fmt.Errorf("encode decision log record: %w", err)
		}
		return
	}
	w.batch = b
	w.pending++
	if e.ack != nil {
		w.acks = append(w.acks, e.ack)
	}
}

// flush writes the batch, retrying with backoff until the sink takes it or
// Close gives up.
func (w *Writer) flush() {
	if w.pending == 0 {
		return
	}
	backoff := minBackoff
	for {
		err := w.write()
		if err == nil {
			break
		}
		w.writeErrors.Add(1)
		w.setHealthy(false)
		w.errs.failed(w.log, err, w.pending, time.Now(), w.warnEvery)
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, maxBackoff)
			continue
		case <-w.abandon:
		}
		w.failed.Add(w.pending)
		w.finish(ErrClosed)
		return
	}
	w.written.Add(w.pending)
	w.finish(nil)
	w.setHealthy(true)
}

// write writes what the sink has not taken of the batch, then syncs it.
func (w *Writer) write() error {
	for w.off < len(w.batch) {
		n, err := w.sink.Write(w.batch[w.off:])
		w.off += n
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
	}
	if w.syncer == nil {
		return nil
	}
	if err := w.syncer.Sync(); err != nil {
		w.off = 0 // the sink discarded the batch: write it again
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// finish empties the batch and tells its waiters err.
func (w *Writer) finish(err error) {
	for _, ack := range w.acks {
		ack <- err
	}
	clear(w.acks)
	w.batch, w.off, w.pending, w.acks = w.batch[:0], 0, 0, w.acks[:0]
}

func (w *Writer) setHealthy(healthy bool) {
	if w.healthy.Load() == healthy {
		return
	}
	w.health.Lock()
	defer w.health.Unlock()
	w.healthy.Store(healthy)
	if healthy {
		close(w.recovered)
		w.recovered = nil
		w.errs.recovered()
	} else {
		w.recovered = make(chan struct{})
	}
	for _, f := range w.hooks {
		f(healthy)
	}
}

// errLimiter logs write failures at most once per interval; the failures in
// between are counted and reported with the next line.
type errLimiter struct {
	mu         sync.Mutex
	last       time.Time // when a failure was last logged
	suppressed uint64    // failures since then
	lastErr    error
	recoveries uint64 // recoveries since the last line
}

func (l *errLimiter) failed(log *slog.Logger, err error, records uint64, now time.Time, every time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		l.lastErr = err
		return
	}
	log.Error("decision log: write failed; retrying", "records", records, "err", err,
		"failures_suppressed", l.suppressed, "recoveries", l.recoveries)
	l.last, l.suppressed, l.lastErr, l.recoveries = now, 0, nil, 0
}

func (l *errLimiter) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recoveries++
}

// report logs the failures suppressed since the last line, if any, and the
// sink's state now. A zero now reports whatever is left.
func (l *errLimiter) report(log *slog.Logger, healthy bool, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suppressed == 0 && l.recoveries == 0 {
		return
	}
	if l.suppressed > 0 {
		log.Error("decision log: write failures", "failures", l.suppressed, "err", l.lastErr, "recoveries", l.recoveries, "sink_healthy", healthy)
	} else {
		log.Info("decision log: sink recovered", "recoveries", l.recoveries)
	}
	if !now.IsZero() {
		l.last = now
	}
	l.suppressed, l.lastErr, l.recoveries = 0, nil, 0
}
