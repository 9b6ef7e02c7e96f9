package policystore

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
)

// layeredEntities looks entities up in the bundle first and in the request
// second, so the bundle is authoritative without either map being copied.
type layeredEntities struct {
	bundle  types.EntityMap
	request types.EntityMap
}

func (l layeredEntities) Get(uid types.EntityUID) (types.Entity, bool) {
	if e, ok := l.bundle[uid]; ok {
		return e, true
	}
	e, ok := l.request[uid]
	return e, ok
}

// merge layers the request's entities under the bundle's and reports what
// it had to ignore:
//   - data about an entity the bundle defines (the bundle wins);
//   - action entities (the action hierarchy is the policy author's);
//   - parents that would place the principal, directly or through other
//     request entities, under an entity the bundle defines: a caller cannot
//     add itself to a bundle group or give itself a bundle role.
//
// It may replace entries of req.Entities, which belongs to the request. It
// also returns how to find an entity's ancestors for the policy index, or
// nil when the bundle's own closures answer that.
func (s *Snapshot) merge(req Request) (types.EntityGetter, ancestryFunc, []IgnoredEntity) {
	if len(req.Entities) == 0 {
		return s.closed, nil, nil
	}
	ignored := s.screen(req)
	layered := layeredEntities{bundle: s.closed, request: req.Entities}
	closeRequestEntities(layered)
	return layered, layeredAncestors(layered), ignored
}

// screen removes or trims the request entity data merge must ignore.
func (s *Snapshot) screen(req Request) []IgnoredEntity {
	var ignored []IgnoredEntity
	for _, uid := range sortedUIDs(req.Entities) {
		e := req.Entities[uid]
		if own, ok := s.entities[uid]; ok {
			delete(req.Entities, uid)
			if !own.Equal(e) {
				ignored = append(ignored, IgnoredEntity{UID: uid, Detail: "the policy bundle defines this entity; request data ignored"})
			}
			continue
		}
		if isActionType(uid.Type) {
			delete(req.Entities, uid)
			ignored = append(ignored, IgnoredEntity{UID: uid, Detail: "action entities come from the policy bundle only; request data ignored"})
		}
	}
	return append(ignored, s.detachPrincipal(req)...)
}

// detachPrincipal walks the principal's ancestry through request entities
// and drops every parent edge that points into the bundle.
func (s *Snapshot) detachPrincipal(req Request) []IgnoredEntity {
	var ignored []IgnoredEntity
	seen := map[types.EntityUID]bool{}
	queue := []types.EntityUID{req.Principal}
	for len(queue) > 0 {
		uid := queue[0]
		queue = queue[1:]
		e, ok := req.Entities[uid]
		if !ok || seen[uid] {
			continue
		}
		seen[uid] = true
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
			e.Parents = types.NewEntityUIDSet(kept...)
			req.Entities[uid] = e
		}
	}
	return ignored
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
