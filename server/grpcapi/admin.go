package grpcapi

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// PolicyAdmin is what the admin service reports on and drives: in
// production a bundlesrc.Reloader.
type PolicyAdmin interface {
	Status() policystore.Status
	// Reload fetches and activates; changed is false when the source was
	// unchanged or the reload failed (then err says why).
	Reload(ctx context.Context) (changed bool, err error)
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
	return &pdpv1.GetStatusResponse{Status: EncodeStatus(a.admin.Status())}, nil
}

// Reload fetches and activates the configured source.
func (a *AdminService) Reload(ctx context.Context, _ *pdpv1.ReloadRequest) (*pdpv1.ReloadResponse, error) {
	changed, err := a.admin.Reload(ctx)
	resp := &pdpv1.ReloadResponse{Outcome: pdpv1.ReloadOutcome_RELOAD_OUTCOME_UNCHANGED}
	switch {
	case err != nil:
		resp.Outcome, resp.Error = pdpv1.ReloadOutcome_RELOAD_OUTCOME_FAILED, err.Error()
	case changed:
		resp.Outcome = pdpv1.ReloadOutcome_RELOAD_OUTCOME_ACTIVATED
	}
	resp.Status = EncodeStatus(a.admin.Status())
	return resp, nil
}

// EncodeStatus converts an activation status to its wire form.
func EncodeStatus(st policystore.Status) *pdpv1.PolicyStatus {
	out := &pdpv1.PolicyStatus{}
	if s := st.Active; s != nil {
		out.Active = &pdpv1.ActiveBundle{
			Revision:    s.Revision(),
			Sequence:    s.Sequence(),
			Source:      s.Source(),
			ActivatedAt: timestamppb.New(s.ActivatedAt()),
			PolicyCount: int64(s.PolicyCount()),
			EntityCount: int64(s.EntityCount()),
		}
	}
	if r := st.LastAttempt; r != nil {
		out.LastAttempt = &pdpv1.ActivationAttempt{
			Source:      r.Source,
			Revision:    r.Revision,
			Sequence:    r.Sequence,
			AttemptedAt: timestamppb.New(r.At),
			Duration:    durationpb.New(r.Duration),
			Success:     r.Err == nil,
		}
		if r.Err != nil {
			out.LastAttempt.Error = r.Err.Error()
		}
	}
	return out
}
