package engine

import (
	"errors"
	"fmt"

	"github.com/intentpdp/intentpdp/policystore"
)

// ErrLimitExceeded marks a request larger than the configured limits.
var ErrLimitExceeded = errors.New("request exceeds a limit")

// Limits bound what one request may ask of a front end. The engine does not
// enforce them itself: each front end is given them and enforces them
// while it decodes (cedarvalue.Budget for values), so no oversized input
// is ever fully materialised.
type Limits struct {
	// MaxMessageBytes is the largest request message accepted.
	MaxMessageBytes int
	// MaxDepth is the deepest nesting of records and sets in any value.
	MaxDepth int
	// MaxValues is the most values one request may carry across its
	// context, intent attributes and entities.
	MaxValues int
	// MaxEntities is the most request-scoped entities per request.
	MaxEntities int
	// MaxBatch is the most requests in one BatchAuthorize.
	MaxBatch int
}

// DefaultLimits are the limits used where none are configured.
var DefaultLimits = Limits{
	MaxMessageBytes: 4 << 20,
	MaxDepth:        16,
	MaxValues:       10_000,
	MaxEntities:     1_000,
	MaxBatch:        100,
}

// CheckBatch refuses a batch of n requests that exceeds MaxBatch, the same
// way for every front end that takes batches.
func (l Limits) CheckBatch(n int) error {
	if n > l.MaxBatch {
		return Invalid("batch of %d requests exceeds the maximum of %d", n, l.MaxBatch)
	}
	return nil
}

// SetDefaults fills unset limits from DefaultLimits.
func (l *Limits) SetDefaults() {
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxMessageBytes, DefaultLimits.MaxMessageBytes)
	set(&l.MaxDepth, DefaultLimits.MaxDepth)
	set(&l.MaxValues, DefaultLimits.MaxValues)
	set(&l.MaxEntities, DefaultLimits.MaxEntities)
	set(&l.MaxBatch, DefaultLimits.MaxBatch)
}

// Invalid returns an error marking the request as malformed
// (policystore.ErrInvalidRequest); Classify maps it to INVALID_REQUEST.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{policystore.ErrInvalidRequest}, args...)...)
}
