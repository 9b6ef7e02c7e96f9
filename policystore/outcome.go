package policystore

// Outcome is the answer of a decision, spelt the one way the wire, the
// decision log, decision spans and HTTP deny bodies record it.
type Outcome string

// The two outcomes.
const (
	Allow Outcome = "ALLOW"
	Deny  Outcome = "DENY"
)

// Outcome is ALLOW or DENY.
func (d Decision) Outcome() Outcome {
	if d.Allow {
		return Allow
	}
	return Deny
}

// Lower is the outcome in lower case ("allow", "deny"), as metric labels
// and HTTP deny bodies spell it.
func (o Outcome) Lower() string {
	if o == Allow {
		return "allow"
	}
	return "deny"
}
