package grpcapi_test

import (
	"testing"

	"github.com/intentpdp/intentpdp/internal/testutil/agentrequests"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

type exampleCase struct {
	request  *pdpv1.AuthorizeRequest
	decision pdpv1.Decision
	reasons  []string
}

// exampleCases are examples/agents/requests with the decisions expected of
// them, by name.
func exampleCases(t *testing.T) map[string]exampleCase {
	t.Helper()
	reqs, err := agentrequests.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) < 5 {
		t.Fatalf("only %d example requests", len(reqs))
	}
	cases := map[string]exampleCase{}
	for _, r := range reqs {
		cases[r.Name] = exampleCase{request: r.Request, decision: r.Decision, reasons: r.Reasons}
	}
	return cases
}

// exampleRequests are the example requests by name.
func exampleRequests(t *testing.T) map[string]*pdpv1.AuthorizeRequest {
	t.Helper()
	out := map[string]*pdpv1.AuthorizeRequest{}
	for name, c := range exampleCases(t) {
		out[name] = c.request
	}
	return out
}
