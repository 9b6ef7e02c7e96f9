// Package decisionlog writes one JSON line per decision, asynchronously and
// without losing records silently.
package decisionlog

import (
	"time"

	"github.com/cedar-policy/cedar-go/types"

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
}

// line is the JSON shape of a Record.
type line struct {
	DecisionID     string       `json:"decision_id"`
	Time           string       `json:"time"`
	FrontEnd       string       `json:"front_end,omitempty"`
	Principal      entityRef    `json:"principal"`
	Intent         intent       `json:"intent"`
	Resource       entityRef    `json:"resource"`
	Context        types.Record `json:"context"`
	Decision       string       `json:"decision"`
	Reasons        []reason     `json:"reasons"`
	Errors         []evalError  `json:"errors"`
	PolicyRevision string       `json:"policy_revision"`
	LatencyMS      float64      `json:"latency_ms"`
	TraceID        string       `json:"trace_id,omitempty"`
	SpanID         string       `json:"span_id,omitempty"`
	EncodeError    string       `json:"encode_error,omitempty"`
}

type entityRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type intent struct {
	Action     string       `json:"action"`
	Purpose    string       `json:"purpose,omitempty"`
	TaskID     string       `json:"task_id,omitempty"`
	Tool       string       `json:"tool,omitempty"`
	Attributes types.Record `json:"attributes"`
}

type reason struct {
	PolicyID    string            `json:"policy_id"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type evalError struct {
	PolicyID string `json:"policy_id"`
	Message  string `json:"message"`
}

// toLine shapes r for encoding. The caller's context is logged without the
// keys the PDP adds (intent is logged on its own, now is Time), after
// redaction; intent attributes are redacted under "intent.attributes".
func (r *Record) toLine(red *redactor) line {
	ctx := red.apply(r.Request.Context.Map())
	attrs := types.RecordMap{}
	if in, ok := ctx[policystore.ContextIntent].(types.Record); ok {
		if a, ok := in.Map()["attributes"].(types.Record); ok {
			attrs = a.Map()
		}
	}
	delete(ctx, policystore.ContextIntent)
	delete(ctx, policystore.ContextNow)
	l := line{
		DecisionID: r.DecisionID,
		Time:       r.Time.UTC().Format(time.RFC3339Nano),
		FrontEnd:   r.FrontEnd,
		Principal:  ref(r.Request.Principal),
		Intent: intent{
			Action:     string(r.Request.Action.ID),
			Purpose:    r.Request.Intent.Purpose,
			TaskID:     r.Request.Intent.TaskID,
			Tool:       r.Request.Intent.Tool,
			Attributes: types.NewRecord(attrs),
		},
		Resource:       ref(r.Request.Resource),
		Context:        types.NewRecord(ctx),
		Decision:       "DENY",
		Reasons:        make([]reason, len(r.Decision.Reasons)),
		Errors:         make([]evalError, len(r.Decision.Errors)),
		PolicyRevision: r.Decision.Revision,
		LatencyMS:      float64(r.Latency.Nanoseconds()) / 1e6,
		TraceID:        r.TraceID,
		SpanID:         r.SpanID,
	}
	if r.Decision.Allow {
		l.Decision = "ALLOW"
	}
	for i, rs := range r.Decision.Reasons {
		l.Reasons[i] = reason{PolicyID: rs.PolicyID, Annotations: rs.Annotations}
	}
	for i, e := range r.Decision.Errors {
		l.Errors[i] = evalError{PolicyID: e.PolicyID, Message: e.Message}
	}
	return l
}

func ref(uid types.EntityUID) entityRef {
	return entityRef{Type: string(uid.Type), ID: string(uid.ID)}
}
