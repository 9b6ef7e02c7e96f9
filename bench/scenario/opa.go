package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/intentpdp/intentpdp/policystore"
)

// The scenario written for Open Policy Agent, so that the same decisions
// can be timed on both engines: a Rego policy with one rule per Cedar
// policy, and a data document with each bundle entity's ancestors. Both
// read the AuthZEN evaluation itself as OPA's input, so one request body
// serves both servers.

// RegoPackage is the Rego package of the policy; its decision is
// data.<RegoPackage>.allow.
const RegoPackage = "scenario"

// regoPrelude states Cedar's semantics in Rego: allow when a permit
// applies and no forbid does; `in` is the entity itself or one of its
// ancestors in the bundle; the intent's fields default to "".
const regoPrelude = `package ` + RegoPackage + `

default allow := false

allow if {
	permit
	not forbid
}

principal := concat("::", [input.subject.type, input.subject.id])

resource := concat("::", [input.resource.type, input.resource.id])

action := concat("::", ["Action", input.action.name])

purpose := object.get(input.action, ["properties", "purpose"], "")

task_id := object.get(input.action, ["properties", "task_id"], "")

tool := object.get(input.action, ["properties", "tool"], "")

principal_in contains principal

principal_in contains a if some a in data.entities[principal]

resource_in contains resource

resource_in contains a if some a in data.entities[resource]

action_in contains action

action_in contains a if some a in data.entities[action]

# global-suspended
forbid if input.context.suspended == true

approved if {
	task_id != ""
	input.context.approved == true
}
`

// Rego is the scenario's policy in Rego (OPA v1 syntax): the rules of
// tenantPolicies, one per Cedar policy and in the same order.
func (s *Scenario) Rego() []byte {
	var w bytes.Buffer
	w.WriteString(regoPrelude)
	for t := range s.Tenants {
		fmt.Fprintf(&w, `
# t%[1]d-read
permit if {
	principal_in["Tenant::t%[1]d"]
	action_in["Action::readActions"]
	resource_in["Tenant::t%[1]d"]
	purpose != ""
}

# t%[1]d-tools
permit if {
	principal_in["Team::t%[1]d-dev"]
	input.action.name == "call_tool"
	input.resource.type == "Tool"
	resource_in["Tenant::t%[1]d"]
	is_number(input.context.risk)
	input.context.risk < 5
}

# t%[1]d-deploy-guard
forbid if {
	input.action.name == "call_tool"
	input.resource.type == "Tool"
	input.resource.id == "t%[1]d-deploy"
	not approved
}

# t%[1]d-admin
permit if {
	input.subject.type == "Agent"
	input.subject.id == "t%[1]d-admin"
	resource_in["Tenant::t%[1]d"]
}

# t%[1]d-archive
forbid if {
	principal_in["Tenant::t%[1]d"]
	input.action.name == "delete"
	resource_in["Folder::t%[1]d-archive"]
}
`, t)
		for k := range writers {
			fmt.Fprintf(&w, `
# t%[1]d-write-%[2]d
permit if {
	input.subject.type == "Agent"
	input.subject.id == "t%[1]d-a%[2]d"
	input.action.name == "write"
	resource_in["Folder::t%[1]d-f%[2]d"]
	tool == "editor"
}
`, t, k)
		}
	}
	return w.Bytes()
}

// OPAData is the data document the Rego policy reads: {"entities":
// {"Type::id": [ancestors, as "Type::id", sorted]}} for every entity of
// the bundle. The ancestors are closed at write time, as intentpdp closes
// them at activation, so neither engine walks the hierarchy per request.
func (s *Scenario) OPAData() ([]byte, error) {
	var ents []struct {
		UID     struct{ Type, ID string } `json:"uid"`
		Parents []struct{ Type, ID string }
	}
	if err := json.Unmarshal(s.Bundle.Files[policystore.EntitiesFile], &ents); err != nil {
		return nil, fmt.Errorf("the scenario's entities: %w", err)
	}
	parents := make(map[string][]string, len(ents))
	for _, e := range ents {
		key := e.UID.Type + "::" + e.UID.ID
		parents[key] = []string{}
		for _, p := range e.Parents {
			parents[key] = append(parents[key], p.Type+"::"+p.ID)
		}
	}
	ancestors := make(map[string][]string, len(parents))
	for key := range parents {
		ancestors[key] = closure(parents, key)
	}
	return json.Marshal(map[string]any{"entities": ancestors})
}

// closure is every ancestor of key, sorted, following parents breadth
// first and stopping at entities already seen, so cycles end.
func closure(parents map[string][]string, key string) []string {
	seen := map[string]bool{key: true}
	out := []string{}
	for queue := slices.Clone(parents[key]); len(queue) > 0; queue = queue[1:] {
		if p := queue[0]; !seen[p] {
			seen[p] = true
			out = append(out, p)
			queue = append(queue, parents[p]...)
		}
	}
	slices.Sort(out)
	return out
}
