package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

func TestExampleRequestsOverGRPC(t *testing.T) {
	t.Parallel()
	store := exampleStore(t)
	client := pdpv1.NewAuthorizationServiceClient(startServer(t, newService(store, exampleGrants(t, store)...)))
	for name, c := range exampleCases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp, err := client.Authorize(context.Background(), c.request)
			if err != nil {
				t.Fatal(err)
			}
			assertDecision(t, resp, c.decision, c.reasons)
			if resp.GetPolicyRevision() != "agents-example-v1" || resp.GetDecisionId() == "" {
				t.Errorf("revision %q, decision id %q", resp.GetPolicyRevision(), resp.GetDecisionId())
			}
		})
	}
}

func TestBatchAuthorizeKeepsOrderAndOneRevision(t *testing.T) {
	t.Parallel()
	store := exampleStore(t)
	client := pdpv1.NewAuthorizationServiceClient(startServer(t, newService(store, exampleGrants(t, store)...)))
	cases := exampleCases(t)
	var names []string
	batch := &pdpv1.BatchAuthorizeRequest{}
	for name, c := range cases {
		names = append(names, name)
		batch.Requests = append(batch.Requests, c.request)
	}
	resp, err := client.BatchAuthorize(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResponses()) != len(names) {
		t.Fatalf("%d responses for %d requests", len(resp.GetResponses()), len(names))
	}
	ids := map[string]bool{}
	for i, name := range names {
		r := resp.GetResponses()[i]
		t.Run(name, func(t *testing.T) { assertDecision(t, r, cases[name].decision, cases[name].reasons) })
		if r.GetPolicyRevision() != resp.GetPolicyRevision() {
			t.Errorf("%s: revision %q, batch revision %q", name, r.GetPolicyRevision(), resp.GetPolicyRevision())
		}
		ids[r.GetDecisionId()] = true
	}
	if len(ids) != len(names) {
		t.Errorf("decision ids are not unique: %d distinct for %d decisions", len(ids), len(names))
	}
}

func TestReasonsCarryAnnotations(t *testing.T) {
	t.Parallel()
	resp, err := newService(exampleStore(t)).Authorize(context.Background(), readRequest())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetReasons()) != 1 || !strings.Contains(resp.GetReasons()[0].GetAnnotations()["reason"], "platform agents") {
		t.Fatalf("reasons = %v", resp.GetReasons())
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	limits := engine.Limits{MaxDepth: 4, MaxValues: 50, MaxEntities: 3, MaxBatch: 5, MaxMessageBytes: 64 << 10}
	client := pdpv1.NewAuthorizationServiceClient(startServer(t, grpcapi.New(engine.New(exampleStore(t)), grpcapi.WithLimits(limits))))
	withContext := func(fields map[string]*pdpv1.Value) *pdpv1.AuthorizeRequest {
		r := readRequest()
		r.Context = &pdpv1.Record{Fields: fields}
		return r
	}
	nested := str("leaf")
	for range 6 {
		nested = record(map[string]*pdpv1.Value{"n": nested})
	}
	wide := map[string]*pdpv1.Value{}
	for i := range 60 {
		wide[strings.Repeat("k", i+1)] = long(int64(i))
	}
	entity := func(id string) *pdpv1.Entity { return &pdpv1.Entity{Uid: &pdpv1.EntityRef{Type: "Doc", Id: id}} }

	cases := []struct {
		name   string
		req    *pdpv1.AuthorizeRequest
		code   codes.Code
		reason string
	}{
		{"malformed principal type", func() *pdpv1.AuthorizeRequest {
			r := readRequest()
			r.Principal.Type = "Agent::"
			return r
		}(), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"malformed entity in context", withContext(map[string]*pdpv1.Value{
			"owner": {Kind: &pdpv1.Value_EntityValue{EntityValue: &pdpv1.EntityRef{Type: "not a type", Id: "x"}}},
		}), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"empty principal", func() *pdpv1.AuthorizeRequest {
			r := readRequest()
			r.Principal = nil
			return r
		}(), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"missing action", func() *pdpv1.AuthorizeRequest {
			r := readRequest()
			r.Intent.Action = nil
			return r
		}(), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"unknown extension function", withContext(map[string]*pdpv1.Value{"t": ext("float", "1.5")}), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"bad extension argument", withContext(map[string]*pdpv1.Value{"t": ext("datetime", "yesterday")}), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"value without a kind", withContext(map[string]*pdpv1.Value{"v": {}}), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"reserved context key", withContext(map[string]*pdpv1.Value{"now": ext("datetime", "2020-01-01")}), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"deep nesting", withContext(map[string]*pdpv1.Value{"deep": nested}), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"too many context values", withContext(wide), codes.ResourceExhausted, engine.ReasonLimitExceeded},
		{"too many entities", func() *pdpv1.AuthorizeRequest {
			r := readRequest()
			r.Entities = []*pdpv1.Entity{entity("a"), entity("b"), entity("c"), entity("d")}
			return r
		}(), codes.ResourceExhausted, engine.ReasonLimitExceeded},
		{"duplicate entity", func() *pdpv1.AuthorizeRequest {
			r := readRequest()
			r.Entities = []*pdpv1.Entity{entity("a"), entity("a")}
			return r
		}(), codes.InvalidArgument, engine.ReasonInvalidRequest},
		{"oversize message", withContext(map[string]*pdpv1.Value{"blob": str(strings.Repeat("x", 128<<10))}), codes.ResourceExhausted, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := client.Authorize(context.Background(), c.req)
			assertStatus(t, err, c.code, c.reason)
			// The server is unharmed: a valid request still gets its decision.
			resp, err := client.Authorize(context.Background(), readRequest())
			if err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
				t.Fatalf("after bad input: %v, %v", resp.GetDecision(), err)
			}
		})
	}
	t.Run("oversize batch", func(t *testing.T) {
		t.Parallel()
		batch := &pdpv1.BatchAuthorizeRequest{}
		for range 6 {
			batch.Requests = append(batch.Requests, readRequest())
		}
		_, err := client.BatchAuthorize(context.Background(), batch)
		assertStatus(t, err, codes.InvalidArgument, engine.ReasonInvalidRequest)
		if !strings.Contains(status.Convert(err).Message(), "maximum of 5") {
			t.Errorf("message %q does not name the limit", status.Convert(err).Message())
		}
	})
	t.Run("bad item fails the batch with its index", func(t *testing.T) {
		t.Parallel()
		bad := readRequest()
		bad.Resource = nil
		_, err := client.BatchAuthorize(context.Background(), &pdpv1.BatchAuthorizeRequest{Requests: []*pdpv1.AuthorizeRequest{readRequest(), bad}})
		assertStatus(t, err, codes.InvalidArgument, engine.ReasonInvalidRequest)
		if !strings.Contains(status.Convert(err).Message(), "requests[1]") {
			t.Errorf("message %q does not name the item", status.Convert(err).Message())
		}
	})
}

