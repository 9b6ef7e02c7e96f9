// Package grantapi is the gRPC front end of task grants
// (intentpdp.v1.GrantService), served on the admin listener. Creating a
// grant is itself a decision of the active bundle, made through the
// engine like any other, so it has its span, metrics and decision log
// record.
//
// Who asks for a grant: when the admin listener authenticates its callers
// with mutual TLS, the principal of a Grant decision is the verified
// caller, mapped to an entity (see Approvers), and the grant's approved_by
// must be that entity (or is filled with it). Without mutual TLS,
// approved_by is the principal as the request names it.
package grantapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grants"
)

// FrontEnd names the grant API in metrics, spans and the decision log.
const FrontEnd engine.FrontEnd = "grant"

// GrantAction is the action a Grant call is authorized for.
var GrantAction = types.NewEntityUID("Action", "grant")

// ErrorInfo reasons of refused Grant calls.
const (
	// ReasonGrantDenied: the bundle denied the grant.
	ReasonGrantDenied = "GRANT_DENIED"
	// ReasonApproverMismatch: the request's approved_by is not the
	// verified caller.
	ReasonApproverMismatch = "APPROVER_MISMATCH"
)

// DefaultApproverType is the entity type a verified caller approves grants
// as, unless configured otherwise.
const DefaultApproverType = "User"

// Approvers maps the verified caller of a Grant call (its SPIFFE ID) to the
// entity that approves the grant: Type::"<id>", where id is the SPIFFE ID
// with SPIFFEPrefix stripped (the whole SPIFFE ID without a prefix). A
// caller outside SPIFFEPrefix approves nothing.
type Approvers struct {
	Type         types.EntityType
	SPIFFEPrefix string
}

// Approver is the entity the caller with SPIFFE ID caller approves as.
func (a Approvers) Approver(caller string) (types.EntityUID, error) {
	id := caller
	if a.SPIFFEPrefix != "" {
		rest, ok := strings.CutPrefix(caller, a.SPIFFEPrefix)
		if !ok || rest == "" {
			return types.EntityUID{}, fmt.Errorf("%w: %s is outside %s and approves no grants", engine.ErrCallerNotAllowed, caller, a.SPIFFEPrefix)
		}
		id = rest
	}
	typ := a.Type
	if typ == "" {
		typ = DefaultApproverType
	}
	return types.NewEntityUID(typ, types.String(id)), nil
}

// Option configures a Service.
type Option func(*Service)

// WithApprovers sets how verified callers map to approvers (default: type
// User, the whole SPIFFE ID as id).
func WithApprovers(a Approvers) Option { return func(s *Service) { s.approvers = a } }

// Page sizes of ListGrants.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// Service implements pdpv1.GrantServiceServer. It is safe for concurrent
// use.
type Service struct {
	pdpv1.UnimplementedGrantServiceServer

	eng       *engine.Engine
	store     *grants.Store
	limits    engine.Limits
	log       *slog.Logger
	approvers Approvers
}

