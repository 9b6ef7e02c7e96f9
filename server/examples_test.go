package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

type exampleCase struct {
	request  *pdpv1.AuthorizeRequest
	decision pdpv1.Decision
	reasons  []string
}

// exampleCases reads examples/agents/requests: protojson requests, as
// grpcurl sends them, and the decisions expected of them.
func exampleCases(t *testing.T) map[string]exampleCase {
	t.Helper()
	dir := filepath.Join("..", "examples", "agents", "requests")
	data, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]struct {
		Decision string   `json:"decision"`
		Reasons  []string `json:"reasons"`
	}
	if err := json.Unmarshal(data, &expected); err != nil {
		t.Fatal(err)
	}
	cases := map[string]exampleCase{}
	for name, e := range expected {
		raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		req := &pdpv1.AuthorizeRequest{}
		if err := protojson.Unmarshal(raw, req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cases[name] = exampleCase{request: req, decision: pdpv1.Decision(pdpv1.Decision_value[e.Decision]), reasons: e.Reasons}
	}
	if len(cases) < 5 {
		t.Fatalf("only %d example requests", len(cases))
	}
	return cases
}
