package policystore

import (
	"context"
	"iter"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	expast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// Snapshot is a compiled policy bundle. It is safe for concurrent use:
// nothing in it changes once it is published (Store.Activate stamps its
// revision and activation time before that) but two caches that fill as
// decisions read it, through atomic pointers and invisibly to any
// decision: materialised entities and policies' annotation maps. It is a
// cedar.PolicyIterator.
type Snapshot struct {
	revision string
	source   string
	policies []compiledPolicy // sorted by id, so reasons come out sorted
	// entities are the bundle's entities as written (see entitystore.go).
	entities    *entityStore
	schema      *resolved.Schema
	activatedAt time.Time
	sequence    int64 // the manifest's, for anti-rollback
	// baseRevision (the manifest's, or the content hash) and contentHash
	// keep revisions unique when a manifest revision is reused.
	baseRevision string
	contentHash  string

	// closed is entities with their ancestor closures as parents;
	// decisions evaluate against it (see closure.go).
	closed closedEntities
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
	id     cedar.PolicyID
	policy *cedar.Policy
	// annotations is the policy's annotations as a map, made the first
	// time the policy is a reason for a decision: the policies of a large
	// bundle that never are cost nothing beyond their AST.
	annotations atomic.Pointer[map[string]string]
	// reason is the policy as a decision's only reason, made the first
	// time it is one, and shared from then on.
	reason atomic.Pointer[[1]Reason]
}

// annotationMap returns p's annotations, shared: callers must not modify
// the map.
func (p *compiledPolicy) annotationMap() map[string]string {
	if m := p.annotations.Load(); m != nil {
		return *m
	}
	list := (*expast.Policy)(p.policy.AST()).Annotations
	m := make(map[string]string, len(list))
	for _, a := range list {
		m[string(a.Key)] = string(a.Value)
	}
	p.annotations.Store(&m)
	return m
}

// asReasons returns the reasons of a decision p alone determined, shared:
// callers must not modify them.
func (p *compiledPolicy) asReasons() []Reason {
	r := p.reason.Load()
	if r == nil {
		r = &[1]Reason{{PolicyID: string(p.id), Annotations: p.annotationMap()}}
		p.reason.Store(r)
	}
	return r[:]
}

// buildSnapshot compiles the policies ids[i] → policies[i], ids sorted and
// unique, and the entities into a Snapshot.
func buildSnapshot(revision, source string, ids []cedar.PolicyID, policies []*cedar.Policy, entities *entityStore, sch *resolved.Schema) *Snapshot {
	s := &Snapshot{revision: revision, source: source, schema: sch}
	s.policies = make([]compiledPolicy, len(policies))
	for i, p := range policies {
		s.policies[i].id, s.policies[i].policy = ids[i], p
		for _, a := range (*expast.Policy)(p.AST()).Annotations {
			if a.Key == EnforcementAnnotation && a.Value == LogOnly {
				if s.logOnly == nil {
					s.logOnly = make([]bool, len(policies))
				}
				s.logOnly[i] = true
			}
		}
	}
	s.setEntities(entities)
	return s
}

// setEntities stores the bundle's entities and indexes the policies
// against their closures.
func (s *Snapshot) setEntities(store *entityStore) {
	s.entities = store
	s.closed = closedEntities{store}
	s.index = newPolicyIndex(s.policies, s.closed)
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
func (s *Snapshot) EntityCount() int { return s.entities.Len() }

// ContentHash is the digest of the bundle the snapshot was built from.
func (s *Snapshot) ContentHash() string { return s.contentHash }

// Sequence is the manifest sequence of the bundle (0 when it has none).
func (s *Snapshot) Sequence() int64 { return s.sequence }

// Schema is the bundle's resolved schema, or nil.
func (s *Snapshot) Schema() *resolved.Schema { return s.schema }

// Entities returns the bundle's entities as written, in a map built for
// the caller: it materialises every entity, so it is for tools and
// comparisons, not for a request.
func (s *Snapshot) Entities() types.EntityMap { return s.entities.Entities() }

// All yields the snapshot's policies in id order; it makes a Snapshot a
// cedar.PolicyIterator.
func (s *Snapshot) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for i := range s.policies {
			if p := &s.policies[i]; !yield(p.id, p.policy) {
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
	for uid := range s.entities.All() {
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
		for uid := range s.entities.All() {
			if isActionType(uid.Type) {
				set[uid] = struct{}{}
			}
		}
		for i := range s.policies {
			for _, uid := range scopeUIDs(s.policies[i].policy.AST().Action) {
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
	sc := getDecideScratch()
	defer sc.release()
	candidates := s.candidates(sc, req, ancestors)
	var logOnly []int32
	if s.logOnly != nil {
		candidates, logOnly = s.splitLogOnly(sc, candidates)
	}
	creq := cedar.Request{
		Principal: req.Principal,
		Action:    req.Action,
		Resource:  req.Resource,
		Context:   cedarCtx,
	}
	allow, diag := cedar.Authorize(sc.selection(s.policies, candidates), entities, creq)
	d := Decision{Allow: allow == cedar.Allow, Revision: s.revision, Ignored: ignored}
	if len(logOnly) > 0 {
		d.WouldHave = s.wouldHave(sc, d.Allow, len(diag.Reasons) > 0, logOnly, entities, creq)
	}
	d.Reasons = s.reasons(diag.Reasons)
	if len(diag.Errors) > 0 {
		d.Errors = make([]EvalError, len(diag.Errors))
		for i, e := range diag.Errors {
			d.Errors[i] = EvalError{PolicyID: string(e.PolicyID), Message: e.Message}
		}
	}
	return d, nil
}

// candidates are the indexes of the policies whose scope can match req,
// given the ancestors merge found (nil: the bundle's own), in sc.
func (s *Snapshot) candidates(sc *decideScratch, req Request, ancestors ancestryFunc) []int32 {
	if ancestors == nil {
		return s.index.candidatesInBundle(sc, req.Principal, req.Action, req.Resource)
	}
	return s.index.candidates(sc, ancestors, req.Principal, req.Action, req.Resource)
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
// results ascending, in sc. candidates may be shared with the index, so it
// is copied, never modified.
func (s *Snapshot) splitLogOnly(sc *decideScratch, candidates []int32) (enforced, logOnly []int32) {
	n := 0
	for _, i := range candidates {
		if s.logOnly[i] {
			n++
		}
	}
	if n == 0 {
		return candidates, nil
	}
	enforced, logOnly = sc.enforced[:0], sc.logOnly[:0]
	for _, i := range candidates {
		if s.logOnly[i] {
			logOnly = append(logOnly, i)
		} else {
			enforced = append(enforced, i)
		}
	}
	sc.enforced, sc.logOnly = enforced, logOnly
	return enforced, logOnly
}

// wouldHave evaluates the log-only candidates on their own and returns
// those that would have changed the enforced decision: the log-only
// forbids that matched an allow, or, for a deny that no enforced forbid
// determined (forbidden false), the log-only permits that would have
// allowed it. Cedar's rule (any forbid denies, else any permit allows)
// makes the two evaluations compose exactly.
func (s *Snapshot) wouldHave(sc *decideScratch, allow, forbidden bool, logOnly []int32, entities types.EntityGetter, req cedar.Request) []string {
	if !allow && forbidden {
		return nil // an enforced forbid: nothing log-only can allow
	}
	loAllow, diag := cedar.Authorize(sc.selection(s.policies, logOnly), entities, req)
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

// reasons are the Decision's reasons for cedar-go's. One reason, the
// common case, is a slice the policy keeps: reasons are read only.
func (s *Snapshot) reasons(diag []cedar.DiagnosticReason) []Reason {
	if len(diag) == 0 {
		return nil
	}
	if len(diag) == 1 {
		if p := s.policy(diag[0].PolicyID); p != nil {
			return p.asReasons()
		}
	}
	reasons := make([]Reason, len(diag))
	for i, r := range diag {
		reasons[i] = Reason{PolicyID: string(r.PolicyID)}
		if p := s.policy(r.PolicyID); p != nil {
			reasons[i].Annotations = p.annotationMap()
		}
	}
	return reasons
}

// policy returns the policy with id, or nil.
func (s *Snapshot) policy(id cedar.PolicyID) *compiledPolicy {
	i, ok := sort.Find(len(s.policies), func(i int) int {
		return strings.Compare(string(id), string(s.policies[i].id))
	})
	if !ok {
		return nil
	}
	return &s.policies[i]
}
