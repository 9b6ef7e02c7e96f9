package policystore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// ErrInvalidRequest marks a request that cannot be evaluated as given.
var ErrInvalidRequest = errors.New("invalid request")

// Snapshot is an immutable, compiled policy bundle. It is safe for
// concurrent use: nothing in it changes after Compile returns it.
type Snapshot struct {
	revision    string
	source      string
	policies    []compiledPolicy // sorted by id, so reasons come out sorted
	entities    types.EntityMap
	schema      *resolved.Schema
	activatedAt time.Time
	sequence    int64 // the manifest's, for anti-rollback
	// baseRevision (the manifest's, or the content hash) and contentHash
	// keep revisions unique when a manifest revision is reused.
	baseRevision string
	contentHash  string

	// closed holds the entities with their ancestor closures as parents;
	// decisions evaluate against it (see closure.go).
	closed types.EntityMap
	index  policyIndex
	// authoritative holds the entity types only the bundle defines (see
	// Manifest.AuthoritativeTypes); nil when there are none.
	authoritative map[types.EntityType]bool
}

type compiledPolicy struct {
	id          cedar.PolicyID
	policy      *cedar.Policy
	annotations map[string]string
}

func newSnapshot(revision, source string, policies map[cedar.PolicyID]*cedar.Policy, entities types.EntityMap, sch *resolved.Schema) *Snapshot {
	s := &Snapshot{revision: revision, source: source, entities: entities, schema: sch}
	for _, id := range slices.Sorted(maps.Keys(policies)) {
		p := policies[id]
		ann := make(map[string]string, len(p.Annotations()))
		for k, v := range p.Annotations() {
			ann[string(k)] = string(v)
		}
		s.policies = append(s.policies, compiledPolicy{id: id, policy: p, annotations: ann})
	}
	s.closed = closeEntities(entities)
	s.index = newPolicyIndex(s.policies, s.closed)
	return s
}

// Revision is the bundle revision this snapshot was built from.
func (s *Snapshot) Revision() string { return s.revision }

// Source is where the bundle came from.
func (s *Snapshot) Source() string { return s.source }

// ActivatedAt is when the snapshot started serving (zero if never).
func (s *Snapshot) ActivatedAt() time.Time { return s.activatedAt }

// PolicyCount is the number of policies in the snapshot.
func (s *Snapshot) PolicyCount() int { return len(s.policies) }

// EntityCount is the number of entities the bundle defines, action entities
// from the schema included.
func (s *Snapshot) EntityCount() int { return len(s.entities) }

// Schema is the bundle's resolved schema, or nil.
func (s *Snapshot) Schema() *resolved.Schema { return s.schema }

// Entities returns the bundle's entities. Callers must not modify the map.
func (s *Snapshot) Entities() types.EntityMap { return s.entities }

// All yields the snapshot's policies in id order; it makes a Snapshot a
// cedar.PolicyIterator.
func (s *Snapshot) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, p := range s.policies {
			if !yield(p.id, p.policy) {
				return
			}
		}
	}
}

// Intent is what the principal is trying to do, beyond the Cedar action.
type Intent struct {
	Purpose    string
	TaskID     string
	Tool       string
	Attributes types.RecordMap
}

// Reserved context keys, set by the PDP.
const (
	ContextIntent = "intent"
	ContextNow    = "now"
)

// CedarContext is the context policies see: the caller's fields plus the
// reserved keys, `intent` (purpose, task_id, tool, attributes) and `now`.
// It is the one place where reserved keys are made (Decide calls it); a
// caller may not set one itself. req.Context is not modified, so a caller
// may reuse it.
func (req *Request) CedarContext() (types.Record, error) {
	for _, k := range []types.String{ContextIntent, ContextNow} {
		if _, ok := req.Context[k]; ok {
			return types.Record{}, fmt.Errorf("%w: context key %q is reserved: the PDP sets it", ErrInvalidRequest, k)
		}
	}
	fields := make(types.RecordMap, len(req.Context)+2)
	maps.Copy(fields, req.Context)
	attrs := req.Intent.Attributes
	if attrs == nil {
		attrs = types.RecordMap{}
	}
	fields[ContextIntent] = types.NewRecord(types.RecordMap{
		"purpose":    types.String(req.Intent.Purpose),
		"task_id":    types.String(req.Intent.TaskID),
		"tool":       types.String(req.Intent.Tool),
		"attributes": types.NewRecord(attrs),
	})
	fields[ContextNow] = types.NewDatetime(req.Now)
	return types.NewRecord(fields), nil
}