func TestNoActiveBundleIsUnavailable(t *testing.T) {
	t.Parallel()
	client := pdpv1.NewAuthorizationServiceClient(startServer(t, newService(policystore.NewStore())))
	_, err := client.Authorize(context.Background(), readRequest())
	assertStatus(t, err, codes.Unavailable, engine.ReasonNoActiveBundle)
}

func TestRejectEntityOverrides(t *testing.T) {
	t.Parallel()
	escalate := readRequest()
	escalate.Principal = &pdpv1.EntityRef{Type: "Agent", Id: "intern-bot"}
	escalate.Entities = []*pdpv1.Entity{{
		Uid:     &pdpv1.EntityRef{Type: "Agent", Id: "intern-bot"},
		Parents: []*pdpv1.EntityRef{{Type: "Team", Id: "platform"}},
	}}

	ignoring := newService(exampleStore(t))
	resp, err := ignoring.Authorize(context.Background(), escalate)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDecision() != pdpv1.Decision_DECISION_DENY || len(resp.GetIgnoredEntities()) != 1 {
		t.Fatalf("ignore mode: %v, ignored %v", resp.GetDecision(), resp.GetIgnoredEntities())
	}

	rejecting := newService(exampleStore(t), engine.WithRejectEntityOverrides(true))
	_, err = rejecting.Authorize(context.Background(), escalate)
	assertStatus(t, err, codes.InvalidArgument, engine.ReasonEntityOverrides)
}

func assertStatus(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("code %v (%q), want %v", st.Code(), st.Message(), code)
	}
	if reason == "" {
		return
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetReason() != reason || info.GetDomain() != engine.ErrorDomain {
				t.Fatalf("ErrorInfo %v, want reason %s", info, reason)
			}
			return
		}
	}
	t.Fatalf("no ErrorInfo in %v", st.Proto())
}

func assertDecision(t *testing.T, resp *pdpv1.AuthorizeResponse, want pdpv1.Decision, reasons []string) {
	t.Helper()
	var got []string
	for _, r := range resp.GetReasons() {
		got = append(got, r.GetPolicyId())
	}
	if resp.GetDecision() != want || strings.Join(got, ",") != strings.Join(reasons, ",") {
		t.Errorf("decision %v reasons %v; want %v reasons %v", resp.GetDecision(), got, want, reasons)
	}
}
