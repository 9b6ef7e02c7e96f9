package grpcapi_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/internal/testutil/cedarcorpus"
	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// TestCedarCorpus runs Cedar's conformance corpus through intentpdp's own
// request path: each test becomes a bundle activated in a Store, and each
// request is encoded as a wire AuthorizeRequest, decoded, decided and
// encoded by the Service exactly as a gRPC call is.
func TestCedarCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("corpus run skipped in -short mode")
	}
	tests, err := cedarcorpus.Load()
	if err != nil {
		t.Fatal(err)
	}
	var requests, matched atomic.Int64
	t.Cleanup(func() {
		t.Logf("Cedar corpus: %d tests, %d of %d requests matched", len(tests), matched.Load(), requests.Load())
	})
	for _, ct := range tests {
		t.Run(ct.Name, func(t *testing.T) {
			t.Parallel()
			svc := corpusService(t, ct)
			for _, r := range ct.Requests {
				requests.Add(1)
				if checkCorpusRequest(t, svc, r) {
					matched.Add(1)
				}
			}
		})
	}
}

func corpusService(t *testing.T, ct cedarcorpus.Test) *grpcapi.Service {
	t.Helper()
	policies, err := ct.AnnotatedPolicies()
	if err != nil {
		t.Fatalf("annotate policies: %v", err)
	}
	manifest := `{"revision": "corpus"}`
	if !ct.ShouldValidate {
		// The reference implementation rejects these policies under the
		// schema; the schema still guides entity parsing.
		manifest = `{"revision": "corpus", "validation": "off"}`
	}
	store := policystore.NewStore()
	_, err = store.Activate(context.Background(), &policystore.Bundle{Files: map[string][]byte{
		"policies.cedar":         policies,
		"entities.json":          ct.Entities,
		"schema.cedarschema":     ct.Schema,
		policystore.ManifestFile: []byte(manifest),
	}})
	if err != nil {
		t.Fatalf("activate corpus bundle: %v", err)
	}
	return newService(store)
}

func checkCorpusRequest(t *testing.T, svc *grpcapi.Service, r cedarcorpus.Request) bool {
	t.Helper()
	req := &pdpv1.AuthorizeRequest{
		Principal: ref(r.Principal),
		Resource:  ref(r.Resource),
		Intent:    &pdpv1.Intent{Action: proto.String(string(r.Action.ID)), ActionType: string(r.Action.Type)},
		Context:   &pdpv1.Record{Fields: cedarvalue.ToWireRecord(r.Context.Map())},
	}
	resp, err := svc.Authorize(context.Background(), req)
	if err != nil {
		t.Errorf("%s: Authorize: %v", r.Description, err)
		return false
	}
	want := pdpv1.Decision_DECISION_DENY
	if r.Allow {
		want = pdpv1.Decision_DECISION_ALLOW
	}
	var reasons, errs []string
	for _, x := range resp.GetReasons() {
		reasons = append(reasons, x.GetPolicyId())
	}
	for _, x := range resp.GetErrors() {
		errs = append(errs, x.GetPolicyId())
	}
	ok := resp.GetDecision() == want && slices.Equal(reasons, r.Reasons) && slices.Equal(errs, r.Errors)
	if !ok {
		t.Errorf("%s: got %v reasons %v errors %v; want %v reasons %v errors %v",
			r.Description, resp.GetDecision(), reasons, errs, want, r.Reasons, r.Errors)
	}
	return ok
}

func ref(uid types.EntityUID) *pdpv1.EntityRef {
	return &pdpv1.EntityRef{Type: string(uid.Type), Id: string(uid.ID)}
}
