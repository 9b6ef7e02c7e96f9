package grants

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the store's options.
const (
	DefaultMaxTTL       = time.Hour
	DefaultMaxStaleness = 5 * time.Second
	// retainEnded is how long an ended grant stays known, so that the
	// decision log says "expired" or "revoked" rather than "unknown" for a
	// while, before the background sweep forgets it.
	retainEnded = 10 * time.Minute
	sweepEvery  = time.Minute
)

// Store holds every grant in memory and answers the engine's enrich and
// consume steps from there; with a shared backend (PostgreSQL) it is a
// replica of the database, kept current by notifications. Store is safe
// for concurrent use.
type Store struct {
	mu     sync.RWMutex
	grants map[string]*entry // by task id

	now          func() time.Time
	maxTTL       time.Duration
	maxStaleness time.Duration
	log          *slog.Logger
	metrics      *metrics
	shared       backend // nil: memory only
	// contact is the PDP clock's time (unix ns) of the last confirmed
	// contact with the shared backend after a full resync; 0 before the
	// first one.
	contact atomic.Int64
}

// entry is one grant and the entity policies see; immutable, replaced as
// a whole on any change.
type entry struct {
	g      Grant
	entity types.Entity
}

func newEntry(g Grant) *entry { return &entry{g: g, entity: g.Entity()} }

