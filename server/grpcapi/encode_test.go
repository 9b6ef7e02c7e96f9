package grpcapi_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// TestEncodeDecisionReasons checks the response for no, one and several
// reasons (one reason takes a path of its own), and that it survives the
// wire unchanged.
func TestEncodeDecisionReasons(t *testing.T) {
	t.Parallel()
	for n := range 4 {
		d := policystore.Decision{Allow: n%2 == 1, Revision: "rev"}
		want := &pdpv1.AuthorizeResponse{Decision: pdpv1.Decision_DECISION_DENY, PolicyRevision: "rev", DecisionId: "id"}
		if d.Allow {
			want.Decision = pdpv1.Decision_DECISION_ALLOW
		}
		for i := range n {
			id, ann := fmt.Sprintf("policy%d", i), map[string]string{"id": fmt.Sprint(i)}
			d.Reasons = append(d.Reasons, policystore.Reason{PolicyID: id, Annotations: ann})
			want.Reasons = append(want.Reasons, &pdpv1.Reason{PolicyId: id, Annotations: ann})
		}
		got := grpcapi.EncodeDecision(d, "id")
		if !proto.Equal(got, want) {
			t.Errorf("%d reasons: %v, want %v", n, got, want)
		}
		wire, err := proto.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		back := &pdpv1.AuthorizeResponse{}
		if err := proto.Unmarshal(wire, back); err != nil || !proto.Equal(back, want) {
			t.Errorf("%d reasons: after the wire %v (%v), want %v", n, back, err, want)
		}
	}
}
