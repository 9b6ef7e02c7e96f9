package examples

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// AgentRequest is one of the agents bundle's example requests, as grpcurl
// sends it, with the decision it expects.
type AgentRequest struct {
	Name     string
	Request  *pdpv1.AuthorizeRequest
	Decision pdpv1.Decision
	Reasons  []string // determining policy ids, in order
}

// AgentRequests reads examples/agents/requests: every request that
// requests/expected.json names, sorted by name.
func AgentRequests() ([]AgentRequest, error) {
	dir := Agents()
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
	var out []AgentRequest
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
		out = append(out, AgentRequest{Name: name, Request: req, Decision: pdpv1.Decision(d), Reasons: e.Reasons})
	}
	return out, nil
}
