// Package cedarcorpus reads the Cedar conformance corpus that ships inside
// the cedar-go module, for tests that hold intentpdp's decisions against it.
package cedarcorpus

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Test is one corpus test: a policy set, entities and a schema, with
// requests and the decisions Cedar's reference implementation made.
type Test struct {
	Name           string
	Policies       []byte
	Entities       []byte
	Schema         []byte
	ShouldValidate bool
	Requests       []Request
}

// Request is one corpus request and its expected outcome.
type Request struct {
	Description string
	Principal   types.EntityUID
	Action      types.EntityUID
	Resource    types.EntityUID
	Context     types.Record
	Allow       bool
	Reasons     []string // policy ids, sorted
	Errors      []string // policy ids, sorted
}

// Load reads every test of the corpus archive in the cedar-go module that
// this module depends on.
func Load() ([]Test, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cedar-policy/cedar-go").Output()
	if err != nil {
		return nil, fmt.Errorf("locate cedar-go module: %w", err)
	}
	archive := filepath.Join(strings.TrimSpace(string(out)), "corpus-tests.tar.gz")
	files, err := readTarGz(archive)
	if err != nil {
		return nil, err
	}
	var tests []Test
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".entities.json") {
			continue
		}
		t, err := parseTest(name, files)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		tests = append(tests, t)
	}
	return tests, nil
}

type rawTest struct {
	Schema         string `json:"schema"`
	Policies       string `json:"policies"`
	ShouldValidate bool   `json:"shouldValidate"`
	Entities       string `json:"entities"`
	Requests       []struct {
		Desc      string           `json:"description"`
		Principal types.EntityUID  `json:"principal"`
		Action    types.EntityUID  `json:"action"`
		Resource  types.EntityUID  `json:"resource"`
		Context   types.Record     `json:"context"`
		Decision  cedar.Decision   `json:"decision"`
		Reasons   []cedar.PolicyID `json:"reason"`
		Errors    []cedar.PolicyID `json:"errors"`
	} `json:"requests"`
}

func parseTest(name string, files map[string][]byte) (Test, error) {
	var raw rawTest
	if err := json.Unmarshal(files[name], &raw); err != nil {
		return Test{}, err
	}
	t := Test{
		Name:           strings.TrimSuffix(filepath.Base(name), ".json"),
		Policies:       files[raw.Policies],
		Entities:       files[raw.Entities],
		Schema:         files[raw.Schema],
		ShouldValidate: raw.ShouldValidate,
	}
	for _, r := range raw.Requests {
		t.Requests = append(t.Requests, Request{
			Description: r.Desc,
			Principal:   r.Principal,
			Action:      r.Action,
			Resource:    r.Resource,
			Context:     r.Context,
			Allow:       bool(r.Decision),
			Reasons:     sortedIDs(r.Reasons),
			Errors:      sortedIDs(r.Errors),
		})
	}
	return t, nil
}

// AnnotatedPolicies returns the test's policy text with each policy given an
// explicit @id("policyN"), N counting from 0 in file order: the ids Cedar's
// reference implementation gave them.
func (t Test) AnnotatedPolicies() ([]byte, error) {
	list, err := cedar.NewPolicyListFromBytes("policies.cedar", t.Policies)
	if err != nil {
		return nil, err
	}
	text := t.Policies
	for i := len(list) - 1; i >= 0; i-- {
		off := list[i].Position().Offset
		text = slices.Concat(text[:off:off], []byte(fmt.Sprintf("@id(%q)\n", fmt.Sprintf("policy%d", i))), text[off:])
	}
	return text, nil
}

func sortedIDs(ids []cedar.PolicyID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	slices.Sort(out)
	return out
}

func readTarGz(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[h.Name] = b
	}
}
