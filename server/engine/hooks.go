package engine

import (
	"context"

	"github.com/intentpdp/intentpdp/policystore"
)

// Authenticator is the first step of Evaluate: it verifies who is asking
// (the caller, and the principal's token the caller forwards) and may set
// the verified identity on the request; a request it cannot verify fails
// with an error wrapping ErrUnauthenticated, never an allow. Credentials
// reach it through ctx (the transport's peer and metadata). By default
// there is none: front ends authenticate the transport themselves and the
// request's principal is taken as given. Implementations must be safe for
// concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, req policystore.Request) (policystore.Request, error)
}

// Enricher is the second step of Evaluate: it adds runtime data that
// neither the caller nor the bundle supplies, such as the live task grant
// named by intent.task_id. It must not remove what the caller sent. By
// default there is none. Implementations must be safe for concurrent use.
type Enricher interface {
	Enrich(ctx context.Context, req policystore.Request) (policystore.Request, error)
}

// Shadow is the shadow step of Evaluate: it is offered every decided
// request with the decision Decide made, to decide it again against a
// candidate bundle and record any difference. Offer must return at once
// (queue the work, or drop and count it) and must not modify req, whose
// maps the decision log still reads. By default there is none.
// Implementations must be safe for concurrent use.
type Shadow interface {
	Offer(frontEnd FrontEnd, req policystore.Request, res Result)
}

// Consumer is the step of Evaluate right after Decide, for decisions made
// with a task grant (req.Task set): it settles what the decision used of
// the grant, atomically, and returns the decision to answer and the
// request as logged. An allow that used a limited grant consumes one use;
// when that fails (another decision took the last use, the grant was
// revoked or expired meanwhile) the allow becomes a deny that says why. It
// may turn an allow into a deny, never the reverse: the engine enforces
// that. By default there is none. Implementations must be safe for
// concurrent use.
type Consumer interface {
	Consume(ctx context.Context, req policystore.Request, d policystore.Decision) (policystore.Request, policystore.Decision)
}
