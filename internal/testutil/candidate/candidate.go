// Package candidate makes candidate bundles from the agents example, for
// the tests of shadow bundles, replay and diff: one that flips exactly one
// known decision, and one that differs in text but not in effect.
package candidate

import (
	"strings"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
)

// FlippedPolicy is the policy Flipped adds; FlippedCase and FlippedRequest
// are the bundle test case and the example request it turns from allow
// into deny, the only ones it changes.
const (
	FlippedPolicy  = "readme-frozen"
	FlippedCase    = "platform agent reads the payments README"
	FlippedRequest = "read-readme-allowed"
)

// Active returns the agents example bundle.
func Active() (*policystore.Bundle, error) { return policystore.LoadFS(examples.Agents()) }

// Flipped returns the agents example with one more forbid, FlippedPolicy,
// which denies the code reviewer reading the payments README, and its test
// case updated to expect that.
func Flipped() (*policystore.Bundle, error) {
	return edit("agents-candidate-flipped", `
@id("`+FlippedPolicy+`")
@reason("the payments README is frozen")
forbid (
  principal == Agent::"code-reviewer",
  action == Action::"read_file",
  resource == Document::"payments-api/README.md"
);
`, `"expect": {"decision": "allow", "reasons": ["platform-reads-payments"]}`,
		`"expect": {"decision": "deny", "reasons": ["`+FlippedPolicy+`"]}`)
}

// Equivalent returns the agents example with a policy that never applies:
// a new revision with the same decisions.
func Equivalent() (*policystore.Bundle, error) {
	return edit("agents-candidate-equivalent", `
@id("never-applies")
forbid (principal, action, resource) when { false };
`, "", "")
}

// LogOnly returns the agents example with FlippedPolicy marked
// @enforcement("log_only"): the decisions stay the active ones, and the
// README read records FlippedPolicy in would_have.
func LogOnly() (*policystore.Bundle, error) {
	return edit("agents-candidate-log-only", `
@id("`+FlippedPolicy+`")
@enforcement("log_only")
forbid (
  principal == Agent::"code-reviewer",
  action == Action::"read_file",
  resource == Document::"payments-api/README.md"
);
`, "", "")
}

func edit(revision, policy, oldCase, newCase string) (*policystore.Bundle, error) {
	b, err := Active()
	if err != nil {
		return nil, err
	}
	b.Files["policies.cedar"] = append(b.Files["policies.cedar"], policy...)
	if oldCase != "" {
		b.Files["tests/cases.json"] = []byte(strings.Replace(string(b.Files["tests/cases.json"]), oldCase, newCase, 1))
	}
	b.Files["manifest.json"] = []byte(strings.Replace(string(b.Files["manifest.json"]), "agents-example-v1", revision, 1))
	b.Source = revision
	return b, nil
}
