package policystore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// TestsDir holds a bundle's test cases: every tests/*.json file is a JSON
// array of Case, run against the compiled snapshot before it is activated.
const TestsDir = "tests/"

// Case is one bundle test case: a request and the decision the bundle must
// make for it. Values use Cedar's JSON forms: entity references are
// {"type": "Agent", "id": "planner"}; context and intent attributes are
// Cedar JSON records ({"__entity": …} and {"__extn": …} for typed values).
type Case struct {
	// Name identifies the case in failure messages.
	Name      string          `json:"name"`
	Principal types.EntityUID `json:"principal"`
	// Action is the full action entity, e.g. {"type":"Action","id":"read"}.
	Action   types.EntityUID `json:"action"`
	Resource types.EntityUID `json:"resource"`
	Context  *types.Record   `json:"context,omitempty"`
	Intent   CaseIntent      `json:"intent"`
	// Now is the context.now of the request (RFC 3339), fixed so that a
	// case means the same thing whenever it runs.
	Now time.Time `json:"now"`
	// Entities are request-scoped entities, Cedar's entity JSON array.
	Entities types.EntityMap `json:"entities,omitempty"`
	// Task is a live task grant, as Cedar entity JSON: the case is decided
	// as the PDP decides a request whose intent.task_id names it (the
	// grant is context.task, entities of its type come from it only).
	Task   *types.Entity   `json:"task,omitempty"`
	Expect CaseExpectation `json:"expect"`
}

// CaseIntent is a case's intent, exposed to policies as context.intent.
type CaseIntent struct {
	Purpose    string        `json:"purpose,omitempty"`
	TaskID     string        `json:"task_id,omitempty"`
	Tool       string        `json:"tool,omitempty"`
	Attributes *types.Record `json:"attributes,omitempty"`
}

// CaseExpectation is what a case requires of the decision.
type CaseExpectation struct {
	// Decision is "allow" or "deny".
	Decision string `json:"decision"`
	// Reasons, when present, must equal the determining policy ids exactly
	// (in any order); an empty list requires that none determined it.
	Reasons *[]string `json:"reasons,omitempty"`
}

// ParseCases decodes one tests/*.json file.
func ParseCases(data []byte) ([]Case, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cases []Case
	if err := dec.Decode(&cases); err != nil {
		return nil, err
	}
	for i, c := range cases {
		if c.Name == "" {
			return nil, fmt.Errorf("case %d: name is required", i)
		}
		if c.Expect.Decision != "allow" && c.Expect.Decision != "deny" {
			return nil, fmt.Errorf("case %q: expect.decision must be \"allow\" or \"deny\", not %q", c.Name, c.Expect.Decision)
		}
		if c.Principal.Type == "" || c.Action.Type == "" || c.Resource.Type == "" {
			return nil, fmt.Errorf("case %q: principal, action and resource are required", c.Name)
		}
		if c.Now.IsZero() {
			return nil, fmt.Errorf("case %q: now is required", c.Name)
		}
	}
	return cases, nil
}

// RunCases runs every test case in b against snap and returns a problem per
// unreadable file or failing case.
func RunCases(b *Bundle, snap *Snapshot) []Problem {
	var problems []Problem
	for _, file := range b.paths() {
		if !strings.HasPrefix(file, TestsDir) || !strings.HasSuffix(file, ".json") {
			continue
		}
		cases, err := ParseCases(b.Files[file])
		if err != nil {
			problems = append(problems, Problem{File: file, Message: err.Error()})
			continue
		}
		for _, c := range cases {
			if msg := runCase(snap, c); msg != "" {
				problems = append(problems, Problem{File: file, Message: fmt.Sprintf("case %q: %s", c.Name, msg)})
			}
		}
	}
	return problems
}

// runCase returns why c fails against snap, or "" when it passes.
func runCase(snap *Snapshot, c Case) string {
	d, err := snap.Decide(context.Background(), c.request())
	if err != nil {
		return fmt.Sprintf("not evaluated: %v", err)
	}
	got := "deny"
	if d.Allow {
		got = "allow"
	}
	ids := d.PolicyIDs()
	if got != c.Expect.Decision {
		return fmt.Sprintf("expected %s, got %s (reasons %v, errors %v)", c.Expect.Decision, got, ids, d.Errors)
	}
	if c.Expect.Reasons != nil {
		want := slices.Sorted(slices.Values(*c.Expect.Reasons))
		if !slices.Equal(want, slices.Sorted(slices.Values(ids))) {
			return fmt.Sprintf("expected reasons %v, got %v", want, ids)
		}
	}
	return ""
}

// Request is the request c decides.
func (c Case) Request() Request { return c.request() }

func (c Case) request() Request {
	var fields types.RecordMap
	if c.Context != nil {
		fields = c.Context.Map()
	}
	intent := Intent{Purpose: c.Intent.Purpose, TaskID: c.Intent.TaskID, Tool: c.Intent.Tool}
	if c.Intent.Attributes != nil {
		intent.Attributes = c.Intent.Attributes.Map()
	}
	req := Request{
		Principal: c.Principal,
		Action:    c.Action,
		Resource:  c.Resource,
		Intent:    intent,
		Context:   fields,
		Now:       c.Now,
		Entities:  c.Entities,
	}
	if c.Task != nil {
		req.Task, req.TaskType, req.TaskState = c.Task, c.Task.UID.Type, "live"
	}
	return req
}
