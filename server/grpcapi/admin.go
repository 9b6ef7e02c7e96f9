package grpcapi

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/shadow"
)

// PolicyAdmin is what the admin service reports on and drives: in
// production a bundlesrc.Reloader.
type PolicyAdmin interface {
	Status() policystore.Status
	// Reload fetches and activates; changed is false when the source was
	// unchanged or the reload failed (then err says why).
	Reload(ctx context.Context) (changed bool, err error)
}

// ShadowAdmin is the shadow bundle's part of the admin API. A PolicyAdmin
// that also implements it serves the shadow in GetStatus, Reload with
// shadow set, Promote and ClearShadow; without it those fail with
// FailedPrecondition and GetStatus reports no shadow.
type ShadowAdmin interface {
	ShadowStatus() shadow.Status
	// ReloadShadow loads the shadow source now (resuming it after
	// ClearShadow), as Reload does the active one.
	ReloadShadow(ctx context.Context) (changed bool, err error)
	// Promote activates the shadow bundle in the active store; it fails
	// with shadow.ErrNoShadow when none is loaded.
	Promote(ctx context.Context) (*policystore.Snapshot, error)
	ClearShadow()
}

// AdminService implements pdpv1.PolicyAdminServiceServer. It is safe for
// concurrent use.
type AdminService struct {
	pdpv1.UnimplementedPolicyAdminServiceServer

	admin PolicyAdmin
}

// NewAdminService returns the admin service for admin.
func NewAdminService(admin PolicyAdmin) *AdminService {
	return &AdminService{admin: admin}
}

// NewAdminServer returns a gRPC server carrying only the admin service,
// with panic recovery, for the admin listener; extra options (connection
// limits) are added.
func NewAdminServer(admin PolicyAdmin, log *slog.Logger, extra ...grpc.ServerOption) *grpc.Server {
	gs := grpc.NewServer(append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(recoverUnary(log))}, extra...)...)
	pdpv1.RegisterPolicyAdminServiceServer(gs, NewAdminService(admin))
	return gs
}

// GetStatus reports the active bundle and the last attempt.
func (a *AdminService) GetStatus(context.Context, *pdpv1.GetStatusRequest) (*pdpv1.GetStatusResponse, error) {
	return &pdpv1.GetStatusResponse{Status: a.status()}, nil
}

// status is the activation status, the shadow's included.
func (a *AdminService) status() *pdpv1.PolicyStatus {
	out := EncodeStatus(a.admin.Status())
	if sh, ok := a.admin.(ShadowAdmin); ok {
		out.Shadow = EncodeShadowStatus(sh.ShadowStatus())
	}
	return out
}

var errNoShadowSource = status.Error(codes.FailedPrecondition, "no shadow bundle source is configured (--shadow-bundle, --shadow-bundle-url)")

// Promote activates the shadow bundle as the active one.
func (a *AdminService) Promote(ctx context.Context, _ *pdpv1.PromoteRequest) (*pdpv1.PromoteResponse, error) {
	sh, ok := a.admin.(ShadowAdmin)
	if !ok {
		return nil, errNoShadowSource
	}
	_, err := sh.Promote(ctx)
	if errors.Is(err, shadow.ErrNoShadow) {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	resp := &pdpv1.PromoteResponse{Promoted: err == nil}
	if err != nil {
		resp.Error = err.Error()
	}
	resp.Status = a.status()
	return resp, nil
}

// ClearShadow unloads the shadow bundle.
func (a *AdminService) ClearShadow(context.Context, *pdpv1.ClearShadowRequest) (*pdpv1.ClearShadowResponse, error) {
	sh, ok := a.admin.(ShadowAdmin)
	if !ok {
		return nil, errNoShadowSource
	}
	sh.ClearShadow()
	return &pdpv1.ClearShadowResponse{Status: a.status()}, nil
}

// Reload fetches and activates the configured source.
func (a *AdminService) Reload(ctx context.Context, req *pdpv1.ReloadRequest) (*pdpv1.ReloadResponse, error) {
	reload := a.admin.Reload
	if req.GetShadow() {
		sh, ok := a.admin.(ShadowAdmin)
		if !ok {
			return nil, errNoShadowSource
		}
		reload = sh.ReloadShadow
	}
	changed, err := reload(ctx)
	resp := &pdpv1.ReloadResponse{Outcome: pdpv1.ReloadOutcome_RELOAD_OUTCOME_UNCHANGED}
	switch {
	case err != nil:
		resp.Outcome, resp.Error = pdpv1.ReloadOutcome_RELOAD_OUTCOME_FAILED, err.Error()
	case changed:
		resp.Outcome = pdpv1.ReloadOutcome_RELOAD_OUTCOME_ACTIVATED
	}
	resp.Status = a.status()
	return resp, nil
}

// EncodeStatus converts an activation status to its wire form.
func EncodeStatus(st policystore.Status) *pdpv1.PolicyStatus {
	return &pdpv1.PolicyStatus{Active: encodeBundle(st.Active), LastAttempt: encodeAttempt(st.LastAttempt)}
}

// EncodeShadowStatus converts the shadow's status to its wire form.
func EncodeShadowStatus(st shadow.Status) *pdpv1.ShadowStatus {
	s := st.Stats
	return &pdpv1.ShadowStatus{
		Bundle: encodeBundle(st.Store.Active), LastAttempt: encodeAttempt(st.Store.LastAttempt), Cleared: st.Cleared,
		Sample: s.Sample, Compared: s.Compared, Differing: s.Differing, AllowToDeny: s.AllowToDeny, DenyToAllow: s.DenyToAllow,
		Dropped: s.Dropped, Failed: s.Failed, Unlogged: s.Unlogged,
	}
}

func encodeBundle(s *policystore.Snapshot) *pdpv1.ActiveBundle {
	if s == nil {
		return nil
	}
	return &pdpv1.ActiveBundle{
		Revision:    s.Revision(),
		Sequence:    s.Sequence(),
		Source:      s.Source(),
		ActivatedAt: timestamppb.New(s.ActivatedAt()),
		PolicyCount: int64(s.PolicyCount()),
		EntityCount: int64(s.EntityCount()),
	}
}

func encodeAttempt(r *policystore.ActivationResult) *pdpv1.ActivationAttempt {
	if r == nil {
		return nil
	}
	out := &pdpv1.ActivationAttempt{
		Source:      r.Source,
		Revision:    r.Revision,
		Sequence:    r.Sequence,
		AttemptedAt: timestamppb.New(r.At),
		Duration:    durationpb.New(r.Duration),
		Success:     r.Err == nil,
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return out
}
