package policystore

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go/types"
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
	runtimeTypes  []types.EntityType
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

// WithActivationObserver registers fn to be called after every activation
// attempt, in order, while activations are serialised: fn must be quick
// (count a metric, write a log line) and must not call Activate.
func WithActivationObserver(fn func(ActivationResult)) StoreOption {
	return func(s *Store) { s.observers = append(s.observers, fn) }
}

// WithVerificationKeys makes Activate refuse any bundle that is not signed
// by one of keys (see Seal); with no keys, signatures are not checked.
func WithVerificationKeys(keys ...ed25519.PublicKey) StoreOption {
	return func(s *Store) { s.keys = keys }
}

// WithAllowRollback lets Activate accept a bundle whose manifest sequence is
// lower than the active bundle's.
func WithAllowRollback(allow bool) StoreOption {
	return func(s *Store) { s.allowRollback = allow }
}

// WithRuntimeEntityTypes names entity types whose entities the PDP supplies
// at run time (task grants): Activate refuses a bundle that defines one, so
// that a grant is never shadowed by, or confused with, bundle data.
func WithRuntimeEntityTypes(ts ...types.EntityType) StoreOption {
	return func(s *Store) { s.runtimeTypes = append(s.runtimeTypes, ts...) }
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

// Status is the store's activation state, for the admin API.
type Status struct {
	// Active is the serving snapshot, nil before the first activation.
	Active *Snapshot
	// LastAttempt is the most recent activation attempt, nil if none.
	LastAttempt *ActivationResult
}

// Status returns the active snapshot and the last activation attempt.
func (s *Store) Status() Status {
	return Status{Active: s.current.Load(), LastAttempt: s.lastAttempt.Load()}
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

// Clear unpublishes the active snapshot: Current fails with ErrNoSnapshot
// until the next Activate, which is then checked against no active
// bundle (a shadow store clears; a serving store never should).
func (s *Store) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current.Store(nil)
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
