package shadow_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/intentpdp/intentpdp/internal/testutil/candidate"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
	"github.com/intentpdp/intentpdp/server/shadow"
)

// fixedFetcher yields one bundle.
type fixedFetcher struct{ b *policystore.Bundle }

func (f fixedFetcher) Fetch(context.Context) (*policystore.Bundle, error) { return f.b, nil }
func (f fixedFetcher) Source() string                                     { return f.b.Source }

func manager(t *testing.T, active *policystore.Store, shadowBundle func() (*policystore.Bundle, error)) (*shadow.Manager, *int) {
	t.Helper()
	b, err := shadowBundle()
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	store := policystore.NewStore()
	c, err := shadow.New(store)
	if err != nil {
		t.Fatal(err)
	}
	m, err := shadow.NewManager(active, store, c, func() (bundlesrc.Fetcher, error) { opened++; return fixedFetcher{b}, nil }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return m, &opened
}

func TestPromoteActivatesTheShadowRevision(t *testing.T) {
	t.Parallel()
	active := store(t, candidate.Active)
	m, _ := manager(t, active, candidate.Flipped)
	if _, err := m.Promote(t.Context()); !errors.Is(err, shadow.ErrNoShadow) {
		t.Fatalf("Promote before the shadow loaded: %v, want ErrNoShadow", err)
	}
	if changed, err := m.Reload(t.Context()); err != nil || !changed {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	if st := m.Status(); st.Store.Active == nil || st.Store.Active.Revision() != "agents-candidate-flipped" || st.Cleared {
		t.Fatalf("shadow status = %+v", st)
	}
	snap, err := m.Promote(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := active.Current()
	if snap.Revision() != "agents-candidate-flipped" || cur != snap {
		t.Fatalf("active revision %s, promoted %s", cur.Revision(), snap.Revision())
	}
	if st := m.Status(); st.Store.Active != nil || !st.Cleared {
		t.Fatalf("shadow after Promote = %+v, want cleared", st)
	}
	// The shadow source stays paused until asked for again.
	if changed, err := m.Reloader().Reload(t.Context()); changed || err != nil {
		t.Fatalf("paused shadow reloaded: %v, %v", changed, err)
	}
}

func TestPromoteRefusedKeepsBoth(t *testing.T) {
	t.Parallel()
	older := func() (*policystore.Bundle, error) {
		b, err := candidate.Flipped()
		if err != nil {
			return nil, err
		}
		// A shadow store without keys loads it; the active store refuses a
		// rollback below its sequence.
		b.Files["manifest.json"] = []byte(`{"revision": "old", "sequence": 1}`)
		return b, nil
	}
	ks := policystore.NewStore()
	b, _ := candidate.Active()
	b.Files["manifest.json"] = []byte(`{"revision": "seq5", "sequence": 5}`)
	if _, err := ks.Activate(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	m, _ := manager(t, ks, older)
	if _, err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Promote(t.Context()); !errors.Is(err, policystore.ErrRollback) {
		t.Fatalf("Promote of an older bundle: %v, want ErrRollback", err)
	}
	cur, _ := ks.Current()
	if st := m.Status(); cur.Revision() != "seq5" || st.Store.Active == nil || st.Cleared {
		t.Fatalf("after a refused Promote: active %s, shadow %+v", cur.Revision(), st)
	}
}

func TestClearShadowStopsComparisonsUntilReload(t *testing.T) {
	t.Parallel()
	active := store(t, candidate.Active)
	m, opened := manager(t, active, candidate.Flipped)
	if _, err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	m.Clear()
	if st := m.Status(); st.Store.Active != nil || !st.Cleared {
		t.Fatalf("after Clear: %+v", st)
	}
	ex := examples(t)[0]
	m.Comparer().Offer("test", ex.req, resultOf(t, active, ex.req))
	if st := m.Comparer().Stats(); st.QueueDepth != 0 {
		t.Fatalf("a cleared shadow queued a comparison: %+v", st)
	}
	if changed, err := m.Reload(t.Context()); !changed || err != nil || *opened != 2 {
		t.Fatalf("Reload after Clear = %v, %v (opened %d times, want 2)", changed, err, *opened)
	}
	if st := m.Status(); st.Store.Active == nil || st.Cleared {
		t.Fatalf("after Reload: %+v", st)
	}
}
