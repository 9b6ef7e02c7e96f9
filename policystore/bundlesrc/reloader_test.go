package bundlesrc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

// fixedFetcher yields the same bundle every time, or an error.
type fixedFetcher struct {
	bundle *policystore.Bundle
	err    error
}

func (f fixedFetcher) Source() string { return "fixed" }
func (f fixedFetcher) Fetch(context.Context) (*policystore.Bundle, error) {
	return f.bundle, f.err
}

func TestReloadAfterCancellationAndUnchangedContent(t *testing.T) {
	t.Parallel()
	store := policystore.NewStore()
	r := bundlesrc.NewReloader(store, fixedFetcher{bundle: example(t, "v1")})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Reload(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled reload: err = %v", err)
	}
	if changed, err := r.Reload(context.Background()); !changed || err != nil {
		t.Fatalf("reload after a cancelled one: changed %v, err %v", changed, err)
	}
	if changed, err := r.Reload(context.Background()); changed || err != nil {
		t.Fatalf("same content again: changed %v, err %v", changed, err)
	}
}

func TestFetchFailureReachesObservers(t *testing.T) {
	t.Parallel()
	var seen []error
	store := policystore.NewStore(policystore.WithActivationObserver(func(res policystore.ActivationResult) {
		seen = append(seen, res.Err)
	}))
	down := errors.New("bundle server down")
	r := bundlesrc.NewReloader(store, fixedFetcher{err: down})
	if _, err := r.Reload(context.Background()); !errors.Is(err, down) {
		t.Fatalf("err = %v", err)
	}
	if len(seen) != 1 || !errors.Is(seen[0], down) {
		t.Fatalf("observers saw %v", seen)
	}
	if st := r.Status(); st.LastAttempt == nil || !errors.Is(st.LastAttempt.Err, down) {
		t.Fatalf("status %+v", st.LastAttempt)
	}
}
