package policystore

import (
	"fmt"
	"hash/maphash"
	"iter"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/cedar-policy/cedar-go/types"
)

// A bundle's entities are what a snapshot holds most of, and a map of
// cedar-go entities is a graph of small objects (a parent set and an
// attribute map per entity) that the garbage collector marks on every
// cycle, however rarely a request reads them. entityStore keeps them in a
// few flat arrays without pointers instead: every entity UID (the bundle's
// entities and the parents they name) is interned to an int32, ids are
// substrings of one string, parents and ancestor closures are runs of
// int32s, and attributes and tags are stored in a compact binary form
// (valuecodec.go) or, for extension values, Cedar's JSON form. A
// cedar-go Entity is materialised only when a request reads it; a small
// cache of materialised entities (closedEntities) makes the entities a
// workload keeps reading cost one lookup, while the heap the collector
// scans stays bounded however large the bundle.
type entityStore struct {
	// data holds every interned UID's id, then every defined entity's
	// attributes and tags (see encode); entries are substrings.
	data string
	// idEnd[u] ends UID u's id in data; it starts at idEnd[u-1] (0 for u=0).
	idEnd []uint32
	// typeOf[u] indexes typeNames.
	typeOf    []uint16
	typeNames []types.EntityType
	// slots is an open-addressing hash table of UID+1 (0: empty).
	slots []int32
	seed  maphash.Seed
	// The first defined UIDs (0 … defined-1) are the bundle's entities;
	// the rest are parents the bundle names without defining them.
	defined int32
	// parents are each entity's parents as written, closure its ancestors
	// (see closure.go); both by defined UID.
	parents, closure runs
	// attrs and tags are each defined entity's, as offsets into data.
	attrs, tags []span
	// special holds the few entities whose attributes or tags have no JSON
	// form cedar-go reads back as the same values (a record with an
	// "__entity" or "__extn" key): they are kept as they are.
	special map[int32]types.Entity
	cache   entityCache
}

// runs are lists of UIDs, one per defined entity: list i is
// items[start[i]:start[i+1]].
type runs struct {
	start []int32
	items []int32
}

func (r *runs) of(i int32) []int32 { return r.items[r.start[i]:r.start[i+1]] }

type span struct{ off, end uint32 }

// newEntityStore interns m's entities, numbered in the map's order: no
// decision, listing or index depends on the numbering. It fails only when
// the ids, attributes and tags take more than the 4 GiB that 32-bit
// offsets address, or the UIDs have more than 65,536 types.
func newEntityStore(m types.EntityMap) (*entityStore, error) {
	b := newStoreBuilder(len(m))
	for _, e := range m {
		b.add(e)
	}
	return b.finish()
}

// storeBuilder builds an entityStore one entity at a time. Entities are
// numbered as they are defined; the parents they name are numbered only
// in finish, after every entity, so that the defined UIDs come first.
type storeBuilder struct {
	s   *entityStore
	ids []byte // every interned UID's id, in number order
	// values holds the attributes and tags, which finish appends to ids.
	values []byte
	// slots becomes the store's hash table: it is kept at most half full
	// as UIDs are numbered. typeHash is each type's hash.
	slots    []int32
	typeHash []uint64
	typeIdx  map[types.EntityType]uint16
	// parents lists the parents of every defined entity, as written;
	// entity i's end at parentEnd[i].
	parents   []types.EntityUID
	parentEnd []int32
	scratch   []byte
	// full is set once the ids reach the 4 GiB that idEnd addresses:
	// from then on nothing is numbered, and finish fails.
	full bool
}

func newStoreBuilder(n int) *storeBuilder {
	return &storeBuilder{
		s:       &entityStore{seed: maphash.MakeSeed()},
		slots:   make([]int32, 1<<bits.Len(uint(2*n))),
		typeIdx: map[types.EntityType]uint16{},
	}
}

