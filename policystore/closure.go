package policystore

import (
	"context"
	"fmt"
	"iter"
	"slices"

	"github.com/cedar-policy/cedar-go/types"
)

// Cedar's `in` walks the entity graph from the entity upwards on every
// evaluation. The snapshot instead gives each entity its ancestor closure
// as its parents: the walk then succeeds on its first lookup. Semantics are
// unchanged because the walk still follows every edge, and each entity's
// parents stay between its direct parents and its true ancestors.

// closeAll returns the ancestor closure of each of the first defined
// entities of parents, as entity numbers: breadth first from its parents,
// reusing the closures of the entities numbered before it, which are
// complete. Numbers from defined on are parents the bundle does not define:
// ancestors without parents of their own. total is the count of numbers.
func closeAll(parents *runs, defined int32, total int) runs {
	out := runs{start: make([]int32, 1, defined+1)}
	// seen[a] == u+1 when a is already in u's closure: a set per entity
	// without clearing anything in between.
	seen := make([]int32, total)
	var queue []int32
	for u := range defined {
		add := func(a int32) bool {
			if seen[a] == u+1 {
				return false
			}
			seen[a] = u + 1
			out.items = append(out.items, a)
			return true
		}
		queue = append(queue[:0], parents.of(u)...)
		for next := 0; next < len(queue); next++ {
			p := queue[next]
			switch {
			case !add(p), p >= defined:
			case p < u:
				for _, a := range out.items[out.start[p]:out.start[p+1]] {
					add(a)
				}
			default:
				queue = append(queue, parents.of(p)...)
			}
		}
		out.start = append(out.start, int32(len(out.items)))
	}
	return out
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

// MaxRequestEntityDepth is how deep the hierarchy of a request's own
// entities may be: the most request entities on any chain of parents, an
// entity itself included, where a cycle counts all its members. Bundle
// entities along the way do not count. A request past it is refused with
// ErrInvalidRequest: closing a chain of n entities costs n²/2 ancestor
// entries, and no real hierarchy of groups, folders or projects comes near
// the limit.
const MaxRequestEntityDepth = 64

// closeRequestEntities replaces each request entity's parents with all its
// ancestors through the layered view, once per request. It finds the
// strongly connected components of the request entities' graph (Tarjan's
// algorithm), which come out ancestors first, so each component's closure
// is the union of its members' parents and of the closures already
// computed for the components above it: each parent edge is followed once,
// instead of a walk per entity through parents already replaced by
// closures. It stops when the hierarchy passes MaxRequestEntityDepth or ctx
// ends.
func closeRequestEntities(ctx context.Context, l layeredEntities) error {
	c := requestCloser{
		ctx:     ctx,
		l:       l,
		state:   make(map[types.EntityUID]*closeState, len(l.request)),
		closure: make(map[types.EntityUID][]types.EntityUID, len(l.request)),
	}
	// The closures, and whether the limit is passed, do not depend on the
	// order of the roots.
	for uid := range l.request {
		if _, visited := c.state[uid]; visited {
			continue
		}
		if _, err := c.visit(uid, 1); err != nil {
			return err
		}
	}
	for uid, e := range l.request {
		if e.Parents.Len() > 0 {
			e.Parents = types.NewEntityUIDSet(c.closure[uid]...)
			l.request[uid] = e
		}
	}
	return nil
}

// requestCloser holds Tarjan's bookkeeping for one request.
type requestCloser struct {
	ctx     context.Context
	l       layeredEntities
	state   map[types.EntityUID]*closeState
	stack   []types.EntityUID
	next    int
	closure map[types.EntityUID][]types.EntityUID // complete components only
}

type closeState struct {
	index, low int
	onStack    bool
	height     int // set when the component is complete
}

// visit runs Tarjan's algorithm from the request entity uid, depth request
// entities up the current path, and returns uid's state.
func (c *requestCloser) visit(uid types.EntityUID, depth int) (*closeState, error) {
	if depth > MaxRequestEntityDepth {
		// The path on the stack alone is longer than the limit.
		return nil, depthError()
	}
	st := &closeState{index: c.next, low: c.next, onStack: true}
	c.next++
	c.state[uid] = st
	c.stack = append(c.stack, uid)
	for succ := range c.successors(uid) {
		s, visited := c.state[succ]
		switch {
		case !visited:
			var err error
			if s, err = c.visit(succ, depth+1); err != nil {
				return nil, err
			}
			st.low = min(st.low, s.low)
		case s.onStack:
			st.low = min(st.low, s.index)
		}
	}
	if st.low == st.index {
		if err := c.complete(uid); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// successors yields the request entities whose closures uid's closure
// includes: its request parents, and the request entities among the
// ancestors of its bundle parents (a bundle entity may name a parent the
// bundle leaves undefined and the request defines).
func (c *requestCloser) successors(uid types.EntityUID) iter.Seq[types.EntityUID] {
	return func(yield func(types.EntityUID) bool) {
		for p := range c.l.request[uid].Parents.All() {
			if _, ok := c.l.request[p]; ok {
				if !yield(p) {
					return
				}
				continue
			}
			bundled, _ := c.l.bundle.Get(p)
			for a := range bundled.Parents.All() {
				if _, ok := c.l.request[a]; ok && !yield(a) {
					return
				}
			}
		}
	}
}

// complete pops the component rooted at root off the stack and gives every
// member the component's closure.
func (c *requestCloser) complete(root types.EntityUID) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	i := len(c.stack) - 1
	for c.stack[i] != root {
		i--
	}
	members := c.stack[i:]
	c.stack = c.stack[:i]
	for _, m := range members {
		c.state[m].onStack = false
	}
	inComponent := func(uid types.EntityUID) bool { return slices.Contains(members, uid) }
	if len(members) > smallSet {
		set := make(map[types.EntityUID]bool, len(members))
		for _, m := range members {
			set[m] = true
		}
		inComponent = func(uid types.EntityUID) bool { return set[uid] }
	}
	var acc ancestorSet
	above := 0
	// include adds a request entity's closure unless it is a member, whose
	// own parents are added anyway.
	include := func(uid types.EntityUID) {
		if inComponent(uid) {
			return
		}
		for _, a := range c.closure[uid] {
			acc.add(a)
		}
		above = max(above, c.state[uid].height)
	}
	for _, m := range members {
		for p := range c.l.request[m].Parents.All() {
			acc.add(p)
			if _, ok := c.l.request[p]; ok {
				include(p)
				continue
			}
			bundled, _ := c.l.bundle.Get(p)
			for a := range bundled.Parents.All() {
				acc.add(a)
				if _, ok := c.l.request[a]; ok {
					include(a)
				}
			}
		}
	}
	height := above + len(members)
	if height > MaxRequestEntityDepth {
		return depthError()
	}
	for _, m := range members {
		c.state[m].height = height
		c.closure[m] = acc.list
	}
	return nil
}

func depthError() error {
	return fmt.Errorf("%w: request entities nest deeper than the maximum of %d (a chain of parents, or a cycle, through more than %d request entities)",
		ErrInvalidRequest, MaxRequestEntityDepth, MaxRequestEntityDepth)
}

// bundleAncestors yields a bundle entity's ancestors from its closure; it
// is exact when the request brings no entities of its own.
func bundleAncestors(closed closedEntities) ancestryFunc { return closed.ancestors }

// layeredAncestors reads the closures already computed, after
// closeRequestEntities: a request entity's parents are all its ancestors; a
// bundle entity's are its bundle closure plus, for each of those the
// request defines, that entity's (closed) parents.
func layeredAncestors(l layeredEntities) ancestryFunc {
	return func(uid types.EntityUID) iter.Seq[types.EntityUID] {
		if e, ok := l.request[uid]; ok {
			return e.Parents.All()
		}
		bundled, _ := l.bundle.Get(uid)
		own := bundled.Parents
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
