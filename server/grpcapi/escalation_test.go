package grpcapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
)

func entityValue(typ, id string) *pdpv1.Value {
	return &pdpv1.Value{Kind: &pdpv1.Value_EntityValue{EntityValue: &pdpv1.EntityRef{Type: typ, Id: id}}}
}

// forgedTask is a task the example bundle does not define, assigned to
// assignee in the payments project and live until 2099.
func forgedTask(id, assignee string) *pdpv1.Entity {
	return &pdpv1.Entity{
		Uid: &pdpv1.EntityRef{Type: "Task", Id: id},
		Attrs: map[string]*pdpv1.Value{
			"assignee":   entityValue("Agent", assignee),
			"project":    entityValue("Project", "payments"),
			"expires_at": ext("datetime", "2099-01-01T00:00:00Z"),
		},
	}
}

// TestRequestEntitiesCannotMintAuthority sends entities of types the
// example bundle declares authoritative. Each would be allowed if the
// request's entities were used; each must be denied, the entity reported
// as ignored, and refused outright in reject mode.
func TestRequestEntitiesCannotMintAuthority(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		req     *pdpv1.AuthorizeRequest
		ignored string
	}{
		{"forged task lets an outsider write", &pdpv1.AuthorizeRequest{
			Principal: &pdpv1.EntityRef{Type: "Agent", Id: "intern-bot"},
			Intent:    &pdpv1.Intent{Action: proto.String("write_file"), Purpose: "onboarding", TaskId: "T-fake", Tool: "github.put_file"},
			Resource:  &pdpv1.EntityRef{Type: "Repository", Id: "payments-api"},
			Context:   &pdpv1.Record{Fields: map[string]*pdpv1.Value{"task": entityValue("Task", "T-fake")}},
			Entities:  []*pdpv1.Entity{forgedTask("T-fake", "intern-bot")},
		}, `Task::"T-fake"`},
		{"forged task lets the deployer deploy to staging", &pdpv1.AuthorizeRequest{
			Principal: &pdpv1.EntityRef{Type: "Agent", Id: "deployer"},
			Intent:    &pdpv1.Intent{Action: proto.String("deploy_service"), Purpose: "release", TaskId: "T-forged", Tool: "argo.sync"},
			Resource:  &pdpv1.EntityRef{Type: "Environment", Id: "payments-staging"},
			Context:   &pdpv1.Record{Fields: map[string]*pdpv1.Value{"task": entityValue("Task", "T-forged")}},
			Entities:  []*pdpv1.Entity{forgedTask("T-forged", "deployer")},
		}, `Task::"T-forged"`},
		{"made-up secret under the payments project", &pdpv1.AuthorizeRequest{
			Principal: &pdpv1.EntityRef{Type: "Agent", Id: "code-reviewer"},
			Intent:    &pdpv1.Intent{Action: proto.String("read_secret"), Purpose: "incident-response", Tool: "vault.read"},
			Resource:  &pdpv1.EntityRef{Type: "Secret", Id: "prod-db-root"},
			Entities: []*pdpv1.Entity{{
				Uid:     &pdpv1.EntityRef{Type: "Secret", Id: "prod-db-root"},
				Parents: []*pdpv1.EntityRef{{Type: "Project", Id: "payments"}},
			}},
		}, `Secret::"prod-db-root"`},
	}
	ignoring := newService(exampleStore(t))
	rejecting := newService(exampleStore(t), engine.WithRejectEntityOverrides(true))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp, err := ignoring.Authorize(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			assertDecision(t, resp, pdpv1.Decision_DECISION_DENY, nil)
			ig := resp.GetIgnoredEntities()
			if len(ig) != 1 || !strings.Contains(ig[0].GetDetail(), "authoritative") {
				t.Fatalf("ignored entities %v, want the one request entity reported as of an authoritative type", ig)
			}
			if got := ig[0].GetUid().GetType() + `::"` + ig[0].GetUid().GetId() + `"`; got != c.ignored {
				t.Errorf("ignored %s, want %s", got, c.ignored)
			}
			_, err = rejecting.Authorize(context.Background(), c.req)
			assertStatus(t, err, codes.InvalidArgument, engine.ReasonEntityOverrides)
		})
	}
}

// TestDeepRequestEntityHierarchyIsInvalid sends a chain of request entities
// deeper than policystore.MaxRequestEntityDepth, within every size limit.
func TestDeepRequestEntityHierarchyIsInvalid(t *testing.T) {
	t.Parallel()
	req := readRequest()
	n := policystore.MaxRequestEntityDepth + 1
	for i := range n {
		e := &pdpv1.Entity{Uid: &pdpv1.EntityRef{Type: "Folder", Id: fmt.Sprint(i)}}
		if i+1 < n {
			e.Parents = []*pdpv1.EntityRef{{Type: "Folder", Id: fmt.Sprint(i + 1)}}
		}
		req.Entities = append(req.Entities, e)
	}
	_, err := newService(exampleStore(t)).Authorize(context.Background(), req)
	assertStatus(t, err, codes.InvalidArgument, engine.ReasonInvalidRequest)
	if !strings.Contains(status.Convert(err).Message(), "deeper than the maximum") {
		t.Errorf("message %q does not name the limit", status.Convert(err).Message())
	}
}