// add defines e; false, adding nothing, when e.UID is defined already.
func (b *storeBuilder) add(e types.Entity) bool {
	i, ok := b.define(e.UID)
	if !ok {
		return false
	}
	for p := range e.Parents.All() {
		b.parents = append(b.parents, p)
	}
	b.parentEnd = append(b.parentEnd, int32(len(b.parents)))
	attrs, okA := b.encode(e.Attributes)
	tags, okT := b.encode(e.Tags)
	if !okA || !okT {
		if b.s.special == nil {
			b.s.special = map[int32]types.Entity{}
		}
		b.s.special[i] = e
		return true
	}
	b.s.attrs[i], b.s.tags[i] = attrs, tags
	return true
}

// addEncoded defines uid with attributes and tags already in their binary
// form (empty: none); false, adding nothing, when uid is defined already.
func (b *storeBuilder) addEncoded(uid types.EntityUID, parents []types.EntityUID, attrs, tags []byte) bool {
	i, ok := b.define(uid)
	if !ok {
		return false
	}
	b.parents = append(b.parents, parents...)
	b.parentEnd = append(b.parentEnd, int32(len(b.parents)))
	b.s.attrs[i], b.s.tags[i] = b.value(attrs), b.value(tags)
	return true
}

// define numbers uid, unless it is defined already. Until finish, every
// UID numbered is a defined one.
func (b *storeBuilder) define(uid types.EntityUID) (int32, bool) {
	i, isNew := b.intern(uid)
	if !isNew {
		return 0, false
	}
	b.s.attrs, b.s.tags = append(b.s.attrs, span{}), append(b.s.tags, span{})
	return i, true
}

// finish numbers the parents, then builds the closures.
func (b *storeBuilder) finish() (*entityStore, error) {
	s := b.s
	s.defined = int32(len(s.attrs))
	s.parents.start = make([]int32, 1, s.defined+1)
	s.parents.items = make([]int32, 0, len(b.parents))
	from := int32(0)
	for _, end := range b.parentEnd {
		for _, p := range b.parents[from:end] {
			u, _ := b.intern(p)
			s.parents.items = append(s.parents.items, u)
		}
		s.parents.start = append(s.parents.start, int32(len(s.parents.items)))
		from = end
	}
	b.parents = nil
	if len(s.typeNames) > math.MaxUint16+1 {
		return nil, fmt.Errorf("the entities and their parents have %d types, more than the %d supported", len(s.typeNames), math.MaxUint16+1)
	}
	if b.full || len(b.ids)+len(b.values) > math.MaxUint32 {
		return nil, fmt.Errorf("the entities' ids, attributes and tags take more than the %d bytes supported", uint64(math.MaxUint32))
	}
	// The closures need only the numbering: build them meanwhile.
	var closing sync.WaitGroup
	closing.Go(func() { s.closure = closeAll(&s.parents, s.defined, len(s.typeOf)) })
	shift := uint32(len(b.ids))
	for _, spans := range [][]span{s.attrs, s.tags} {
		for i := range spans {
			if spans[i].end != 0 {
				spans[i].off += shift
				spans[i].end += shift
			}
		}
	}
	s.data = string(append(b.ids, b.values...))
	s.slots = b.slots
	b.ids, b.values, b.slots = nil, nil, nil
	s.cache = newEntityCache(int(s.defined))
	closing.Wait()
	return s, nil
}

// intern returns uid's number, numbering it if it is new (isNew).
func (b *storeBuilder) intern(uid types.EntityUID) (u int32, isNew bool) {
	if b.full || len(b.ids) > math.MaxUint32-len(uid.ID) {
		b.full = true
		return 0, true
	}
	t, ok := b.typeIdx[uid.Type]
	if !ok {
		t = uint16(len(b.s.typeNames))
		b.typeIdx[uid.Type] = t
		b.s.typeNames = append(b.s.typeNames, uid.Type)
		b.typeHash = append(b.typeHash, maphash.String(b.s.seed, string(uid.Type)))
	}
	slot, u, found := b.find(t, string(uid.ID))
	if found {
		return u, false
	}
	u = int32(len(b.s.typeOf))
	b.s.typeOf = append(b.s.typeOf, t)
	b.ids = append(b.ids, uid.ID...)
	b.s.idEnd = append(b.s.idEnd, uint32(len(b.ids)))
	b.slots[slot] = u + 1
	if 2*len(b.s.typeOf) > len(b.slots) {
		b.grow()
	}
	return u, true
}

