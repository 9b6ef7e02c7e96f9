// Package agentrequests reads the example requests of the agents bundle
// (examples/agents/requests) with the decisions they expect, for the tests
// and benchmarks that send them.
package agentrequests

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/intentpdp/intentpdp/examples"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// Request is one of the agents bundle's example requests, as grpcurl
// sends it, with the decision it expects.
type Request struct {
	Name     string
	Request  *pdpv1.AuthorizeRequest
	Decision pdpv1.Decision
	Reasons  []string // determining policy ids, in order
}

// Load reads examples/agents/requests: every request that
// requests/expected.json names, sorted by name.
func Load() ([]Request, error) {
	dir := examples.Agents()
	data, err := fs.ReadFile(dir, "requests/expected.json")
	if err != nil {
		return nil, err
	}
	var expected map[string]struct {
		Decision string   `json:"decision"`
		Reasons  []string `json:"reasons"`
	}
	if err := json.Unmarshal(data, &expected); err != nil {
		return nil, fmt.Errorf("requests/expected.json: %w", err)
	}
	var out []Request
	for _, name := range slices.Sorted(maps.Keys(expected)) {
		raw, err := fs.ReadFile(dir, "requests/"+name+".json")
		if err != nil {
			return nil, err
		}
		req := &pdpv1.AuthorizeRequest{}
		if err := protojson.Unmarshal(raw, req); err != nil {
			return nil, fmt.Errorf("requests/%s.json: %w", name, err)
		}
		e := expected[name]
		d, ok := pdpv1.Decision_value[e.Decision]
		if !ok || !strings.HasPrefix(e.Decision, "DECISION_") {
			return nil, fmt.Errorf("requests/expected.json: %s: decision %q", name, e.Decision)
		}
		out = append(out, Request{Name: name, Request: req, Decision: pdpv1.Decision(d), Reasons: e.Reasons})
	}
	return out, nil
}
