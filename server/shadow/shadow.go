// Package shadow decides a sample of live requests again against a
// candidate bundle (the shadow bundle) and records where it would have
// answered differently. It is the engine's shadow step: the live answer is
// made and returned without waiting for it, and nothing it does can change
// that answer.
package shadow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/decisionlog"
	"github.com/intentpdp/intentpdp/server/engine"
)

// DefaultQueueSize bounds the requests waiting to be decided again.
const DefaultQueueSize = 1024

// logTimeout bounds how long a worker waits for the decision log to take
// a shadow record (block mode) before counting it as not logged.
const logTimeout = time.Second

// Comparer is an engine.Shadow. Offer queues a sampled request without
// blocking, or drops and counts it when the queue is full; Run's workers
// decide queued requests against the shadow source's current snapshot and
// count, and log, the differences. Comparer is safe for concurrent use.
type Comparer struct {
	source  engine.SnapshotSource
	sample  float64
	workers int
	queue   chan job
	log     *slog.Logger
	records engine.DecisionLogger // nil: differences are counted only
	reg     prometheus.Registerer

	compared, differing, dropped, failed, unlogged atomic.Uint64
	allowToDeny, denyToAllow                       atomic.Uint64
	// pairs counts compared decisions by active and shadow outcome.
	pairs *prometheus.CounterVec
	pair  [2][2]prometheus.Counter // [active allow][shadow allow]
	// pending counts offered jobs not finished; idle is signalled under mu
	// when it reaches zero, for Wait.
	pending atomic.Int64
	mu      sync.Mutex
	idle    *sync.Cond
}

type job struct {
	frontEnd engine.FrontEnd
	req      policystore.Request
	res      engine.Result
}

// Option configures a Comparer.
type Option func(*Comparer)

// WithSample sets the share of live decisions compared, in [0, 1]
// (default 1: every one).
func WithSample(share float64) Option { return func(c *Comparer) { c.sample = share } }

// WithQueueSize bounds the queue (default DefaultQueueSize).
func WithQueueSize(n int) Option { return func(c *Comparer) { c.queue = make(chan job, max(n, 1)) } }

// WithWorkers sets how many goroutines decide queued requests (default 1).
func WithWorkers(n int) Option { return func(c *Comparer) { c.workers = max(n, 1) } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Comparer) { c.log = l } }

// WithDecisionLog writes a shadow record (decisionlog.Record.Shadow) for
// every differing decision. So that shadow records never take room live
// decisions need, one is written only while the log's queue, when it
// reports one (QueueDepth, QueueCapacity), is less than half full; the
// others are counted as unlogged.
func WithDecisionLog(l engine.DecisionLogger) Option { return func(c *Comparer) { c.records = l } }

// WithRegisterer registers the comparer's metrics with reg (default:
// none): intentpdp_shadow_decisions_total{active,shadow}, and counters of
// dropped, failed and unlogged comparisons.
func WithRegisterer(reg prometheus.Registerer) Option { return func(c *Comparer) { c.reg = reg } }

// New returns a Comparer deciding against source's current snapshot (a
// policystore.Store holding the shadow bundle, empty while there is none).
func New(source engine.SnapshotSource, opts ...Option) (*Comparer, error) {
	c := &Comparer{source: source, sample: 1, workers: 1, queue: make(chan job, DefaultQueueSize), log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(c)
	}
	if c.sample < 0 || c.sample > 1 {
		return nil, fmt.Errorf("shadow sample must be between 0 and 1, not %v", c.sample)
	}
	c.idle = sync.NewCond(&c.mu)
	c.pairs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "intentpdp", Subsystem: "shadow", Name: "decisions_total",
		Help: "Live decisions decided again against the shadow bundle, by the active and the shadow outcome (allow, deny).",
	}, []string{"active", "shadow"})
	for a, active := range [2]policystore.Outcome{policystore.Deny, policystore.Allow} {
		for s, shadow := range [2]policystore.Outcome{policystore.Deny, policystore.Allow} {
			c.pair[a][s] = c.pairs.WithLabelValues(active.Lower(), shadow.Lower())
		}
	}
	if c.reg != nil {
		counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "intentpdp", Subsystem: "shadow", Name: name, Help: help},
				func() float64 { return float64(v.Load()) })
		}
		for _, col := range []prometheus.Collector{
			c.pairs,
			counter("dropped_total", "Sampled decisions not compared because the shadow queue was full.", &c.dropped),
			counter("failed_total", "Comparisons whose shadow decision failed (the request cannot be evaluated against the shadow bundle).", &c.failed),
			counter("unlogged_total", "Differing decisions whose shadow record the decision log could not take.", &c.unlogged),
		} {
			if err := c.reg.Register(col); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Offer queues req for comparison when it is sampled and a shadow bundle
// is loaded; it never blocks.
func (c *Comparer) Offer(frontEnd engine.FrontEnd, req policystore.Request, res engine.Result) {
	if c.sample < 1 && rand.Float64() >= c.sample {
		return
	}
	if _, err := c.source.Current(); err != nil {
		return // no shadow bundle: nothing to compare against
	}
	c.pending.Add(1)
	select {
	case c.queue <- job{frontEnd: frontEnd, req: req, res: res}:
	default:
		c.dropped.Add(1)
		c.done()
	}
}

// Run decides queued requests with the configured number of workers until
// ctx ends.
func (c *Comparer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-c.queue:
					c.compare(ctx, j)
					c.done()
				}
			}
		})
	}
	wg.Wait()
}

