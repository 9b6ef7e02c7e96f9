package grpcapi_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/grpcapi"
	"github.com/intentpdp/intentpdp/server/shadow"
)

type fakeShadowAdmin struct {
	fakePolicyAdmin
	st         shadow.Status
	promoteErr error
	cleared    *bool
}

func (f fakeShadowAdmin) ShadowStatus() shadow.Status                { return f.st }
func (f fakeShadowAdmin) ReloadShadow(context.Context) (bool, error) { return true, nil }
func (f fakeShadowAdmin) Promote(context.Context) (*policystore.Snapshot, error) {
	return nil, f.promoteErr
}
func (f fakeShadowAdmin) ClearShadow() { *f.cleared = true }

func TestAdminShadow(t *testing.T) {
	t.Parallel()
	// Without a shadow source the shadow calls are refused and the status
	// has no shadow.
	plain := grpcapi.NewAdminService(fakePolicyAdmin{})
	for name, call := range map[string]func() error{
		"Promote":     func() error { _, err := plain.Promote(t.Context(), &pdpv1.PromoteRequest{}); return err },
		"ClearShadow": func() error { _, err := plain.ClearShadow(t.Context(), &pdpv1.ClearShadowRequest{}); return err },
		"Reload":      func() error { _, err := plain.Reload(t.Context(), &pdpv1.ReloadRequest{Shadow: true}); return err },
	} {
		if status.Code(call()) != codes.FailedPrecondition {
			t.Errorf("%s without a shadow: want FailedPrecondition", name)
		}
	}
	if resp, _ := plain.GetStatus(t.Context(), &pdpv1.GetStatusRequest{}); resp.GetStatus().GetShadow() != nil {
		t.Errorf("status without a shadow has one: %v", resp)
	}

	var cleared bool
	sh := fakeShadowAdmin{st: shadow.Status{Stats: shadow.Stats{Sample: 0.5, Compared: 10, Differing: 3, AllowToDeny: 2, DenyToAllow: 1, Dropped: 4}}, cleared: &cleared}
	a := grpcapi.NewAdminService(sh)
	resp, err := a.GetStatus(t.Context(), &pdpv1.GetStatusRequest{})
	if s := resp.GetStatus().GetShadow(); err != nil || s.GetSample() != 0.5 || s.GetCompared() != 10 || s.GetDiffering() != 3 ||
		s.GetAllowToDeny() != 2 || s.GetDenyToAllow() != 1 || s.GetDropped() != 4 {
		t.Fatalf("shadow status = %v, %v", s, err)
	}
	if r, err := a.Reload(t.Context(), &pdpv1.ReloadRequest{Shadow: true}); err != nil || r.GetOutcome() != pdpv1.ReloadOutcome_RELOAD_OUTCOME_ACTIVATED {
		t.Fatalf("Reload shadow = %v, %v", r, err)
	}
	if _, err := a.ClearShadow(t.Context(), &pdpv1.ClearShadowRequest{}); err != nil || !cleared {
		t.Fatalf("ClearShadow = %v, cleared %v", err, cleared)
	}
	if p, err := a.Promote(t.Context(), &pdpv1.PromoteRequest{}); err != nil || !p.GetPromoted() {
		t.Fatalf("Promote = %v, %v", p, err)
	}
	sh.promoteErr = shadow.ErrNoShadow
	if _, err := grpcapi.NewAdminService(sh).Promote(t.Context(), &pdpv1.PromoteRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Promote with nothing loaded = %v, want FailedPrecondition", err)
	}
	sh.promoteErr = errors.New("activate bundle: rollback")
	if p, err := grpcapi.NewAdminService(sh).Promote(t.Context(), &pdpv1.PromoteRequest{}); err != nil || p.GetPromoted() || p.GetError() == "" {
		t.Fatalf("refused Promote = %v, %v; want an outcome with the error", p, err)
	}
}
