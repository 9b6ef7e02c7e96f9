package policystore

import (
	"slices"

	"github.com/cedar-policy/cedar-go/types"
)

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
// on a resource of type resource could name, sorted by CompareUIDs. With a schema these
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
