package policystore

import "github.com/cedar-policy/cedar-go/types"

// closeEntities is m with each entity's parents replaced by its ancestor
// closure, as decisions see the bundle's entities.
func closeEntities(m types.EntityMap) types.EntityMap {
	closed := closedEntities{newEntityStore(m)}
	out := make(types.EntityMap, len(m))
	for uid := range m {
		out[uid], _ = closed.Get(uid)
	}
	return out
}
