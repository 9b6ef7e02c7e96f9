package bundlesrc

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
)

// Activator is the part of policystore.Store the reloader drives.
type Activator interface {
	Activate(ctx context.Context, b *policystore.Bundle) (*policystore.Snapshot, error)
	RecordFailure(source string, err error)
	Status() policystore.Status
}

// Reloader fetches bundles from one source and activates them in a store.
// Triggers (a watcher, a poll loop, SIGHUP, the admin Reload RPC) all end
// in Reload. Reloader is safe for concurrent use; reloads are serialised.
type Reloader struct {
	store   Activator
	fetcher Fetcher
	log     *slog.Logger

	mu sync.Mutex // one fetch-and-activate at a time
}

// ReloaderOption configures a Reloader.
type ReloaderOption func(*Reloader)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) ReloaderOption { return func(r *Reloader) { r.log = l } }

// NewReloader returns a Reloader activating fetcher's bundles in store.
func NewReloader(store Activator, fetcher Fetcher, opts ...ReloaderOption) *Reloader {
	r := &Reloader{store: store, fetcher: fetcher, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(r)
	}
	return r
}

// Reload fetches the source and activates what it yields. changed is false
// when the source was unchanged (no error: the source said so, or its
// content is the active snapshot's) or when the fetch or activation failed
// (err says why; the active snapshot is untouched).
func (r *Reloader) Reload(ctx context.Context) (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := r.fetcher.Fetch(ctx)
	if errors.Is(err, ErrNotModified) {
		return false, nil
	}
	if err != nil {
		r.store.RecordFailure(r.fetcher.Source(), err)
		r.log.Error("policy bundle fetch failed; the active bundle keeps serving", "err", err)
		return false, err
	}
	if active := r.store.Status().Active; active != nil && active.ContentHash() == b.ContentHash() {
		return false, nil
	}
	snap, err := r.store.Activate(ctx, b)
	if err != nil {
		r.log.Error("policy bundle refused; the active bundle keeps serving", "source", b.Source, "err", err)
		return false, err
	}
	r.log.Info("policy bundle active", "revision", snap.Revision(), "sequence", snap.Sequence(),
		"source", snap.Source(), "policies", snap.PolicyCount(), "entities", snap.EntityCount())
	return true, nil
}

// Status is the store's status, fetch failures included.
func (r *Reloader) Status() policystore.Status { return r.store.Status() }

// Run reloads once per signal on trigger until ctx ends.
func (r *Reloader) Run(ctx context.Context, trigger <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
			_, _ = r.Reload(ctx) // logged and recorded by Reload
		}
	}
}

// PollConfig paces a poll loop.
type PollConfig struct {
	// Interval is the pause between polls while they succeed.
	Interval time.Duration
	// Jitter spreads polls of many PDPs: each pause is Interval scaled by a
	// random factor in [1-Jitter, 1+Jitter]. 0.1 is a good value.
	Jitter float64
	// MaxBackoff caps the pause after failures, which doubles from
	// Interval with each consecutive failure.
	MaxBackoff time.Duration
}

// Poll reloads every interval until ctx ends, backing off exponentially
// while fetches or activations fail.
func (r *Reloader) Poll(ctx context.Context, cfg PollConfig) {
	failures := 0
	for {
		timer := time.NewTimer(cfg.delay(failures, rand.Float64()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if _, err := r.Reload(ctx); err != nil {
			failures++
		} else {
			failures = 0
		}
	}
}

// delay is the pause before the next poll after failures consecutive
// failures; u is uniform in [0, 1).
func (c PollConfig) delay(failures int, u float64) time.Duration {
	d := c.Interval
	for range failures {
		if d >= c.MaxBackoff/2 {
			d = c.MaxBackoff
			break
		}
		d *= 2
	}
	d = max(d, c.Interval)
	return time.Duration(float64(d) * (1 + c.Jitter*(2*u-1)))
}