// backend is a shared, durable home for grants. Each method changes the
// database and returns the rows as they are now, which the store applies
// to its index at once (so a change is immediate on the replica that made
// it) and which other replicas learn through notifications.
type backend interface {
	create(ctx context.Context, g Grant, now time.Time) (Grant, error)
	revoke(ctx context.Context, taskID string, at time.Time) (Grant, error)
	revokePrincipal(ctx context.Context, p types.EntityUID, at time.Time) ([]Grant, error)
	// consume takes one use of the grant g.ID if it is still live at now,
	// returning the grant after the use, or errUsedUp.
	consume(ctx context.Context, g *Grant, now time.Time) (Grant, error)
	sweep(ctx context.Context, before time.Time) error
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the PDP's clock, which alone says whether a grant is live.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithMaxTTL bounds the lifetime of a new grant (default DefaultMaxTTL).
func WithMaxTTL(d time.Duration) Option { return func(s *Store) { s.maxTTL = d } }

// WithMaxStaleness sets how long a replica may be out of contact with the
// shared backend before it stops serving grants (default
// DefaultMaxStaleness).
func WithMaxStaleness(d time.Duration) Option { return func(s *Store) { s.maxStaleness = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithRegisterer registers the grant metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Store) { s.metrics = newMetrics(reg, s) }
}

// NewMemory returns a store whose grants live in this process only: they
// do not survive a restart and other replicas do not see them.
func NewMemory(opts ...Option) *Store {
	s := &Store{
		grants:       map[string]*entry{},
		now:          time.Now,
		maxTTL:       DefaultMaxTTL,
		maxStaleness: DefaultMaxStaleness,
		log:          slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.metrics == nil {
		s.metrics = newMetrics(nil, s)
	}
	return s
}

// MaxTTL is the longest lifetime a new grant may have.
func (s *Store) MaxTTL() time.Duration { return s.maxTTL }

// Spec is a grant to create.
type Spec struct {
	TaskID     string
	Assignee   types.EntityUID
	Actions    []types.EntityUID
	Scope      []types.EntityUID
	Purpose    string
	ApprovedBy types.EntityUID
	OnBehalfOf types.EntityUID
	// TTL is how long the grant lives from now; 0 means the maximum.
	TTL        time.Duration
	MaxUses    int64
	Attributes types.RecordMap
}

// Grant returns the grant spec would create at now, checked and with its
// window, but not stored: what the authorization of the Grant call sees.
func (s *Store) Grant(spec Spec) (Grant, error) {
	ttl := spec.TTL
	if ttl == 0 {
		ttl = s.maxTTL
	}
	if ttl < 0 || ttl > s.maxTTL {
		return Grant{}, fmt.Errorf("%w: ttl %s is outside (0, %s] (--max-grant-ttl)", ErrInvalid, ttl, s.maxTTL)
	}
	now := s.now()
	attrs := spec.Attributes
	if attrs == nil {
		attrs = types.RecordMap{}
	}
	g := Grant{
		TaskID: spec.TaskID, ID: uuid.Must(uuid.NewV7()).String(),
		Assignee: spec.Assignee, Actions: spec.Actions, Scope: spec.Scope,
		Purpose: spec.Purpose, ApprovedBy: spec.ApprovedBy, OnBehalfOf: spec.OnBehalfOf,
		NotBefore: now, ExpiresAt: now.Add(ttl), CreatedAt: now,
		MaxUses: spec.MaxUses, UsesLeft: spec.MaxUses, Attributes: attrs,
	}
	return g, g.validate()
}

// Create stores g (made by Grant). It fails with ErrExists when a grant
// that has not ended has the same task id.
func (s *Store) Create(ctx context.Context, g Grant) (Grant, error) {
	if err := g.validate(); err != nil {
		return Grant{}, err
	}
	now := s.now()
	if s.shared != nil {
		if s.stale(now) {
			return Grant{}, fmt.Errorf("%w: out of contact for more than %s", ErrUnavailable, s.maxStaleness)
		}
		stored, err := s.shared.create(ctx, g, now)
		if err != nil {
			return Grant{}, err
		}
		s.apply(stored)
		s.metrics.created.Inc()
		return stored, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.grants[g.TaskID]; ok && !old.g.ended(now) {
		return Grant{}, fmt.Errorf("%w: %s", ErrExists, g.TaskID)
	}
	s.grants[g.TaskID] = newEntry(g)
	s.metrics.created.Inc()
	return g, nil
}

// Revoke ends the grant of taskID now. It is immediate on this replica.
func (s *Store) Revoke(ctx context.Context, taskID string) (Grant, error) {
	now := s.now()
	if s.shared != nil {
		g, err := s.shared.revoke(ctx, taskID, now)
		if err != nil {
			return Grant{}, err
		}
		s.apply(g)
		s.metrics.revoked.Inc()
		return g, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.grants[taskID]
	if !ok {
		return Grant{}, fmt.Errorf("%w: %s", ErrNotFound, taskID)
	}
	if e.g.RevokedAt.IsZero() {
		g := e.g
		g.RevokedAt = now
		s.grants[taskID] = newEntry(g)
		s.metrics.revoked.Inc()
		return g, nil
	}
	return e.g, nil
}

// RevokePrincipal revokes every grant not yet ended that p is the
// assignee, the approver or the beneficiary of: the kill switch for an
// agent or an approver. It returns the grants it revoked.
func (s *Store) RevokePrincipal(ctx context.Context, p types.EntityUID) ([]Grant, error) {
	now := s.now()
	if s.shared != nil {
		gs, err := s.shared.revokePrincipal(ctx, p, now)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			s.apply(g)
		}
		s.metrics.revoked.Add(float64(len(gs)))
		return gs, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Grant
	for id, e := range s.grants {
		if e.g.involves(p) && !e.g.ended(now) {
			g := e.g
			g.RevokedAt = now
			s.grants[id] = newEntry(g)
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b Grant) int { return cmp.Compare(a.TaskID, b.TaskID) })
	s.metrics.revoked.Add(float64(len(out)))
	return out, nil
}

// Get returns the grant of taskID and its state now.
func (s *Store) Get(taskID string) (Grant, State, error) {
	now := s.now()
	s.mu.RLock()
	e, ok := s.grants[taskID]
	s.mu.RUnlock()
	if !ok {
		return Grant{}, Unknown, fmt.Errorf("%w: %s", ErrNotFound, taskID)
	}
	return e.g, e.g.StateAt(now), nil
}

// List returns up to limit grants in task id order after the task id
// `after`, those involving principal when it is set, and the task id to
// continue from ("" at the end).
func (s *Store) List(principal types.EntityUID, after string, limit int) ([]Grant, string) {
	s.mu.RLock()
	ids := slices.Sorted(maps.Keys(s.grants))
	var out []Grant
	next := ""
	for _, id := range ids {
		if id <= after && after != "" {
			continue
		}
		g := s.grants[id].g
		if principal.Type != "" && !g.involves(principal) {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1].TaskID
			break
		}
		out = append(out, g)
	}
	s.mu.RUnlock()
	return out, next
}

// lookup is the hot path: one map read under a read lock.
func (s *Store) lookup(taskID string, now time.Time) (*entry, State) {
	if s.shared != nil && s.stale(now) {
		return nil, Stale
	}
	s.mu.RLock()
	e, ok := s.grants[taskID]
	s.mu.RUnlock()
	if !ok {
		return nil, Unknown
	}
	return e, e.g.StateAt(now)
}

// stale says whether the shared backend has been out of contact for longer
// than the staleness bound (or never synced).
func (s *Store) stale(now time.Time) bool {
	c := s.contact.Load()
	return c == 0 || now.Sub(time.Unix(0, c)) > s.maxStaleness
}

// apply puts a grant as the shared backend has it into the index. For the
// same grant it keeps the most advanced state seen (grants only ever lose
// uses and get revoked), so that a notification read before a later write
// cannot undo it.
func (s *Store) apply(g Grant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.grants[g.TaskID]; ok && old.g.ID == g.ID {
		g.UsesLeft = min(g.UsesLeft, old.g.UsesLeft)
		if g.RevokedAt.IsZero() {
			g.RevokedAt = old.g.RevokedAt
		}
		if g.UsesLeft == old.g.UsesLeft && g.RevokedAt.Equal(old.g.RevokedAt) {
			return
		}
	}
	s.grants[g.TaskID] = newEntry(g)
}

// forget drops a grant the shared backend deleted.
func (s *Store) forget(taskID, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.grants[taskID]; ok && (id == "" || e.g.ID == id) {
		delete(s.grants, taskID)
	}
}

// replace swaps the whole index for a full resync's result.
func (s *Store) replace(all []Grant) {
	m := make(map[string]*entry, len(all))
	for _, g := range all {
		m[g.TaskID] = newEntry(g)
	}
	s.mu.Lock()
	s.grants = m
	s.mu.Unlock()
}

// Sweep forgets grants that ended more than a retention period ago (and,
// with a shared backend, deletes them there).
func (s *Store) Sweep(ctx context.Context) {
	now := s.now()
	before := now.Add(-retainEnded)
	if s.shared != nil {
		if err := s.shared.sweep(ctx, before); err != nil {
			s.log.Warn("grant sweep failed", "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.grants {
		end := e.g.ExpiresAt
		if !e.g.RevokedAt.IsZero() {
			end = e.g.RevokedAt
		}
		if end.Before(before) {
			delete(s.grants, id)
			if e.g.RevokedAt.IsZero() {
				s.metrics.expired.Inc()
			}
		}
	}
}

// RunSweeper sweeps every minute until ctx ends.
func (s *Store) RunSweeper(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep(ctx)
		}
	}
}

// liveCount counts live grants (for the live gauge, at scrape time).
func (s *Store) liveCount() int {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, e := range s.grants {
		if e.g.StateAt(now) == Live {
			n++
		}
	}
	return n
}

// lag is how long ago the shared backend was last in contact (0 for the
// memory store).
func (s *Store) lag() time.Duration {
	if s.shared == nil {
		return 0
	}
	c := s.contact.Load()
	if c == 0 {
		return 0
	}
	return s.now().Sub(time.Unix(0, c))
}
