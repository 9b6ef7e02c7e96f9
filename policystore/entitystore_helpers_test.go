package policystore

import (
	"maps"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// newSnapshot is buildSnapshot of policies by id, as tests build them.
func newSnapshot(revision, source string, policies map[cedar.PolicyID]*cedar.Policy, entities types.EntityMap, sch *resolved.Schema) *Snapshot {
	ids := slices.Sorted(maps.Keys(policies))
	list := make([]*cedar.Policy, len(ids))
	for i, id := range ids {
		list[i] = policies[id]
	}
	return buildSnapshot(revision, source, ids, list, mustStore(entities), sch)
}

// mustStore is newEntityStore of test entities, far below its limit.
func mustStore(m types.EntityMap) *entityStore {
	s, err := newEntityStore(m)
	if err != nil {
		panic(err)
	}
	return s
}

// closeEntities is m with each entity's parents replaced by its ancestor
// closure, as decisions see the bundle's entities.
func closeEntities(m types.EntityMap) types.EntityMap {
	closed := closedEntities{mustStore(m)}
	out := make(types.EntityMap, len(m))
	for uid := range m {
		out[uid], _ = closed.Get(uid)
	}
	return out
}
