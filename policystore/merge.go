package policystore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
)

// layeredEntities looks entities up in the bundle first and in the request
// second, so the bundle is authoritative without the bundle's entities being
// copied.
type layeredEntities struct {
	bundle  types.EntityGetter
	request types.EntityMap
}

func (l layeredEntities) Get(uid types.EntityUID) (types.Entity, bool) {
	if e, ok := l.bundle.Get(uid); ok {
		return e, true
	}
	e, ok := l.request[uid]
	return e, ok
}

// withTask is the bundle's entities and a live task grant.
type withTask struct {
	bundle types.EntityGetter
	task   *types.Entity
}

func (w withTask) Get(uid types.EntityUID) (types.Entity, bool) {
	if uid == w.task.UID {
		return *w.task, true
	}
	return w.bundle.Get(uid)
}

// merge layers the request's entities under the bundle's and reports what
// it ignores:
//   - data about an entity the bundle defines (the bundle wins);
//   - action entities (the action hierarchy is the policy author's);
//   - entities of a type the bundle is authoritative for (see
//     Manifest.AuthoritativeTypes): a caller cannot make up a task or a
//     secret the bundle does not know;
//   - entities of req.TaskType: task grants come from the PDP only;
//   - parents that would place the principal, directly or through other
//     request entities, under an entity the bundle defines or of an
//     authoritative type: a caller cannot add itself to a bundle group or
//     give itself a role.
//
// With req.RejectOverrides, anything ignored is an *EntityOverrideError
// instead. The live grant req.Task, if any, is added as the PDP's own. The request's map is read, never modified. merge also returns
// how to find an entity's ancestors for the policy index, or nil when the
// bundle's own closures answer that. It fails with ErrInvalidRequest when
// the request's entity hierarchy is deeper than MaxRequestEntityDepth, and
// with ctx.Err() when ctx ends first.
func (s *Snapshot) merge(ctx context.Context, req Request) (types.EntityGetter, ancestryFunc, []IgnoredEntity, error) {
	if len(req.Entities) == 0 {
		if req.Task != nil {
			// A grant alone has no parents: nothing to screen or close,
			// and the bundle's closures still answer every ancestry.
			return withTask{bundle: s.closed, task: req.Task}, nil, nil, nil
		}
		return s.closed, nil, nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	used, ignored := s.screen(req)
	if len(ignored) > 0 && req.RejectOverrides {
		return nil, nil, nil, &EntityOverrideError{Ignored: ignored}
	}
	if req.Task != nil {
		// The grant is the PDP's: screen kept every request entity of its
		// type out, and activation refused bundles that define one.
		used[req.Task.UID] = *req.Task
	}
	layered := layeredEntities{bundle: s.closed, request: used}
	if err := closeRequestEntities(ctx, layered); err != nil {
		return nil, nil, nil, err
	}
	return layered, layeredAncestors(layered), ignored, nil
}

// screen returns the request entities merge uses, in a map of their own,
// and what it ignored.
func (s *Snapshot) screen(req Request) (types.EntityMap, []IgnoredEntity) {
	used := make(types.EntityMap, len(req.Entities))
	var ignored []IgnoredEntity
	for _, uid := range sortedUIDs(req.Entities) {
		e := req.Entities[uid]
		if own, ok := s.entities.Get(uid); ok {
			if !own.Equal(e) {
				ignored = append(ignored, IgnoredEntity{UID: uid, Detail: "the policy bundle defines this entity; request data ignored"})
			}
			continue
		}
		if isActionType(uid.Type) {
			ignored = append(ignored, IgnoredEntity{UID: uid, Detail: "action entities come from the policy bundle only; request data ignored"})
			continue
		}
		if uid.Type == req.TaskType && req.TaskType != "" {
			ignored = append(ignored, IgnoredEntity{UID: uid, Detail: fmt.Sprintf(
				"entities of type %s are task grants: they come from the PDP's grant store only; request data ignored", uid.Type)})
			continue
		}
		if s.authoritative[uid.Type] {
			ignored = append(ignored, IgnoredEntity{UID: uid, Detail: fmt.Sprintf(
				"the policy bundle is authoritative for type %s: its entities come from the bundle only; request data ignored", uid.Type)})
			continue
		}
		used[uid] = e
	}
	return used, append(ignored, s.detachPrincipal(req.Principal, req.TaskType, used)...)
}

// detachPrincipal walks the principal's ancestry, through the bundle's
// entities and the used request entities, and drops every edge from a
// request entity into the bundle, or to an entity of an authoritative type
// (which the bundle then does not define: policies may still name it).
func (s *Snapshot) detachPrincipal(principal types.EntityUID, taskType types.EntityType, used types.EntityMap) []IgnoredEntity {
	var ignored []IgnoredEntity
	seen := map[types.EntityUID]bool{}
	queue := []types.EntityUID{principal}
	for len(queue) > 0 {
		uid := queue[0]
		queue = queue[1:]
		if seen[uid] {
			continue
		}
		seen[uid] = true
		if own, ok := s.entities.Get(uid); ok {
			queue = slices.AppendSeq(queue, own.Parents.All())
			continue
		}
		e, ok := used[uid]
		if !ok {
			continue
		}
		var kept []types.EntityUID
		for _, parent := range slices.SortedFunc(e.Parents.All(), CompareUIDs) {
			if _, bundleDefined := s.entities.entity(parent); bundleDefined {
				ignored = append(ignored, IgnoredEntity{UID: uid, Detail: fmt.Sprintf(
					"parent %s ignored: a request cannot place the principal under an entity of the policy bundle", parent)})
				continue
			}
			if s.authoritative[parent.Type] || (parent.Type == taskType && taskType != "") {
				ignored = append(ignored, IgnoredEntity{UID: uid, Detail: fmt.Sprintf(
					"parent %s ignored: the policy bundle is authoritative for type %s, so a request cannot place the principal under one", parent, parent.Type)})
				continue
			}
			kept = append(kept, parent)
			queue = append(queue, parent)
		}
		if len(kept) != e.Parents.Len() {
			e.Parents = types.NewEntityUIDSet(kept...)
			used[uid] = e
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
	slices.SortFunc(uids, CompareUIDs)
	return uids
}