func (c *Comparer) done() {
	if c.pending.Add(-1) == 0 {
		c.mu.Lock()
		c.idle.Broadcast()
		c.mu.Unlock()
	}
}

// Wait returns once every request offered so far has been compared or
// dropped (Run must be running); for tests and benchmarks.
func (c *Comparer) Wait() {
	c.mu.Lock()
	for c.pending.Load() > 0 {
		c.idle.Wait()
	}
	c.mu.Unlock()
}

// compare decides j's request against the shadow snapshot. The request is
// the one the live decision used (context.now included), so the shadow
// decision differs only by the bundle.
func (c *Comparer) compare(ctx context.Context, j job) {
	snap, err := c.source.Current()
	if err != nil {
		return // cleared since it was offered
	}
	d, err := snap.Decide(ctx, j.req)
	if err != nil {
		c.failed.Add(1)
		return
	}
	active := j.res.Decision
	c.compared.Add(1)
	c.pair[b2i(active.Allow)][b2i(d.Allow)].Inc()
	if active.Allow == d.Allow {
		return
	}
	c.differing.Add(1)
	if active.Allow {
		c.allowToDeny.Add(1)
	} else {
		c.denyToAllow.Add(1)
	}
	if c.records == nil {
		return
	}
	if q, ok := c.records.(queue); ok && 2*q.QueueDepth() >= q.QueueCapacity() {
		c.unlogged.Add(1)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, logTimeout)
	defer cancel()
	err = c.records.Log(lctx, decisionlog.Record{
		DecisionID: j.res.ID, Time: j.req.Now, FrontEnd: string(j.frontEnd),
		Request: j.req, Decision: active, Shadow: &d,
	})
	if err != nil {
		c.unlogged.Add(1)
		if !errors.Is(err, decisionlog.ErrNotAccepted) {
			c.log.Debug("shadow record not logged", "decision_id", j.res.ID, "err", err)
		}
	}
}

// queue is what the decision log reports of its queue.
type queue interface {
	QueueDepth() int
	QueueCapacity() int
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Stats are a Comparer's counters since it started.
type Stats struct {
	// Sample is the share of live decisions offered for comparison.
	Sample float64
	// Compared decisions were decided against the shadow bundle;
	// Differing of them got the other outcome there, AllowToDeny (allowed
	// live, denied in shadow) plus DenyToAllow.
	Compared, Differing, AllowToDeny, DenyToAllow uint64
	// Dropped were sampled but not compared: the queue was full.
	Dropped uint64
	// Failed could not be evaluated against the shadow bundle.
	Failed uint64
	// Unlogged differed but their shadow record was not logged.
	Unlogged uint64
	// QueueDepth and QueueCapacity describe the queue now.
	QueueDepth, QueueCapacity int
}

// Stats returns the counters.
func (c *Comparer) Stats() Stats {
	return Stats{
		Sample: c.sample, Compared: c.compared.Load(), Differing: c.differing.Load(),
		AllowToDeny: c.allowToDeny.Load(), DenyToAllow: c.denyToAllow.Load(),
		Dropped: c.dropped.Load(), Failed: c.failed.Load(), Unlogged: c.unlogged.Load(),
		QueueDepth: len(c.queue), QueueCapacity: cap(c.queue),
	}
}
