package policystore

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
)

// layeredEntities looks entities up in the bundle first, then in the
// request's entities as merge corrected them, then in the request as given,
// so the bundle is authoritative without any map being copied.
type layeredEntities struct {
	bundle    types.EntityMap
	corrected types.EntityMap // request entities with parent edges dropped
	request   types.EntityMap
}

func (l layeredEntities) Get(uid types.EntityUID) (types.Entity, bool) {
	if e, ok := l.bundle[uid]; ok {
		return e, true
	}
	if isActionType(uid.Type) {
		return types.Entity{}, false
	}
	if e, ok := l.corrected[uid]; ok {
		return e, true
	}
	e, ok := l.request[uid]
	return e, ok
}

// merge layers the request's entities under the bundle's and reports what
// it ignores:
//   - data about an entity the bundle defines (the bundle wins);
//   - action entities (the action hierarchy is the policy author's);
//   - parents that would place the principal, directly or through other
//     request entities, under an entity the bundle defines: a caller cannot
//     add itself to a bundle group or give itself a bundle role.
//
// The request's map is read, never modified.
func (s *Snapshot) merge(req Request) (types.EntityGetter, []IgnoredEntity) {
	if len(req.Entities) == 0 {
		return s.entities, nil
	}
	var ignored []IgnoredEntity
	for _, uid := range sortedUIDs(req.Entities) {
		if own, ok := s.entities[uid]; ok {
			if !own.Equal(req.Entities[uid]) {
				ignored = append(ignored, IgnoredEntity{UID: uid, Detail: "the policy bundle defines this entity; request data ignored"})
			}
			continue
		}
		if isActionType(uid.Type) {
			ignored = append(ignored, IgnoredEntity{UID: uid, Detail: "action entities come from the policy bundle only; request data ignored"})
		}
	}
	corrected, detached := s.detachPrincipal(req)
	ignored = append(ignored, detached...)
	return layeredEntities{bundle: s.entities, corrected: corrected, request: req.Entities}, ignored
}

// detachPrincipal walks the principal's ancestry through request entities
// and drops every parent edge that points into the bundle.
func (s *Snapshot) detachPrincipal(req Request) (types.EntityMap, []IgnoredEntity) {
	var (
		corrected types.EntityMap
		ignored   []IgnoredEntity
		seen      = map[types.EntityUID]bool{}
		queue     = []types.EntityUID{req.Principal}
	)
	for len(queue) > 0 {
		uid := queue[0]
		queue = queue[1:]
		if seen[uid] || isActionType(uid.Type) {
			continue
		}
		seen[uid] = true
		if _, bundleDefined := s.entities[uid]; bundleDefined {
			continue
		}
		e, ok := req.Entities[uid]
		if !ok {
			continue
		}
		var kept []types.EntityUID
		for parent := range e.Parents.All() {
			if _, bundleDefined := s.entities[parent]; bundleDefined {
				ignored = append(ignored, IgnoredEntity{UID: uid, Detail: fmt.Sprintf(
					"parent %s ignored: a request cannot place the principal under an entity of the policy bundle", parent)})
				continue
			}
			kept = append(kept, parent)
			queue = append(queue, parent)
		}
		if len(kept) != e.Parents.Len() {
			if corrected == nil {
				corrected = types.EntityMap{}
			}
			e.Parents = types.NewEntityUIDSet(kept...)
			corrected[uid] = e
		}
	}
	return corrected, ignored
}

func isActionType(t types.EntityType) bool {
	return t == "Action" || strings.HasSuffix(string(t), "::Action")
}

func sortedUIDs(m types.EntityMap) []types.EntityUID {
	uids := make([]types.EntityUID, 0, len(m))
	for uid := range m {
		uids = append(uids, uid)
	}
	slices.SortFunc(uids, func(a, b types.EntityUID) int { return strings.Compare(a.String(), b.String()) })
	return uids
}
