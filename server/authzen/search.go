package authzen

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// Page sizes of the search APIs.
const (
	defaultPageLimit = 50
	maxPageLimit     = 1000
)

// searchKind is what differs between the subject, resource and action
// searches: which member is searched for, where its candidates come from,
// how a candidate fills the request, and how a hit is reported. The search
// request is converted once, filled with the first candidate; swap then
// puts each further candidate into the converted request.
type searchKind struct {
	name       string
	check      func(searchRequest) error
	candidates func(*policystore.Snapshot, searchRequest) []types.EntityUID
	fill       func(evaluation, types.EntityUID) evaluation
	swap       func(policystore.Request, types.EntityUID) policystore.Request
	result     func(types.EntityUID) any
}

// subjectSearch: which subjects of the asked type may do this action on
// this resource. Candidates are the bundle's entities of that type.
var subjectSearch = searchKind{
	name: "subject",
	check: func(r searchRequest) error {
		return errors.Join(required(r.Subject != nil && r.Subject.Type != "", "subject.type"),
			required(r.Action != nil, "action"), required(r.Resource != nil, "resource"))
	},
	candidates: func(s *policystore.Snapshot, r searchRequest) []types.EntityUID {
		return s.EntitiesOfType(types.EntityType(r.Subject.Type))
	},
	fill: func(e evaluation, uid types.EntityUID) evaluation {
		e.Subject = &entity{Type: string(uid.Type), ID: string(uid.ID)}
		return e
	},
	swap: func(r policystore.Request, uid types.EntityUID) policystore.Request {
		r.Principal = uid
		return r
	},
	result: entityResult,
}

// resourceSearch: which resources of the asked type this subject may do
// this action on. Candidates are the bundle's entities of that type.
var resourceSearch = searchKind{
	name: "resource",
	check: func(r searchRequest) error {
		return errors.Join(required(r.Subject != nil, "subject"),
			required(r.Action != nil, "action"), required(r.Resource != nil && r.Resource.Type != "", "resource.type"))
	},
	candidates: func(s *policystore.Snapshot, r searchRequest) []types.EntityUID {
		return s.EntitiesOfType(types.EntityType(r.Resource.Type))
	},
	fill: func(e evaluation, uid types.EntityUID) evaluation {
		e.Resource = &entity{Type: string(uid.Type), ID: string(uid.ID), Properties: e.Resource.Properties}
		return e
	},
	swap: func(r policystore.Request, uid types.EntityUID) policystore.Request {
		// The resource's properties, if any, move to the new candidate.
		if e, ok := r.Entities[r.Resource]; ok {
			ents := maps.Clone(r.Entities)
			delete(ents, r.Resource)
			e.UID = uid
			ents[uid] = e
			r.Entities = ents
		}
		r.Resource = uid
		return r
	},
	result: entityResult,
}

// actionSearch: which actions this subject may do on this resource, e.g.
// the tools an agent may call. Candidates are the actions the bundle
// knows that apply to the subject's and the resource's types.
var actionSearch = searchKind{
	name: "action",
	check: func(r searchRequest) error {
		return errors.Join(required(r.Subject != nil, "subject"), required(r.Resource != nil, "resource"))
	},
	candidates: func(s *policystore.Snapshot, r searchRequest) []types.EntityUID {
		var out []types.EntityUID
		for _, a := range s.Actions(types.EntityType(r.Subject.Type), types.EntityType(r.Resource.Type)) {
			if a.Type == "Action" { // AuthZEN names actions; namespaced ones have no name here
				out = append(out, a)
			}
		}
		return out
	},
	fill: func(e evaluation, uid types.EntityUID) evaluation {
		var props map[string]any
		if e.Action != nil {
			props = e.Action.Properties
		}
		e.Action = &action{Name: string(uid.ID), Properties: props}
		return e
	},
	swap: func(r policystore.Request, uid types.EntityUID) policystore.Request {
		r.Action = uid
		return r
	},
	result: func(uid types.EntityUID) any { return map[string]string{"name": string(uid.ID)} },
}

func entityResult(uid types.EntityUID) any {
	return map[string]string{"type": string(uid.Type), "id": string(uid.ID)}
}

func required(present bool, member string) error {
	if present {
		return nil
	}
	return engine.Invalid("%s is required", member)
}

// search answers a search by evaluating each candidate, in a stable order,
// until a page is full. The page token records the snapshot revision and
// where to resume, so a later page is refused if the policies changed in
// between rather than silently skipping or repeating results.
func (h *Handler) search(k searchKind) endpoint {
	return func(r *http.Request) (any, error) {
		var req searchRequest
		if err := h.decode(r, &req); err != nil {
			return nil, err
		}
		if err := k.check(req); err != nil {
			return nil, err
		}
		p, err := h.engine.Pin()
		if err != nil {
			return nil, err
		}
		snap := p.Snapshot()
		limit, offset, err := page(req.Page, p.Revision())
		if err != nil {
			return nil, err
		}
		cands := k.candidates(snap, req)
		out := searchResponse{Results: []any{}}
		var base policystore.Request
		if offset < len(cands) {
			if base, err = h.request(k.fill(req.evaluation, cands[offset])); err != nil {
				return nil, fmt.Errorf("%s search: %w", k.name, err)
			}
		}
		ctx, err := tokenContext(r.Context(), req.evaluation)
		if err != nil {
			return nil, err
		}
		i := offset
		for ; i < len(cands) && len(out.Results) < limit; i++ {
			d, err := h.evaluate(ctx, p, k.swap(base, cands[i]))
			if err != nil {
				return nil, fmt.Errorf("%s search: %w", k.name, err)
			}
			if d.Decision {
				out.Results = append(out.Results, k.result(cands[i]))
			}
		}
		out.Page.Count = len(out.Results)
		if i < len(cands) {
			out.Page.NextToken = pageToken(snap.Revision(), i)
		}
		return out, nil
	}
}

func page(p *pageRequest, revision string) (limit, offset int, err error) {
	if p == nil {
		return defaultPageLimit, 0, nil
	}
	limit = p.Limit
	switch {
	case limit < 0:
		return 0, 0, engine.Invalid("page.limit must not be negative")
	case limit == 0:
		limit = defaultPageLimit
	case limit > maxPageLimit:
		limit = maxPageLimit
	}
	if p.Token == "" {
		return limit, 0, nil
	}
	offset, err = parsePageToken(p.Token, revision)
	return limit, offset, err
}

func pageToken(revision string, offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + ":" + revision))
}

func parsePageToken(tok, revision string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, engine.Invalid("page.token is not a token this PDP issued")
	}
	off, rev, ok := strings.Cut(string(raw), ":")
	n, err := strconv.Atoi(off)
	if !ok || err != nil || n < 0 {
		return 0, engine.Invalid("page.token is not a token this PDP issued")
	}
	if rev != revision {
		return 0, engine.Invalid("page.token belongs to policy revision %q, now %q: restart the search", rev, revision)
	}
	return n, nil
}
