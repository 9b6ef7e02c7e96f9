package grants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
)

// GrantPolicyID is the policy id of the entry a consume step adds to the
// errors of an allow it turns into a deny.
const GrantPolicyID = "intentpdp.task_grant"

// Enrich is the engine's enrich step (engine.Enricher): it makes the task
// type the PDP's for this request and, when intent.task_id names a live
// grant, adds it as context.task. Whatever it finds is recorded in
// req.TaskState.
func (s *Store) Enrich(_ context.Context, req policystore.Request) (policystore.Request, error) {
	req.TaskType = TaskType
	if req.Intent.TaskID == "" {
		return req, nil
	}
	e, st := s.lookup(req.Intent.TaskID, s.now())
	req.TaskState = string(st)
	if st == Live {
		req.Task = &e.entity
	}
	return req, nil
}

// Consume is the engine's consume step (engine.Consumer), run after Decide
// for a request that carried a grant. A deny is returned as it is. An
// allow is checked against the grant as it is now, by the PDP's clock: if
// the grant was revoked, expired or replaced since the enrich step, or (a
// limited grant) its last use was taken by another decision, the allow
// becomes a deny that says why. Otherwise a limited grant loses one use,
// atomically: of two decisions racing for a one-shot grant exactly one
// allows. A use taken by an allow that a later step (the decision log in
// deny mode) turns into a deny is not given back: that fails closed.
func (s *Store) Consume(ctx context.Context, req policystore.Request, d policystore.Decision) (policystore.Request, policystore.Decision) {
	if !d.Allow || req.Task == nil {
		return req, d
	}
	now := s.now()
	e, st := s.lookup(req.Intent.TaskID, now)
	if st == Live && !sameGrant(e, req.Task) {
		st = Revoked // the grant decided with is gone; another took its id
	}
	if st != Live {
		req.TaskState = string(st)
		return req, denied(d, fmt.Sprintf("denied: the task grant is %s", st))
	}
	if !e.g.Limited() {
		return req, d
	}
	err := s.consumeUse(ctx, e, now)
	switch {
	case err == nil:
		s.metrics.consumed.Inc()
		return req, d
	case errors.Is(err, errUsedUp):
		req.TaskState = string(Exhausted)
		return req, denied(d, "denied: the task grant has no use left")
	default:
		s.log.Warn("consume a grant use", "task_id", req.Intent.TaskID, "err", err)
		req.TaskState = string(Stale)
		return req, denied(d, "denied: the task grant's use could not be recorded")
	}
}

func sameGrant(e *entry, task *types.Entity) bool {
	id, _ := task.Attributes.Get("grant_id")
	return id == types.String(e.g.ID)
}

// consumeUse takes one use of the limited grant e.
func (s *Store) consumeUse(ctx context.Context, e *entry, now time.Time) error {
	if s.shared != nil {
		g, err := s.shared.consume(ctx, &e.g, now)
		if err != nil {
			return err
		}
		s.apply(g)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.grants[e.g.TaskID]
	if !ok || cur.g.ID != e.g.ID || cur.g.StateAt(now) != Live {
		return errUsedUp
	}
	g := cur.g
	g.UsesLeft--
	s.grants[g.TaskID] = newEntry(g)
	return nil
}

func denied(d policystore.Decision, msg string) policystore.Decision {
	return policystore.Decision{
		Revision: d.Revision,
		Errors:   append(slices.Clip(d.Errors), policystore.EvalError{PolicyID: GrantPolicyID, Message: msg}),
	}
}