// New returns the grant API over store, authorizing Grant calls with eng.
// eng should have no principal-token step: the principal of a Grant
// decision is proven by the caller's X.509-SVID, not by a token.
func New(eng *engine.Engine, store *grants.Store, limits engine.Limits, log *slog.Logger, opts ...Option) *Service {
	s := &Service{eng: eng, store: store, limits: limits, log: log}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Grant authorizes and creates a grant. The principal of the
// authorization is the grant's approver: with a verified caller
// (engine.CredentialsFrom(ctx).Caller, set by the admin listener's guard
// under mutual TLS) the caller's entity (see Approvers), which approved_by
// must name when present (else PermissionDenied, APPROVER_MISMATCH) and
// which fills it when absent; without one, approved_by as given.
func (s *Service) Grant(ctx context.Context, in *pdpv1.GrantRequest) (*pdpv1.GrantResponse, error) {
	caller := engine.CredentialsFrom(ctx).Caller
	spec, err := s.decodeSpec(in, caller != "")
	if err != nil {
		return nil, s.status(err)
	}
	if caller != "" {
		if spec.ApprovedBy, err = s.approver(caller, spec.ApprovedBy); err != nil {
			s.log.Warn("grant refused", "caller", caller, "task_id", spec.TaskID, "err", err)
			return nil, s.status(err)
		}
	}
	g, err := s.store.Grant(spec)
	if err != nil {
		return nil, s.status(err)
	}
	req := authorization(g)
	if caller != "" {
		req.Identity = callerIdentity(ctx, caller)
	}
	res, err := s.eng.Evaluate(ctx, FrontEnd, req)
	if err != nil {
		return nil, s.status(err)
	}
	if !res.Decision.Allow {
		return nil, denied(g, res)
	}
	stored, err := s.store.Create(ctx, g)
	if err != nil {
		return nil, s.status(err)
	}
	s.log.Info("task grant created", "task_id", stored.TaskID, "grant_id", stored.ID,
		"assignee", stored.Assignee.String(), "approved_by", stored.ApprovedBy.String(),
		"expires_at", stored.ExpiresAt, "max_uses", stored.MaxUses, "decision_id", res.ID)
	return &pdpv1.GrantResponse{Grant: encodeGrant(stored, grants.Live)}, nil
}

// errApproverMismatch marks an approved_by that is not the verified caller.
var errApproverMismatch = errors.New("approver mismatch")

// approver binds the grant's approver to the verified caller: claimed (the
// request's approved_by, zero when absent) must be the caller's entity.
func (s *Service) approver(caller string, claimed types.EntityUID) (types.EntityUID, error) {
	a, err := s.approvers.Approver(caller)
	if err != nil {
		return a, err
	}
	if claimed != (types.EntityUID{}) && claimed != a {
		return a, fmt.Errorf("%w: approved_by is %s but the caller %s approves as %s", errApproverMismatch, claimed, caller, a)
	}
	return a, nil
}

// callerIdentity is context.identity of a Grant decision: what the
// caller's X.509-SVID proved (subject, spiffe_id and caller are its SPIFFE
// ID; expires_at is the SVID's; no issuer, audience or claims).
func callerIdentity(ctx context.Context, caller string) *policystore.Identity {
	id := &policystore.Identity{Subject: caller, SPIFFEID: caller, Caller: caller,
		Audience: types.NewSet(), Claims: types.NewRecord(types.RecordMap{})}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			id.ExpiresAt = info.State.PeerCertificates[0].NotAfter
		}
	}
	return id
}

// authorization is the request a Grant call is decided as: may approved_by
// grant this content on Task::"<task_id>"?
func authorization(g grants.Grant) policystore.Request {
	ctx := types.RecordMap{
		"assignee":    g.Assignee,
		"actions":     uidSet(g.Actions),
		"scope":       uidSet(g.Scope),
		"purpose":     types.String(g.Purpose),
		"ttl_seconds": types.Long(g.ExpiresAt.Sub(g.NotBefore) / time.Second),
		"max_uses":    types.Long(g.MaxUses),
		"attributes":  types.NewRecord(g.Attributes),
	}
	if g.OnBehalfOf != (types.EntityUID{}) {
		ctx["on_behalf_of"] = g.OnBehalfOf
	}
	return policystore.Request{
		Principal: g.ApprovedBy,
		Action:    GrantAction,
		Resource:  g.UID(),
		Intent:    policystore.Intent{Purpose: g.Purpose},
		Context:   ctx,
	}
}

func uidSet(uids []types.EntityUID) types.Set {
	vs := make([]types.Value, len(uids))
	for i, u := range uids {
		vs[i] = u
	}
	return types.NewSet(vs...)
}

