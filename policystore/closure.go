package policystore

import (
	"iter"
	"slices"

	"github.com/cedar-policy/cedar-go/types"
)

// Cedar's `in` walks the entity graph from the entity upwards on every
// evaluation. The snapshot instead gives each entity its ancestor closure
// as its parents: the walk then succeeds on its first lookup. Semantics are
// unchanged because the walk still follows every edge, and each entity's
// parents stay between its direct parents and its true ancestors.

// closeEntities returns a copy of m in which each entity's parents are all
// of its ancestors within m. Cycles are allowed, as in Cedar.
func closeEntities(m types.EntityMap) types.EntityMap {
	done := make(map[types.EntityUID][]types.EntityUID, len(m))
	out := make(types.EntityMap, len(m))
	for uid, e := range m {
		if e.Parents.Len() > 0 {
			e.Parents = types.NewEntityUIDSet(closureOf(m, done, uid)...)
		}
		out[uid] = e
	}
	return out
}

// closureOf computes uid's ancestors breadth first, reusing the complete
// closures of ancestors already computed, and records the result in done.
func closureOf(m types.EntityMap, done map[types.EntityUID][]types.EntityUID, uid types.EntityUID) []types.EntityUID {
	if c, ok := done[uid]; ok {
		return c
	}
	var acc ancestorSet
	queue := slices.Collect(m[uid].Parents.All())
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if !acc.add(p) {
			continue
		}
		if c, ok := done[p]; ok {
			for _, a := range c {
				acc.add(a)
			}
			continue
		}
		if e, ok := m[p]; ok {
			queue = append(queue, slices.Collect(e.Parents.All())...)
		}
	}
	done[uid] = acc.list
	return acc.list
}

// ancestorSet collects distinct ancestors in order. Most entities have a
// handful, for which a linear scan beats allocating a map; the map is
// built only past smallSet.
type ancestorSet struct {
	list []types.EntityUID
	seen map[types.EntityUID]bool
}

const smallSet = 16

func (s *ancestorSet) add(uid types.EntityUID) bool {
	switch {
	case s.seen != nil:
		if s.seen[uid] {
			return false
		}
		s.seen[uid] = true
	case slices.Contains(s.list, uid):
		return false
	case len(s.list) == smallSet:
		s.seen = make(map[types.EntityUID]bool, 2*smallSet)
		for _, a := range s.list {
			s.seen[a] = true
		}
		s.seen[uid] = true
	}
	s.list = append(s.list, uid)
	return true
}

// walkAncestors returns every ancestor of uid reachable through g.
func walkAncestors(g types.EntityGetter, uid types.EntityUID) []types.EntityUID {
	var acc ancestorSet
	for i := -1; i < len(acc.list); i++ {
		from := uid
		if i >= 0 {
			from = acc.list[i]
		}
		e, ok := g.Get(from)
		if !ok {
			continue
		}
		for p := range e.Parents.All() {
			acc.add(p)
		}
	}
	return acc.list
}

// closeRequestEntities replaces each request entity's parents with its
// ancestors through the layered view, once per request.
func closeRequestEntities(l layeredEntities) {
	for uid, e := range l.request {
		if e.Parents.Len() > 0 {
			e.Parents = types.NewEntityUIDSet(walkAncestors(l, uid)...)
			l.request[uid] = e
		}
	}
}

// bundleAncestors yields a bundle entity's ancestors from its closure; it
// is exact when the request brings no entities of its own.
func bundleAncestors(closed types.EntityMap) ancestryFunc {
	return func(uid types.EntityUID) iter.Seq[types.EntityUID] {
		return closed[uid].Parents.All()
	}
}

// layeredAncestors reads the closures already computed, after
// closeRequestEntities: a request entity's parents are all its ancestors; a
// bundle entity's are its bundle closure plus, for each of those the
// request defines, that entity's (closed) parents.
func layeredAncestors(l layeredEntities) ancestryFunc {
	return func(uid types.EntityUID) iter.Seq[types.EntityUID] {
		if e, ok := l.request[uid]; ok {
			return e.Parents.All()
		}
		own := l.bundle[uid].Parents
		return func(yield func(types.EntityUID) bool) {
			for a := range own.All() {
				if !yield(a) {
					return
				}
				for b := range l.request[a].Parents.All() {
					if !yield(b) {
						return
					}
				}
			}
		}
	}
}
