package policystore

import (
	"context"
	"fmt"
	"maps"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/batch"
)

// CouldAllow reports whether some request that differs from req only in
// the values of the context keys named by unknown could be allowed. It is
// a sound over-approximation, computed by cedar-go's partial evaluation
// (x/exp/batch with the unknown keys ignored): a permit condition that
// reads an unknown key is dropped (it might hold), a forbid that reads one
// is dropped (it might not hold). So when CouldAllow is false every such
// request is denied; when it is true some may still all be denied (a
// permit whose condition no value satisfies). Log-only policies never
// count, as in Decide. The MCP gateway lists a tool when a call of it
// could be allowed with its arguments (context.input) unknown.
func (s *Snapshot) CouldAllow(ctx context.Context, req Request, unknown ...types.String) (bool, error) {
	cedarCtx, err := req.CedarContext()
	if err != nil {
		return false, err
	}
	fields := maps.Clone(cedarCtx.Map())
	if fields == nil {
		fields = types.RecordMap{}
	}
	for _, k := range unknown {
		fields[k] = batch.Ignore()
	}
	entities, ancestors, _, err := s.merge(ctx, req)
	if err != nil {
		return false, err
	}
	sc := getDecideScratch()
	defer sc.release()
	candidates := s.candidates(sc, req, ancestors)
	if s.logOnly != nil {
		candidates, _ = s.splitLogOnly(sc, candidates)
	}
	breq := batch.Request{
		Principal: req.Principal,
		Action:    req.Action,
		Resource:  req.Resource,
		Context:   types.NewRecord(fields),
	}
	var allow bool
	err = batch.Authorize(ctx, sc.selection(s.policies, candidates), entities, breq, func(r batch.Result) error {
		allow = r.Decision == cedar.Allow
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("partial evaluation: %w", err)
	}
	return allow, nil
}
