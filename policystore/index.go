package policystore

import (
	"encoding/binary"
	"iter"
	"slices"
	"sync"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	expast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// The three scope dimensions of a policy and of a request.
const (
	dimPrincipal = iota
	dimAction
	dimResource
	dimCount
)

// policyIndex maps scope constraints to the policies (indexes into
// Snapshot.policies, ascending) that carry them. Each policy is filed under
// exactly one dimension, the most selective one it constrains, so a request
// collects a policy at most once per matching key. A policy is a candidate
// when its key is the request's entity, one of its ancestors or its type;
// cedar-go still evaluates the full scope, so the index only has to be
// complete, never exact.
type policyIndex struct {
	byUID  [dimCount]map[types.EntityUID][]int32
	byType [dimCount]map[types.EntityType][]int32
	always []int32 // policies whose scope constrains nothing indexable
	// reached holds, per dimension and by entity number (see entityStore),
	// what each bundle entity reaches, as a span of lists[d]: entities with
	// the same ancestors share one list, and none of it holds a pointer.
	reached  [dimCount][]span
	lists    [dimCount][]int32
	entities *entityStore
}

// newPolicyIndex indexes policies; closed is the bundle's entities with
// their ancestor closures.
func newPolicyIndex(policies []compiledPolicy, closed closedEntities) policyIndex {
	var ix policyIndex
	for d := range dimCount {
		ix.byUID[d] = map[types.EntityUID][]int32{}
		ix.byType[d] = map[types.EntityType][]int32{}
	}
	for i := range policies {
		ix.add(int32(i), (*expast.Policy)(policies[i].policy.AST()))
	}
	ix.precompute(closed)
	return ix
}

// add files policy i under its most selective constraint: an entity in the
// principal, resource or action scope, else a principal or resource type.
func (ix *policyIndex) add(i int32, p *expast.Policy) {
	uids := [dimCount][]types.EntityUID{
		dimPrincipal: scopeUIDs(p.Principal),
		dimAction:    scopeUIDs(p.Action),
		dimResource:  scopeUIDs(p.Resource),
	}
	for _, d := range []int{dimPrincipal, dimResource, dimAction} {
		if len(uids[d]) == 0 {
			continue
		}
		for _, uid := range uids[d] {
			if bucket := ix.byUID[d][uid]; len(bucket) == 0 || bucket[len(bucket)-1] != i {
				ix.byUID[d][uid] = append(bucket, i)
			}
		}
		return
	}
	for d, scope := range []any{dimPrincipal: p.Principal, dimResource: p.Resource} {
		if t, ok := scopeType(scope); ok {
			ix.byType[d][t] = append(ix.byType[d][t], i)
			return
		}
	}
	ix.always = append(ix.always, i)
}

// scopeUIDs returns the entities a scope requires the request's entity to
// equal or descend from; none for unconstrained and type-only scopes, and
// none for `in []`, which is then treated as unconstrained (never wrong,
// since the scope is evaluated anyway).
func scopeUIDs(scope any) []types.EntityUID {
	switch s := scope.(type) {
	case expast.ScopeTypeEq:
		return []types.EntityUID{s.Entity}
	case expast.ScopeTypeIn:
		return []types.EntityUID{s.Entity}
	case expast.ScopeTypeIsIn:
		return []types.EntityUID{s.Entity}
	case expast.ScopeTypeInSet:
		return s.Entities
	}
	return nil
}

func scopeType(scope any) (types.EntityType, bool) {
	if s, ok := scope.(expast.ScopeTypeIs); ok {
		return s.Type, true
	}
	return "", false
}

// ancestryFunc yields an entity's ancestors.
type ancestryFunc func(types.EntityUID) iter.Seq[types.EntityUID]

// reach appends to buckets the non-empty buckets of dimension d that uid
// reaches: its type's, its own and its ancestors'.
func (ix *policyIndex) reach(buckets [][]int32, d int, uid types.EntityUID, ancestors ancestryFunc) [][]int32 {
	buckets = ix.reachOwn(buckets, d, uid)
	for a := range ancestors(uid) {
		buckets = appendBucket(buckets, ix.byUID[d][a])
	}
	return buckets
}

// reachOwn appends to buckets uid's type's and own non-empty buckets of
// dimension d: all that an entity without ancestors reaches. Apart from
// reach, because the body of a loop over an iterator captures buckets and
// moves it to the heap.
func (ix *policyIndex) reachOwn(buckets [][]int32, d int, uid types.EntityUID) [][]int32 {
	buckets = appendBucket(buckets, ix.byType[d][uid.Type])
	return appendBucket(buckets, ix.byUID[d][uid])
}

func appendBucket(buckets [][]int32, b []int32) [][]int32 {
	if len(b) == 0 {
		return buckets
	}
	return append(buckets, b)
}

// precompute records, for every bundle entity and dimension, the merged
// buckets it reaches, so that a request that brings no entities of its own
// costs one lookup per dimension however deep the hierarchy and however
// large the bundle.
func (ix *policyIndex) precompute(closed closedEntities) {
	ix.entities = closed.s
	var wg sync.WaitGroup
	for d := range dimCount {
		if len(ix.byUID[d]) == 0 && len(ix.byType[d]) == 0 {
			continue // nothing to reach: the lookup falls through cheaply
		}
		wg.Go(func() { ix.reached[d], ix.lists[d] = ix.precomputeDim(d) })
	}
	wg.Wait()
}

// precomputeDim is precompute for dimension d: the span each entity
// reaches, and the lists they are spans of. The buckets are first looked up
// once per bucket and filed by entity number, so that the walk over every
// entity and its ancestors reads arrays instead of hashing UIDs.
func (ix *policyIndex) precomputeDim(d int) ([]span, []int32) {
	store := ix.entities
	buckets := [][]int32{nil} // bucket 0: none
	own := make([]int32, len(store.typeOf))
	for uid, b := range ix.byUID[d] {
		if u, ok := store.lookup(uid); ok {
			own[u] = int32(len(buckets))
			buckets = append(buckets, b)
		}
	}
	ofType := make([]int32, len(store.typeNames))
	for t, name := range store.typeNames {
		if b := ix.byType[d][name]; len(b) > 0 {
			ofType[t] = int32(len(buckets))
			buckets = append(buckets, b)
		}
	}
	reached := make([]span, store.defined)
	var lists []int32
	shared := map[string]span{} // a list's int32s as bytes → where it is
	var key []byte
	var buf [8][]int32
	var merged []int32
	for u := range store.defined {
		reach := buf[:0]
		for _, b := range []int32{ofType[store.typeOf[u]], own[u]} {
			if b != 0 {
				reach = append(reach, buckets[b])
			}
		}
		for _, a := range store.closure.of(u) {
			if b := own[a]; b != 0 {
				reach = append(reach, buckets[b])
			}
		}
		l := mergeBuckets(reach, &merged)
		if len(l) == 0 {
			continue
		}
		key = key[:0]
		for _, i := range l {
			key = binary.LittleEndian.AppendUint32(key, uint32(i))
		}
		sp, ok := shared[string(key)]
		if !ok {
			sp = span{uint32(len(lists)), uint32(len(lists) + len(l))}
			lists = append(lists, l...)
			shared[string(key)] = sp
		}
		reached[u] = sp
	}
	return reached, lists
}

// candidates returns the ascending indexes of the policies whose scope can
// match a request for principal, action and resource, whose entities'
// ancestors are found through ancestors. The result may live in sc: it is
// valid until sc is released.
func (ix *policyIndex) candidates(sc *decideScratch, ancestors ancestryFunc, principal, action, resource types.EntityUID) []int32 {
	buckets := sc.buckets[:0]
	if len(ix.always) > 0 {
		buckets = append(buckets, ix.always)
	}
	for d, uid := range [dimCount]types.EntityUID{principal, action, resource} {
		buckets = ix.reach(buckets, d, uid, ancestors)
	}
	sc.buckets = buckets
	return mergeBuckets(buckets, &sc.merged)
}

// candidatesInBundle is candidates for a request that brings no entities,
// from the lists precompute made. An entity the bundle does not define has
// no ancestors, so its type's and its own bucket are all it reaches.
func (ix *policyIndex) candidatesInBundle(sc *decideScratch, principal, action, resource types.EntityUID) []int32 {
	buckets := sc.buckets[:0]
	if len(ix.always) > 0 {
		buckets = append(buckets, ix.always)
	}
	for d, uid := range [dimCount]types.EntityUID{principal, action, resource} {
		if u, ok := ix.entities.entity(uid); ok {
			if ix.reached[d] != nil {
				if sp := ix.reached[d][u]; sp.end > sp.off {
					buckets = append(buckets, ix.lists[d][sp.off:sp.end])
				}
			}
			continue
		}
		buckets = ix.reachOwn(buckets, d, uid)
	}
	sc.buckets = buckets
	return mergeBuckets(buckets, &sc.merged)
}

// mergeBuckets returns the union of ascending buckets, ascending. A single
// bucket (the common case) is returned as is, without copying; a union is
// built in *out, which keeps what it grew to for the next merge.
func mergeBuckets(buckets [][]int32, out *[]int32) []int32 {
	switch len(buckets) {
	case 0:
		return nil
	case 1:
		return buckets[0]
	}
	merged := (*out)[:0]
	for _, b := range buckets {
		merged = append(merged, b...)
	}
	slices.Sort(merged)
	*out = merged
	// An `action in [a, b]` policy sits in two buckets that one request can
	// both reach.
	return slices.Compact(merged)
}

// selection is the subset of a snapshot's policies one request evaluates;
// it is a cedar.PolicyIterator yielding them in id order, so reasons and
// errors come out sorted exactly as when every policy is evaluated. all is
// its each method, bound once (see decideScratches), so that All returns
// it without allocating.
type selection struct {
	policies []compiledPolicy
	indexes  []int32
	all      iter.Seq2[cedar.PolicyID, *cedar.Policy]
}

func (sel *selection) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] { return sel.all }