func denied(g grants.Grant, res engine.Result) error {
	msg := fmt.Sprintf("the policy bundle does not allow %s to grant %s (decision %s", g.ApprovedBy, g.UID(), res.ID)
	if ids := res.Decision.PolicyIDs(); len(ids) > 0 {
		msg += "; forbidden by " + strings.Join(ids, ", ")
	}
	st := status.New(codes.PermissionDenied, msg+")")
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonGrantDenied, Domain: engine.ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// Revoke ends a grant now.
func (s *Service) Revoke(ctx context.Context, in *pdpv1.RevokeRequest) (*pdpv1.RevokeResponse, error) {
	g, err := s.store.Revoke(ctx, in.GetTaskId())
	if err != nil {
		return nil, s.status(err)
	}
	s.log.Info("task grant revoked", "task_id", g.TaskID, "grant_id", g.ID)
	return &pdpv1.RevokeResponse{Grant: encodeGrant(g, grants.Revoked)}, nil
}

// RevokePrincipal revokes every grant the principal is part of.
func (s *Service) RevokePrincipal(ctx context.Context, in *pdpv1.RevokePrincipalRequest) (*pdpv1.RevokePrincipalResponse, error) {
	p, err := requiredRef("principal", in.GetPrincipal())
	if err != nil {
		return nil, s.status(err)
	}
	gs, err := s.store.RevokePrincipal(ctx, p)
	if err != nil {
		return nil, s.status(err)
	}
	s.log.Info("task grants of a principal revoked", "principal", p.String(), "count", len(gs))
	out := &pdpv1.RevokePrincipalResponse{}
	for _, g := range gs {
		out.Grants = append(out.Grants, encodeGrant(g, grants.Revoked))
	}
	return out, nil
}

// GetGrant returns one grant.
func (s *Service) GetGrant(_ context.Context, in *pdpv1.GetGrantRequest) (*pdpv1.GetGrantResponse, error) {
	g, st, err := s.store.Get(in.GetTaskId())
	if err != nil {
		return nil, s.status(err)
	}
	return &pdpv1.GetGrantResponse{Grant: encodeGrant(g, st)}, nil
}

// ListGrants returns a page of grants.
func (s *Service) ListGrants(_ context.Context, in *pdpv1.ListGrantsRequest) (*pdpv1.ListGrantsResponse, error) {
	var p types.EntityUID
	if in.GetPrincipal() != nil {
		var err error
		if p, err = requiredRef("principal", in.GetPrincipal()); err != nil {
			return nil, s.status(err)
		}
	}
	size := int(in.GetPageSize())
	switch {
	case size < 0:
		return nil, s.status(fmt.Errorf("%w: page_size must not be negative", grants.ErrInvalid))
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	gs, next := s.store.List(p, in.GetPageToken(), size)
	out := &pdpv1.ListGrantsResponse{NextPageToken: next}
	for _, g := range gs {
		_, st, _ := s.store.Get(g.TaskID)
		out.Grants = append(out.Grants, encodeGrant(g, st))
	}
	return out, nil
}

// status maps an error of the grant API to its gRPC status; errors of the
// decision path (no active bundle, a malformed value) go through
// engine.Classify.
func (s *Service) status(err error) error {
	code, reason := codes.Unknown, ""
	switch {
	case errors.Is(err, errApproverMismatch):
		code, reason = codes.PermissionDenied, ReasonApproverMismatch
	case errors.Is(err, grants.ErrInvalid):
		code, reason = codes.InvalidArgument, engine.ReasonInvalidRequest
	case errors.Is(err, grants.ErrExists):
		code, reason = codes.AlreadyExists, "GRANT_EXISTS"
	case errors.Is(err, grants.ErrNotFound):
		code, reason = codes.NotFound, "GRANT_NOT_FOUND"
	case errors.Is(err, grants.ErrUnavailable):
		code, reason = codes.Unavailable, "GRANT_STORE_UNAVAILABLE"
	default:
		f := engine.Classify(err)
		if f.Internal() {
			s.log.Error("grant API", "err", err)
		}
		return f.Status().Err()
	}
	st := status.New(code, err.Error())
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: engine.ErrorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}

// decodeSpec decodes a GrantRequest; approved_by is optional when the
// caller is verified (the caller fills it).
func (s *Service) decodeSpec(in *pdpv1.GrantRequest, verifiedCaller bool) (grants.Spec, error) {
	spec := grants.Spec{TaskID: in.GetTaskId(), Purpose: in.GetPurpose(), MaxUses: in.GetMaxUses()}
	var err error
	if spec.Assignee, err = requiredRef("assignee", in.GetAssignee()); err != nil {
		return spec, err
	}
	if !verifiedCaller || in.GetApprovedBy() != nil {
		if spec.ApprovedBy, err = requiredRef("approved_by", in.GetApprovedBy()); err != nil {
			return spec, err
		}
	}
	if in.GetOnBehalfOf() != nil {
		if spec.OnBehalfOf, err = requiredRef("on_behalf_of", in.GetOnBehalfOf()); err != nil {
			return spec, err
		}
	}
	for i, a := range in.GetActions() {
		typ := a.GetType()
		if typ == "" {
			typ = "Action"
		}
		uid, err := cedarvalue.EntityUID(fmt.Sprintf("actions[%d]", i), typ, a.GetId())
		if err != nil {
			return spec, err
		}
		spec.Actions = append(spec.Actions, uid)
	}
	for i, r := range in.GetScope() {
		uid, err := requiredRef(fmt.Sprintf("scope[%d]", i), r)
		if err != nil {
			return spec, err
		}
		spec.Scope = append(spec.Scope, uid)
	}
	if in.GetTtl() != nil {
		if err := in.GetTtl().CheckValid(); err != nil {
			return spec, fmt.Errorf("%w: ttl: %v", grants.ErrInvalid, err)
		}
		spec.TTL = in.GetTtl().AsDuration()
		if spec.TTL <= 0 {
			return spec, fmt.Errorf("%w: ttl must be positive", grants.ErrInvalid)
		}
	}
	if len(in.GetAttributes()) > 0 {
		spec.Attributes, err = cedarvalue.New(s.limits).WireRecord("attributes", in.GetAttributes(), 1)
		if err != nil {
			return spec, err
		}
	}
	return spec, nil
}

func requiredRef(what string, ref *pdpv1.EntityRef) (types.EntityUID, error) {
	if ref == nil || ref.GetType() == "" {
		return types.EntityUID{}, fmt.Errorf("%w: %s is required", grants.ErrInvalid, what)
	}
	return cedarvalue.EntityUID(what, ref.GetType(), ref.GetId())
}

var wireStates = map[grants.State]pdpv1.GrantState{
	grants.Live: pdpv1.GrantState_GRANT_STATE_LIVE, grants.Expired: pdpv1.GrantState_GRANT_STATE_EXPIRED,
	grants.Revoked: pdpv1.GrantState_GRANT_STATE_REVOKED, grants.NotYetValid: pdpv1.GrantState_GRANT_STATE_NOT_YET_VALID,
	grants.Exhausted: pdpv1.GrantState_GRANT_STATE_EXHAUSTED,
}

func encodeGrant(g grants.Grant, st grants.State) *pdpv1.Grant {
	out := &pdpv1.Grant{
		TaskId: g.TaskID, GrantId: g.ID, Assignee: ref(g.Assignee), Purpose: g.Purpose,
		ApprovedBy: ref(g.ApprovedBy), NotBefore: timestamppb.New(g.NotBefore), ExpiresAt: timestamppb.New(g.ExpiresAt),
		MaxUses: g.MaxUses, UsesLeft: g.UsesLeft, CreatedAt: timestamppb.New(g.CreatedAt), State: wireStates[st],
		Attributes: cedarvalue.ToWireRecord(g.Attributes),
	}
	if g.OnBehalfOf != (types.EntityUID{}) {
		out.OnBehalfOf = ref(g.OnBehalfOf)
	}
	if !g.RevokedAt.IsZero() {
		out.RevokedAt = timestamppb.New(g.RevokedAt)
	}
	for _, a := range g.Actions {
		out.Actions = append(out.Actions, ref(a))
	}
	for _, r := range g.Scope {
		out.Scope = append(out.Scope, ref(r))
	}
	return out
}

func ref(uid types.EntityUID) *pdpv1.EntityRef {
	return &pdpv1.EntityRef{Type: string(uid.Type), Id: string(uid.ID)}
}
