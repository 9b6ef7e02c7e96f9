package policystore

import (
	"context"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// Snapshot is a compiled policy bundle. It is safe for concurrent use:
// nothing in it changes once it is published (Store.Activate stamps its
// revision and activation time before that). It is a cedar.PolicyIterator.
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
	// logOnly marks, by index into policies, the policies annotated
	// @enforcement("log_only"); nil when there are none, so that a bundle
	// without them pays nothing.
	logOnly []bool
	// intents caches context.intent records across decisions.
	intents intentRecords
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
		if ann[EnforcementAnnotation] == LogOnly {
			if s.logOnly == nil {
				s.logOnly = make([]bool, len(policies))
			}
			s.logOnly[len(s.policies)] = true
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

// ContentHash is the digest of the bundle the snapshot was built from.
func (s *Snapshot) ContentHash() string { return s.contentHash }

// Sequence is the manifest sequence of the bundle (0 when it has none).
func (s *Snapshot) Sequence() int64 { return s.sequence }

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

// EntitiesOfType returns the UIDs of the bundle's entities of type t,
// sorted by id. Search APIs use it to enumerate candidates; it scans every
// entity, so it costs O(entities) per call.
func (s *Snapshot) EntitiesOfType(t types.EntityType) []types.EntityUID {
	var out []types.EntityUID
	for uid := range s.entities {
		if uid.Type == t {
			out = append(out, uid)
		}
	}
	slices.SortFunc(out, CompareUIDs)
	return out
}

// Actions returns the actions a request from a principal of type principal
// on a resource of type resource could name, sorted. With a schema these
// are the schema's actions whose appliesTo admits both types (an empty
// type admits any); action groups without appliesTo are left out because
// no valid request names them. Without a schema they are every action the
// bundle knows: action entities and the actions named in policy scopes.
func (s *Snapshot) Actions(principal, resource types.EntityType) []types.EntityUID {
	set := map[types.EntityUID]struct{}{}
	if s.schema != nil {
		for uid, a := range s.schema.Actions {
			if a.AppliesTo != nil && admits(a.AppliesTo.Principals, principal) && admits(a.AppliesTo.Resources, resource) {
				set[uid] = struct{}{}
			}
		}
	} else {
		for uid := range s.entities {
			if isActionType(uid.Type) {
				set[uid] = struct{}{}
			}
		}
		for _, p := range s.policies {
			for _, uid := range scopeUIDs(p.policy.AST().Action) {
				set[uid] = struct{}{}
			}
		}
	}
	out := make([]types.EntityUID, 0, len(set))
	for uid := range set {
		out = append(out, uid)
	}
	slices.SortFunc(out, CompareUIDs)
	return out
}

func admits(allowed []types.EntityType, t types.EntityType) bool {
	return t == "" || slices.Contains(allowed, t)
}

// Decide evaluates req against the snapshot with Cedar, evaluating only
// the policies whose scope the index says can apply. It returns an error
// only when the request cannot be evaluated; a deny is a Decision. Merging
// the request's entities, the part whose cost the request controls, stops
// with ctx.Err() once ctx is done.
func (s *Snapshot) Decide(ctx context.Context, req Request) (Decision, error) {
	cedarCtx, err := req.cedarContext(&s.intents)
	if err != nil {
		return Decision{Revision: s.revision}, err
	}
	entities, ancestors, ignored, err := s.merge(ctx, req)
	if err != nil {
		return Decision{Revision: s.revision}, err
	}
	candidates := s.candidates(req, ancestors)
	var logOnly []int32
	if s.logOnly != nil {
		candidates, logOnly = s.splitLogOnly(candidates)
	}
	creq := cedar.Request{
		Principal: req.Principal,
		Action:    req.Action,
		Resource:  req.Resource,
		Context:   cedarCtx,
	}
	sel := &selection{policies: s.policies, indexes: candidates}
	allow, diag := cedar.Authorize(sel, entities, creq)
	d := Decision{Allow: allow == cedar.Allow, Revision: s.revision, Ignored: ignored}
	if len(logOnly) > 0 {
		d.WouldHave = s.wouldHave(d.Allow, len(diag.Reasons) > 0, logOnly, entities, creq)
	}
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

// candidates are the indexes of the policies whose scope can match req,
// given the ancestors merge found (nil: the bundle's own).
func (s *Snapshot) candidates(req Request, ancestors ancestryFunc) []int32 {
	if ancestors == nil {
		return s.index.candidatesInBundle(req.Principal, req.Action, req.Resource)
	}
	return s.index.candidates(ancestors, req.Principal, req.Action, req.Resource)
}

// EnforcementAnnotation is the policy annotation that says whether a
// policy is enforced; LogOnly is its one value that changes anything.
const (
	EnforcementAnnotation = "enforcement"
	// LogOnly marks a policy that is evaluated but cannot change a
	// decision: when it would have, the decision lists it in WouldHave.
	// Any other value of the annotation, or none, enforces the policy.
	LogOnly = "log_only"
)

// LogOnlyPolicies are the ids of the snapshot's log-only policies, sorted.
func (s *Snapshot) LogOnlyPolicies() []string {
	var ids []string
	for i, lo := range s.logOnly {
		if lo {
			ids = append(ids, string(s.policies[i].id))
		}
	}
	return ids
}

// splitLogOnly separates the log-only policies out of candidates, both
// results ascending. candidates may be shared with the index, so it is
// copied, never modified.
func (s *Snapshot) splitLogOnly(candidates []int32) (enforced, logOnly []int32) {
	n := 0
	for _, i := range candidates {
		if s.logOnly[i] {
			n++
		}
	}
	if n == 0 {
		return candidates, nil
	}
	enforced = make([]int32, 0, len(candidates)-n)
	logOnly = make([]int32, 0, n)
	for _, i := range candidates {
		if s.logOnly[i] {
			logOnly = append(logOnly, i)
		} else {
			enforced = append(enforced, i)
		}
	}
	return enforced, logOnly
}

// wouldHave evaluates the log-only candidates on their own and returns
// those that would have changed the enforced decision: the log-only
// forbids that matched an allow, or, for a deny that no enforced forbid
// determined (forbidden false), the log-only permits that would have
// allowed it. Cedar's rule (any forbid denies, else any permit allows)
// makes the two evaluations compose exactly.
func (s *Snapshot) wouldHave(allow, forbidden bool, logOnly []int32, entities types.EntityGetter, req cedar.Request) []string {
	if !allow && forbidden {
		return nil // an enforced forbid: nothing log-only can allow
	}
	loAllow, diag := cedar.Authorize(&selection{policies: s.policies, indexes: logOnly}, entities, req)
	// Reasons are the matched forbids when any matched, else the permits.
	if len(diag.Reasons) == 0 || (loAllow == cedar.Allow) == allow {
		return nil
	}
	ids := make([]string, len(diag.Reasons))
	for i, r := range diag.Reasons {
		ids[i] = string(r.PolicyID)
	}
	return ids
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
