package gateway

import (
	"net/http"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// TestMapRequestContext checks context.http field by field: what policies
// may read of the original request.
func TestMapRequestContext(t *testing.T) {
	t.Parallel()
	c, err := NewChecker(engine.New(policystore.NewStore()), Config{
		Principal:      PrincipalConfig{Header: "X-Agent"},
		Routes:         []RouteConfig{{Method: "GET", Path: "/repos/{repo}/issues", Action: "list_issues", Resource: ResourceConfig{Type: "Repository", ID: "{repo}"}}},
		ContextHeaders: []string{"x-request-source"},
	})
	if err != nil {
		t.Fatal(err)
	}
	req, err := c.mapRequest(Request{
		Method: "get", Path: "/repos/payments-api/issues?state=open", Host: "git.example",
		Header: http.Header{
			"X-Agent":           {"planner"},
			"X-Request-Source":  {"ide", "cli"},
			"X-Not-Allowlisted": {"secret"},
			"X-Intent-Purpose":  {"triage"},
		},
		SourceAddress: "::ffff:10.1.2.3",
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if req.Principal != types.NewEntityUID("Agent", "planner") || req.Resource != types.NewEntityUID("Repository", "payments-api") ||
		req.Action != types.NewEntityUID("Action", "list_issues") || req.Intent.Purpose != "triage" {
		t.Fatalf("request %+v", req)
	}
	v := req.Context["http"]
	want := types.NewRecord(types.RecordMap{
		"method":    types.String("GET"),
		"path":      types.String("/repos/payments-api/issues"),
		"host":      types.String("git.example"),
		"params":    types.NewRecord(types.RecordMap{"repo": types.String("payments-api")}),
		"headers":   types.NewRecord(types.RecordMap{"x-request-source": types.String("ide,cli")}),
		"source_ip": mustIP(t, "10.1.2.3"),
	})
	if !want.Equal(v) {
		t.Fatalf("context.http = %v\nwant %v", v, want)
	}
}

func mustIP(t *testing.T, s string) types.IPAddr {
	t.Helper()
	ip, err := types.ParseIPAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return ip
}
