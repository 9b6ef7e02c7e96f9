package grpcapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

type fakePolicyAdmin struct {
	status  policystore.Status
	changed bool
	err     error
}

func (f fakePolicyAdmin) Status() policystore.Status           { return f.status }
func (f fakePolicyAdmin) Reload(context.Context) (bool, error) { return f.changed, f.err }

func TestAdminReloadOutcomes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	failed := &policystore.ActivationResult{Source: "dir", Revision: "r2", Sequence: 2, At: at, Duration: time.Second, Err: errors.New("p.cedar:1:1: boom")}
	cases := map[string]struct {
		admin   fakePolicyAdmin
		outcome pdpv1.ReloadOutcome
		errMsg  string
	}{
		"activated": {admin: fakePolicyAdmin{changed: true}, outcome: pdpv1.ReloadOutcome_RELOAD_OUTCOME_ACTIVATED},
		"unchanged": {admin: fakePolicyAdmin{}, outcome: pdpv1.ReloadOutcome_RELOAD_OUTCOME_UNCHANGED},
		"failed": {admin: fakePolicyAdmin{err: failed.Err, status: policystore.Status{LastAttempt: failed}},
			outcome: pdpv1.ReloadOutcome_RELOAD_OUTCOME_FAILED, errMsg: "p.cedar:1:1: boom"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp, err := grpcapi.NewAdminService(tc.admin).Reload(t.Context(), &pdpv1.ReloadRequest{})
			if err != nil || resp.GetOutcome() != tc.outcome || resp.GetError() != tc.errMsg {
				t.Fatalf("got %v, %v", resp, err)
			}
			last := resp.GetStatus().GetLastAttempt()
			if tc.admin.status.LastAttempt != nil && (last.GetSuccess() || last.GetError() != tc.errMsg ||
				last.GetRevision() != "r2" || last.GetSequence() != 2 || !last.GetAttemptedAt().AsTime().Equal(at) ||
				last.GetDuration().AsDuration() != time.Second) {
				t.Fatalf("last attempt %v", last)
			}
		})
	}
}

func TestAdminStatusBeforeActivation(t *testing.T) {
	t.Parallel()
	resp, err := grpcapi.NewAdminService(fakePolicyAdmin{}).GetStatus(t.Context(), &pdpv1.GetStatusRequest{})
	if err != nil || resp.GetStatus().GetActive() != nil || resp.GetStatus().GetLastAttempt() != nil {
		t.Fatalf("got %v, %v", resp, err)
	}
}
