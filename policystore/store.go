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
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithClock sets the clock that stamps activations.
func WithClock(now func() time.Time) StoreOption {
	return func(s *Store) { s.now = now }
}

// NewStore returns an empty Store; Current fails until the first Activate.
func NewStore(opts ...StoreOption) *Store {
	s := &Store{now: time.Now}
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
	snap, err := s.build(b, &res)
	if err == nil {
		err = ctx.Err()
	}
	res.Duration = s.now().Sub(res.At)
	if err != nil {
		res.Err = fmt.Errorf("activate bundle: %w", err)
	} else {
		snap.activatedAt = s.now()
		s.current.Store(snap)
		res.Snapshot = snap
	}
	s.lastAttempt.Store(&res)
	for _, fn := range s.observers {
		fn(res)
	}
	return res.Snapshot, res.Err
}