// find looks a UID up as entityStore.lookup does; when it is not there,
// slot is where to put it.
func (b *storeBuilder) find(t uint16, id string) (slot uint64, u int32, found bool) {
	mask := uint64(len(b.slots) - 1)
	for h := b.s.hashWith(b.typeHash[t], id); ; h++ {
		u := b.slots[h&mask] - 1
		if u < 0 {
			return h & mask, 0, false
		}
		if b.s.typeOf[u] == t && string(b.id(u)) == id {
			return 0, u, true
		}
	}
}

func (b *storeBuilder) id(u int32) []byte {
	start := uint32(0)
	if u > 0 {
		start = b.s.idEnd[u-1]
	}
	return b.ids[start:b.s.idEnd[u]]
}

// grow doubles the hash table.
func (b *storeBuilder) grow() {
	b.slots = make([]int32, 2*len(b.slots))
	for u := range int32(len(b.s.typeOf)) {
		slot, _, _ := b.find(b.s.typeOf[u], string(b.id(u)))
		b.slots[slot] = u + 1
	}
}

// encode appends r to values, in binary form where it has one, else as
// JSON; false when it has neither form that reads back as r.
func (b *storeBuilder) encode(r types.Record) (span, bool) {
	if r.Len() == 0 {
		return span{}, true
	}
	text, ok := appendValue(b.scratch[:0], r)
	b.scratch = text
	if !ok {
		var err error
		if text, err = r.MarshalJSON(); err != nil {
			return span{}, false
		}
	}
	return b.value(text), true
}

// value appends a stored record to values; empty is none.
func (b *storeBuilder) value(text []byte) span {
	if len(text) == 0 {
		return span{}
	}
	off := uint32(len(b.values))
	b.values = append(b.values, text...)
	return span{off, uint32(len(b.values))}
}

func (s *entityStore) hash(t types.EntityType, id string) uint64 {
	return s.hashWith(maphash.String(s.seed, string(t)), id)
}

// hashWith is hash given the hash of the type.
func (s *entityStore) hashWith(typeHash uint64, id string) uint64 {
	return maphash.String(s.seed, id) ^ bits.RotateLeft64(typeHash, 17)
}

func (s *entityStore) id(u int32) string {
	start := uint32(0)
	if u > 0 {
		start = s.idEnd[u-1]
	}
	return s.data[start:s.idEnd[u]]
}

func (s *entityStore) uid(u int32) types.EntityUID {
	return types.EntityUID{Type: s.typeNames[s.typeOf[u]], ID: types.String(s.id(u))}
}

// lookup returns uid's number, defined or only named as a parent.
func (s *entityStore) lookup(uid types.EntityUID) (int32, bool) {
	mask := uint64(len(s.slots) - 1)
	for h := s.hash(uid.Type, string(uid.ID)); ; h++ {
		u := s.slots[h&mask] - 1
		if u < 0 {
			return 0, false
		}
		if s.id(u) == string(uid.ID) && s.typeNames[s.typeOf[u]] == uid.Type {
			return u, true
		}
	}
}

// entity returns uid's number if the bundle defines it.
func (s *entityStore) entity(uid types.EntityUID) (int32, bool) {
	u, ok := s.lookup(uid)
	return u, ok && u < s.defined
}

// Len is the number of entities the bundle defines.
func (s *entityStore) Len() int { return int(s.defined) }

// All yields the bundle's entities' UIDs, in no particular order.
func (s *entityStore) All() iter.Seq[types.EntityUID] {
	return func(yield func(types.EntityUID) bool) {
		for u := range s.defined {
			if !yield(s.uid(u)) {
				return
			}
		}
	}
}

// Get returns a bundle entity as written, parents as given: it makes the
// store a types.EntityGetter for what the bundle says, such as screening
// request entities against it. It is not cached: decisions read
// closedEntities instead.
func (s *entityStore) Get(uid types.EntityUID) (types.Entity, bool) {
	u, ok := s.entity(uid)
	if !ok {
		return types.Entity{}, false
	}
	return s.materialise(u, &s.parents), true
}

