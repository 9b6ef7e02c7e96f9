package grpcapi

import (
	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// EncodeDecision converts a decision into its wire form.
func EncodeDecision(d policystore.Decision, decisionID string) *pdpv1.AuthorizeResponse {
	resp := withReasons(d.Reasons)
	resp.Decision = pdpv1.Decision_DECISION_DENY
	if d.Allow {
		resp.Decision = pdpv1.Decision_DECISION_ALLOW
	}
	resp.PolicyRevision = d.Revision
	resp.DecisionId = decisionID
	if len(d.Errors) > 0 {
		resp.Errors = make([]*pdpv1.EvaluationError, len(d.Errors))
		for i, e := range d.Errors {
			resp.Errors[i] = &pdpv1.EvaluationError{PolicyId: e.PolicyID, Message: e.Message}
		}
	}
	if len(d.Ignored) > 0 {
		resp.IgnoredEntities = make([]*pdpv1.IgnoredEntityData, len(d.Ignored))
		for i, ig := range d.Ignored {
			resp.IgnoredEntities[i] = &pdpv1.IgnoredEntityData{Uid: entityRef(ig.UID), Detail: ig.Detail}
		}
	}
	return resp
}

// withReasons returns a response holding reasons. Most decisions have
// one: the response, its list and the reason are then one allocation.
func withReasons(reasons []policystore.Reason) *pdpv1.AuthorizeResponse {
	switch len(reasons) {
	case 0:
		return &pdpv1.AuthorizeResponse{}
	case 1:
		one := &oneReasonResponse{reason: pdpv1.Reason{PolicyId: reasons[0].PolicyID, Annotations: reasons[0].Annotations}}
		one.list[0] = &one.reason
		one.resp.Reasons = one.list[:]
		return &one.resp
	}
	resp := &pdpv1.AuthorizeResponse{Reasons: make([]*pdpv1.Reason, len(reasons))}
	for i, r := range reasons {
		resp.Reasons[i] = &pdpv1.Reason{PolicyId: r.PolicyID, Annotations: r.Annotations}
	}
	return resp
}

type oneReasonResponse struct {
	resp   pdpv1.AuthorizeResponse
	list   [1]*pdpv1.Reason
	reason pdpv1.Reason
}

func entityRef(uid types.EntityUID) *pdpv1.EntityRef {
	return &pdpv1.EntityRef{Type: string(uid.Type), Id: string(uid.ID)}
}