func (sel *selection) each(yield func(cedar.PolicyID, *cedar.Policy) bool) {
	for _, i := range sel.indexes {
		p := &sel.policies[i]
		if !yield(p.id, p.policy) {
			return
		}
	}
}

// decideScratch is the memory one decision works in and the next reuses:
// the buckets a request reaches, their union, the log-only split and the
// selection handed to cedar-go. A Decision never references it: cedar-go
// copies the policy ids it reports, and those are the snapshot's strings.
type decideScratch struct {
	buckets           [][]int32
	merged            []int32
	enforced, logOnly []int32
	sel               selection
}

var decideScratches = sync.Pool{New: func() any {
	sc := new(decideScratch)
	sc.sel.all = sc.sel.each
	return sc
}}

// maxScratchCandidates bounds the candidate lists kept for reuse, so that
// one request reaching a large part of a large bundle does not pin its
// lists.
const maxScratchCandidates = 1 << 12

func getDecideScratch() *decideScratch { return decideScratches.Get().(*decideScratch) }

// selection returns sc's selection of indexes from policies.
func (sc *decideScratch) selection(policies []compiledPolicy, indexes []int32) *selection {
	sc.sel.policies, sc.sel.indexes = policies, indexes
	return &sc.sel
}

// release returns sc to the pool, holding no reference into the snapshot
// it served, which may be retired by the time sc is used again.
func (sc *decideScratch) release() {
	if max(cap(sc.merged), cap(sc.enforced), cap(sc.logOnly)) > maxScratchCandidates {
		return
	}
	clear(sc.buckets[:cap(sc.buckets)])
	sc.sel.policies, sc.sel.indexes = nil, nil
	decideScratches.Put(sc)
}
