package shadow

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

// ErrNoShadow means no shadow bundle is loaded.
var ErrNoShadow = errors.New("no shadow bundle is loaded")

// Activator is the part of the active policystore.Store that Promote
// drives.
type Activator interface {
	Activate(ctx context.Context, b *policystore.Bundle) (*policystore.Snapshot, error)
}

// Manager owns the shadow bundle: a store of its own, loaded from the
// shadow source by a bundlesrc.Reloader with the same checks as the active
// store (signature, anti-rollback, the bundle's tests), the Comparer that
// decides against it, and promotion. Manager is safe for concurrent use.
type Manager struct {
	active   Activator
	store    *policystore.Store
	comparer *Comparer
	reloader *bundlesrc.Reloader
	source   *pausable

	mu      sync.Mutex // serialises shadow activations, Promote and Clear
	bundle  *policystore.Bundle
	cleared bool
}

// NewManager returns the manager of the shadow bundle held in store (a
// store made like the active one: same verification keys and rollback
// rule), loaded from the fetchers open makes, compared by c, and promoted
// into active. open is called once now and again each time a cleared
// shadow is reloaded, so that a remote source fetches afresh.
func NewManager(active Activator, store *policystore.Store, c *Comparer, open func() (bundlesrc.Fetcher, error), log *slog.Logger) (*Manager, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	m := &Manager{active: active, store: store, comparer: c, source: &pausable{open: open}}
	m.source.inner.Store(&f)
	m.reloader = bundlesrc.NewReloader(recorder{m}, m.source, bundlesrc.WithLogger(log.With("bundle", "shadow")))
	return m, nil
}

// Reloader reloads the shadow source, for the triggers (watcher, poller)
// the composition root runs; while the shadow is cleared its fetches
// report the source unchanged.
func (m *Manager) Reloader() *bundlesrc.Reloader { return m.reloader }

// Comparer is the shadow step handed to the engine.
func (m *Manager) Comparer() *Comparer { return m.comparer }

// Reload loads the shadow source now, resuming it after Clear.
func (m *Manager) Reload(ctx context.Context) (bool, error) {
	m.mu.Lock()
	if m.cleared {
		if err := m.source.reopen(); err != nil {
			m.mu.Unlock()
			return false, err
		}
		m.cleared = false
	}
	m.source.paused.Store(false)
	m.mu.Unlock()
	return m.reloader.Reload(ctx)
}

// Promote activates the loaded shadow bundle in the active store, all or
// nothing; on success the shadow is cleared (comparing a bundle with
// itself tells nothing) and the promoted snapshot returned.
func (m *Manager) Promote(ctx context.Context) (*policystore.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bundle == nil {
		return nil, ErrNoShadow
	}
	snap, err := m.active.Activate(ctx, m.bundle)
	if err != nil {
		return nil, err
	}
	m.clearLocked()
	return snap, nil
}

// Clear unloads the shadow bundle, which stops comparisons, and pauses the
// shadow source until Reload.
func (m *Manager) Clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clearLocked()
}

func (m *Manager) clearLocked() {
	m.source.paused.Store(true)
	m.cleared = true
	m.bundle = nil
	m.store.Clear()
}

// Status is the shadow bundle's state.
type Status struct {
	Store   policystore.Status
	Cleared bool
	Stats   Stats
}

// Status returns the shadow bundle's state and the comparer's counters.
func (m *Manager) Status() Status {
	m.mu.Lock()
	cleared := m.cleared
	m.mu.Unlock()
	return Status{Store: m.store.Status(), Cleared: cleared, Stats: m.comparer.Stats()}
}

// recorder activates shadow bundles and keeps the one that went live, for
// Promote, which needs the bundle rather than its snapshot.
type recorder struct{ m *Manager }

func (r recorder) Activate(ctx context.Context, b *policystore.Bundle) (*policystore.Snapshot, error) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if r.m.cleared {
		// Cleared while this fetch was under way.
		return nil, errors.New("shadow cleared")
	}
	snap, err := r.m.store.Activate(ctx, b)
	if err == nil {
		r.m.bundle = b
	}
	return snap, err
}

func (r recorder) RecordFailure(source string, err error) { r.m.store.RecordFailure(source, err) }
func (r recorder) Status() policystore.Status             { return r.m.store.Status() }

// pausable is the shadow source: it reports itself unchanged while
// paused, and can be reopened.
type pausable struct {
	open   func() (bundlesrc.Fetcher, error)
	inner  atomic.Pointer[bundlesrc.Fetcher]
	paused atomic.Bool
}

func (p *pausable) Fetch(ctx context.Context) (*policystore.Bundle, error) {
	if p.paused.Load() {
		return nil, bundlesrc.ErrNotModified
	}
	return (*p.inner.Load()).Fetch(ctx)
}

func (p *pausable) Source() string { return (*p.inner.Load()).Source() }

func (p *pausable) reopen() error {
	f, err := p.open()
	if err != nil {
		return err
	}
	p.inner.Store(&f)
	return nil
}