// materialise builds defined entity u as a cedar-go Entity with the parents
// in parents.
func (s *entityStore) materialise(u int32, parents *runs) types.Entity {
	e, special := s.special[u]
	if !special {
		e = types.Entity{UID: s.uid(u), Attributes: s.record(s.attrs[u]), Tags: s.record(s.tags[u])}
	}
	if list := parents.of(u); len(list) > 0 {
		e.Parents = s.uidSet(list)
	}
	return e
}

func (s *entityStore) uidSet(list []int32) types.EntityUIDSet {
	uids := make([]types.EntityUID, len(list))
	for i, p := range list {
		uids[i] = s.uid(p)
	}
	return types.NewEntityUIDSet(uids...)
}

// record decodes what encode wrote. cedar-go reads its own JSON output
// back as the same values, so that cannot fail either.
func (s *entityStore) record(sp span) types.Record {
	if sp.end == 0 {
		return types.Record{}
	}
	if s.data[sp.off] == tagRecord {
		r := valueReader{data: s.data, at: int(sp.off)}
		r.at++
		return r.record()
	}
	var r types.Record
	if err := r.UnmarshalJSON([]byte(s.data[sp.off:sp.end])); err != nil {
		panic("policystore: stored entity JSON does not decode: " + err.Error())
	}
	return r
}

// Entities returns every bundle entity as written, in a map of its own.
func (s *entityStore) Entities() types.EntityMap {
	m := make(types.EntityMap, s.defined)
	for u := range s.defined {
		m[s.uid(u)] = s.materialise(u, &s.parents)
	}
	return m
}

// closedEntities is the bundle's entities with their ancestor closures as
// parents (see closure.go): the types.EntityGetter decisions read. It is
// one pointer, so it is an interface value without allocating.
type closedEntities struct{ s *entityStore }

func (c closedEntities) Get(uid types.EntityUID) (types.Entity, bool) {
	u, ok := c.s.entity(uid)
	if !ok {
		return types.Entity{}, false
	}
	if e, ok := c.s.cache.get(u); ok {
		return e, true
	}
	e := c.s.materialise(u, &c.s.closure)
	c.s.cache.put(u, e)
	return e, true
}

// ancestors yields a bundle entity's ancestors (none for other UIDs).
func (c closedEntities) ancestors(uid types.EntityUID) iter.Seq[types.EntityUID] {
	return func(yield func(types.EntityUID) bool) {
		u, ok := c.s.entity(uid)
		if !ok {
			return
		}
		for _, a := range c.s.closure.of(u) {
			if !yield(c.s.uid(a)) {
				return
			}
		}
	}
}

// entityCache holds recently materialised entities, one per slot, each slot
// shared by the entities whose numbers hash to it. It is bounded, so the
// heap it adds for the collector to scan does not grow with the bundle;
// concurrent readers race benignly (the last store wins).
type entityCache struct {
	slots []atomic.Pointer[cachedEntity]
	shift uint // Fibonacci hashing: the top bits of u × 2^32/φ
}

type cachedEntity struct {
	u      int32
	entity types.Entity
}

// maxCachedEntities bounds the cache: a few megabytes of materialised
// entities, enough for the principals, groups, actions and resources a
// busy workload keeps reading.
const maxCachedEntities = 1 << 14

func newEntityCache(n int) entityCache {
	logSize := bits.Len(uint(min(n, maxCachedEntities)))
	return entityCache{slots: make([]atomic.Pointer[cachedEntity], 1<<logSize), shift: uint(32 - logSize)}
}

func (c *entityCache) slot(u int32) *atomic.Pointer[cachedEntity] {
	return &c.slots[(uint32(u)*0x9E3779B9)>>c.shift&uint32(len(c.slots)-1)]
}

func (c *entityCache) get(u int32) (types.Entity, bool) {
	if e := c.slot(u).Load(); e != nil && e.u == u {
		return e.entity, true
	}
	return types.Entity{}, false
}

func (c *entityCache) put(u int32, e types.Entity) {
	c.slot(u).Store(&cachedEntity{u: u, entity: e})
}
