package policystore

import (
	"context"
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

// Activate compiles b and, only if that fully succeeds, makes it the active
// snapshot. On any error the previous snapshot keeps serving.
func (s *Store) Activate(ctx context.Context, b *Bundle) (*Snapshot, error) {
	snap, err := Compile(b)
	if err != nil {
		return nil, fmt.Errorf("activate bundle: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("activate bundle: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snap.activatedAt = s.now()
	s.current.Store(snap)
	return snap, nil
}
