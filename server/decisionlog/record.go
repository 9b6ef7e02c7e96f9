// Package decisionlog writes one JSON line per decision, asynchronously and
// without losing records silently.
package decisionlog

import (
	"time"

	"github.com/intentpdp/intentpdp/policystore"
)

// Record is one decision as the log sees it. It is built on the decision
// path and encoded by the writer's goroutine, so it holds the decision's own
// immutable values rather than copies.
type Record struct {
	DecisionID string
	Time       time.Time
	// FrontEnd is the front end that asked (grpc, authzen, ext_authz, …).
	FrontEnd string
	Request  policystore.Request
	Decision policystore.Decision
	Latency  time.Duration
	TraceID  string
	SpanID   string
	// Shadow, when set, makes this a shadow record (`"kind":"shadow"`):
	// Decision is what was answered and Shadow what the shadow bundle
	// decided for the same request. Shadow records are written only when
	// the two differ, under the decision's id; replay skips them.
	Shadow *policystore.Decision
}
