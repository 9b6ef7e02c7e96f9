// Package agentgrants creates the example bundle's task grants
// (examples/agents/grants/*.json, GrantRequests as grpcurl sends them)
// through the grant API, for the tests that decide the example requests.
package agentgrants

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/intentpdp/intentpdp/examples"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grantapi"
	"github.com/intentpdp/intentpdp/server/grants"
)

// Requests reads examples/agents/grants, sorted by file name.
func Requests() ([]*pdpv1.GrantRequest, error) {
	dir := examples.Agents()
	names, err := fs.Glob(dir, "grants/*.json")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []*pdpv1.GrantRequest
	for _, name := range names {
		raw, err := fs.ReadFile(dir, name)
		if err != nil {
			return nil, err
		}
		req := &pdpv1.GrantRequest{}
		if err := protojson.Unmarshal(raw, req); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, req)
	}
	return out, nil
}

// Create grants every example grant in store, each authorized by eng
// (which must decide against the example bundle).
func Create(ctx context.Context, eng *engine.Engine, store *grants.Store) error {
	reqs, err := Requests()
	if err != nil {
		return err
	}
	api := grantapi.New(eng, store, engine.DefaultLimits, slog.New(slog.DiscardHandler))
	for _, r := range reqs {
		if _, err := api.Grant(ctx, r); err != nil {
			return fmt.Errorf("grant %s: %w", r.GetTaskId(), err)
		}
	}
	return nil
}
