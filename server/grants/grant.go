// Package grants keeps just-in-time task grants: access for one task, one
// scope and one time window, then gone. A grant is the runtime Cedar entity
// Task::"<task_id>"; the engine's enrich step (Store.Enrich) puts the live
// grant named by intent.task_id into the request as context.task, and its
// consume step (Store.Consume) settles a limited grant's uses after an
// allow. Bundle policies give grants their meaning.
//
// Every replica keeps all grants in memory, so a decision never waits on
// a database: Store is the in-memory index, fed by the memory backend
// (grants live and die with the process) or by PostgreSQL (shared by
// replicas, changes learned through LISTEN/NOTIFY, see OpenPostgres).
package grants

import (
	"errors"
	"fmt"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// TaskType is the entity type of grants.
const TaskType types.EntityType = "Task"

// State is what the store found for a task id, as the decision log and the
// decision span record it.
type State string

// States of a task id at decision time.
const (
	Live        State = "live"
	Expired     State = "expired"
	Revoked     State = "revoked"
	Unknown     State = "unknown"
	NotYetValid State = "not_yet_valid"
	// Exhausted is a limited grant with no use left.
	Exhausted State = "exhausted"
	// Stale means the shared store has been out of reach for longer than
	// the staleness bound: no grant is served until a full resync.
	Stale State = "stale"
)

// Errors of the grant API.
var (
	// ErrNotFound: no grant has that task id.
	ErrNotFound = errors.New("grant not found")
	// ErrExists: a grant that has not ended already has that task id.
	ErrExists = errors.New("a live grant already has this task id")
	// ErrInvalid: the grant is malformed (missing field, bad ttl).
	ErrInvalid = errors.New("invalid grant")
	// ErrUnavailable: the shared store cannot be reached.
	ErrUnavailable = errors.New("grant store unavailable")
	// errUsedUp: a consumption found no use left.
	errUsedUp = errors.New("no use left")
)

// Grant is one task grant. A Grant value is immutable once stored: changes
// (revocation, a use) make a new value.
type Grant struct {
	// TaskID names the grant: Task::"<TaskID>".
	TaskID string
	// ID tells grants of a reused task id apart (context.task.grant_id).
	ID         string
	Assignee   types.EntityUID
	Actions    []types.EntityUID
	Scope      []types.EntityUID
	Purpose    string
	ApprovedBy types.EntityUID
	// OnBehalfOf is zero when the grant acts for no one in particular.
	OnBehalfOf types.EntityUID
	NotBefore  time.Time
	ExpiresAt  time.Time
	// MaxUses is 0 for a grant usable any number of times in its window.
	MaxUses  int64
	UsesLeft int64
	// Attributes reach policies as context.task.attributes.
	Attributes types.RecordMap
	CreatedAt  time.Time
	// RevokedAt is zero until the grant is revoked.
	RevokedAt time.Time
}

// Limited says whether the grant has a number of uses.
func (g *Grant) Limited() bool { return g.MaxUses > 0 }

// UID is the grant's entity UID.
func (g *Grant) UID() types.EntityUID { return types.NewEntityUID(TaskType, types.String(g.TaskID)) }

// StateAt is the grant's state at now.
func (g *Grant) StateAt(now time.Time) State {
	switch {
	case !g.RevokedAt.IsZero():
		return Revoked
	case !now.Before(g.ExpiresAt):
		return Expired
	case now.Before(g.NotBefore):
		return NotYetValid
	case g.Limited() && g.UsesLeft <= 0:
		return Exhausted
	}
	return Live
}

// ended says whether the grant can never be live again, so that its task
// id may be granted anew.
func (g *Grant) ended(now time.Time) bool {
	st := g.StateAt(now)
	return st == Revoked || st == Expired || st == Exhausted
}

// involves says whether p is the grant's assignee, approver or the one it
// acts for (RevokePrincipal, ListGrants).
func (g *Grant) involves(p types.EntityUID) bool {
	return g.Assignee == p || g.OnBehalfOf == p || g.ApprovedBy == p
}

// Entity is the grant as policies see it, context.task.
func (g *Grant) Entity() types.Entity {
	attrs := types.RecordMap{
		"grant_id":    types.String(g.ID),
		"assignee":    g.Assignee,
		"actions":     types.NewSet(uidValues(g.Actions)...),
		"scope":       types.NewSet(uidValues(g.Scope)...),
		"purpose":     types.String(g.Purpose),
		"approved_by": g.ApprovedBy,
		"not_before":  types.NewDatetime(g.NotBefore),
		"expires_at":  types.NewDatetime(g.ExpiresAt),
		"attributes":  types.NewRecord(g.Attributes),
	}
	if g.OnBehalfOf != (types.EntityUID{}) {
		attrs["on_behalf_of"] = g.OnBehalfOf
	}
	if g.Limited() {
		attrs["uses_left"] = types.Long(g.UsesLeft)
	}
	return types.Entity{UID: g.UID(), Attributes: types.NewRecord(attrs)}
}

func uidValues(uids []types.EntityUID) []types.Value {
	vs := make([]types.Value, len(uids))
	for i, u := range uids {
		vs[i] = u
	}
	return vs
}

// validate checks what a new grant must have.
func (g *Grant) validate() error {
	var errs []error
	if g.TaskID == "" {
		errs = append(errs, errors.New("task_id is required"))
	}
	if g.Assignee.Type == "" {
		errs = append(errs, errors.New("assignee is required"))
	}
	if g.ApprovedBy.Type == "" {
		errs = append(errs, errors.New("approved_by is required"))
	}
	if len(g.Actions) == 0 {
		errs = append(errs, errors.New("at least one action is required"))
	}
	if len(g.Scope) == 0 {
		errs = append(errs, errors.New("at least one scope entity is required"))
	}
	if g.MaxUses < 0 {
		errs = append(errs, errors.New("max_uses must not be negative"))
	}
	if !g.ExpiresAt.After(g.NotBefore) {
		errs = append(errs, errors.New("the grant must end after it starts"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
