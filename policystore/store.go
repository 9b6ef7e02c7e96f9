package policystore

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoSnapshot means no bundle has been activated yet.
var ErrNoSnapshot = errors.New("no policy bundle is active")

// Store publishes the active Snapshot. Readers call Current, which never
// blocks; Activate compiles a bundle to the side and swaps it in atomically.
// Store is safe for concurrent use.
type Store struct {
	current atomic.Pointer[Snapshot]
	mu      sync.Mutex // serialises activations, never held by readers
	now     func() time.Time

	keys          []ed25519.PublicKey
	allowRollback bool
	observers     []func(ActivationResult)
	lastAttempt   atomic.Pointer[ActivationResult]
	// contents maps each manifest revision that went live to the content
	// hash it first named, so that a revision never names two contents.
	contents map[string]string
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithClock sets the clock that stamps activations.
func WithClock(now func() time.Time) StoreOption {
	return func(s *Store) { s.now = now }
}

// NewStore returns an empty Store; Current fails until the first Activate.
func NewStore(opts ...StoreOption) *Store {
	s := &Store{now: time.Now, contents: map[string]string{}}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Current returns the active snapshot, or ErrNoSnapshot.
func (s *Store) Current() (*Snapshot, error) {
	if snap := s.current.Load(); snap != nil {
		return snap, nil
	}
	return nil, ErrNoSnapshot
}

// Activate verifies, compiles and tests b and, only if all of that
// succeeds, makes it the active snapshot. On any error the previous snapshot
// keeps serving. Activations are serialised; readers never wait for them.
func (s *Store) Activate(ctx context.Context, b *Bundle) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := ActivationResult{Source: b.Source, At: s.now()}
	// A caller that gave up before the work started gets nothing; once a
	// bundle has passed every check, swapping it in costs nothing, so a
	// late cancellation does not throw that work away.
	err := ctx.Err()
	var snap *Snapshot
	if err == nil {
		snap, err = s.build(b, &res)
	}
	res.Duration = s.now().Sub(res.At)
	if err != nil {
		res.Err = fmt.Errorf("activate bundle: %w", err)
	} else {
		snap.activatedAt = s.now()
		s.current.Store(snap)
		if _, seen := s.contents[snap.baseRevision]; !seen {
			s.contents[snap.baseRevision] = snap.contentHash
		}
		res.Snapshot = snap
	}
	s.record(&res)
	return res.Snapshot, res.Err
}

// RecordFailure records an attempt that failed before reaching Activate
// (a bundle that could not be fetched), so that status and the activation
// observers see it like any refused bundle.
func (s *Store) RecordFailure(source string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(&ActivationResult{Source: source, At: s.now(), Err: err})
}

// record publishes an attempt to status and the observers; s.mu is held.
func (s *Store) record(res *ActivationResult) {
	s.lastAttempt.Store(res)
	for _, fn := range s.observers {
		fn(*res)
	}
}
