package grpcapi

import (
	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// EncodeDecision converts a decision into its wire form.
func EncodeDecision(d policystore.Decision, decisionID string) *pdpv1.AuthorizeResponse {
	resp := &pdpv1.AuthorizeResponse{
		Decision:       pdpv1.Decision_DECISION_DENY,
		PolicyRevision: d.Revision,
		DecisionId:     decisionID,
	}
	if d.Allow {
		resp.Decision = pdpv1.Decision_DECISION_ALLOW
	}
	if len(d.Reasons) > 0 {
		resp.Reasons = make([]*pdpv1.Reason, len(d.Reasons))
		for i, r := range d.Reasons {
			resp.Reasons[i] = &pdpv1.Reason{PolicyId: r.PolicyID, Annotations: r.Annotations}
		}
	}
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

func entityRef(uid types.EntityUID) *pdpv1.EntityRef {
	return &pdpv1.EntityRef{Type: string(uid.Type), Id: string(uid.ID)}
}