// Request is one authorization question, decoded and checked.
type Request struct {
	Principal types.EntityUID
	Action    types.EntityUID
	Resource  types.EntityUID
	// Intent is what the principal is trying to do; policies see it as
	// context.intent.
	Intent Intent
	// Context is the caller's context, without the reserved keys that
	// Decide adds (see ContextIntent, ContextNow).
	Context types.RecordMap
	// Now is the time policies see as context.now: the PDP's clock.
	Now time.Time
	// Entities are request-scoped entities, merged under the bundle's (see
	// merge). Their hierarchy may be at most MaxRequestEntityDepth deep.
	Entities types.EntityMap
	// RejectOverrides makes request entity data that the bundle overrides an
	// error instead of being ignored and reported.
	RejectOverrides bool
}

// Decision is the outcome of one request.
type Decision struct {
	Allow    bool
	Reasons  []Reason // sorted by policy id
	Errors   []EvalError
	Revision string
	// Ignored lists request entity data that was not used.
	Ignored []IgnoredEntity
}

// PolicyIDs are the ids of the determining policies, in order.
func (d Decision) PolicyIDs() []string {
	ids := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		ids[i] = r.PolicyID
	}
	return ids
}

// Reason is a determining policy.
type Reason struct {
	PolicyID    string
	Annotations map[string]string // shared with the snapshot: read only
}

// EvalError is a policy that failed to evaluate and was skipped.
type EvalError struct {
	PolicyID string
	Message  string
}

// IgnoredEntity is request entity data the bundle overrode, or that is of
// a type only the bundle defines.
type IgnoredEntity struct {
	UID    types.EntityUID
	Detail string
}

// EntityOverrideError rejects a request whose entities contradict the bundle
// when the request asked for RejectOverrides.
type EntityOverrideError struct {
	Ignored []IgnoredEntity
}

func (e *EntityOverrideError) Error() string {
	parts := make([]string, len(e.Ignored))
	for i, ig := range e.Ignored {
		parts[i] = fmt.Sprintf("%s: %s", ig.UID, ig.Detail)
	}
	return "request entities contradict the policy bundle: " + strings.Join(parts, "; ")
}

func (e *EntityOverrideError) Unwrap() error { return ErrInvalidRequest }

// Decide evaluates req against the snapshot with Cedar, evaluating only
// the policies whose scope the index says can apply. It returns an error
// only when the request cannot be evaluated; a deny is a Decision. Merging
// the request's entities, the part whose cost the request controls, stops
// with ctx.Err() once ctx is done.
func (s *Snapshot) Decide(ctx context.Context, req Request) (Decision, error) {
	cedarCtx, err := req.CedarContext()
	if err != nil {
		return Decision{Revision: s.revision}, err
	}
	entities, ancestors, ignored, err := s.merge(ctx, req)
	if err != nil {
		return Decision{Revision: s.revision}, err
	}
	var candidates []int32
	if ancestors == nil {
		candidates = s.index.candidatesInBundle(req.Principal, req.Action, req.Resource)
	} else {
		candidates = s.index.candidates(ancestors, req.Principal, req.Action, req.Resource)
	}
	sel := &selection{policies: s.policies, indexes: candidates}
	allow, diag := cedar.Authorize(sel, entities, cedar.Request{
		Principal: req.Principal,
		Action:    req.Action,
		Resource:  req.Resource,
		Context:   cedarCtx,
	})
	d := Decision{Allow: allow == cedar.Allow, Revision: s.revision, Ignored: ignored}
	if len(diag.Reasons) > 0 {
		d.Reasons = make([]Reason, len(diag.Reasons))
		for i, r := range diag.Reasons {
			d.Reasons[i] = Reason{PolicyID: string(r.PolicyID), Annotations: s.annotations(r.PolicyID)}
		}
	}
	if len(diag.Errors) > 0 {
		d.Errors = make([]EvalError, len(diag.Errors))
		for i, e := range diag.Errors {
			d.Errors[i] = EvalError{PolicyID: string(e.PolicyID), Message: e.Message}
		}
	}
	return d, nil
}

func (s *Snapshot) annotations(id cedar.PolicyID) map[string]string {
	i, ok := slices.BinarySearchFunc(s.policies, id, func(p compiledPolicy, id cedar.PolicyID) int {
		return strings.Compare(string(p.id), string(id))
	})
	if !ok {
		return nil
	}
	return s.policies[i].annotations
}
