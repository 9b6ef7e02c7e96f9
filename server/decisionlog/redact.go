package decisionlog

import (
	"fmt"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
)

// Redacted replaces the value of every redacted context field in the log.
const Redacted = "[REDACTED]"

// redactor replaces context fields named by dotted paths into the context
// as policies see it ("ticket.body", "intent.attributes.prompt").
type redactor struct {
	// next maps a key to the paths below it; a nil redactor for a key means
	// the key itself is redacted.
	next map[types.String]*redactor
}

// newRedactor parses dotted paths. Empty segments are an error so that a
// typo does not silently log what was meant to be hidden.
func newRedactor(paths []string) (*redactor, error) {
	root := &redactor{}
	for _, p := range paths {
		segs := strings.Split(p, ".")
		for _, s := range segs {
			if s == "" {
				return nil, fmt.Errorf("redact path %q: empty segment", p)
			}
		}
		root.add(segs)
	}
	return root, nil
}

func (r *redactor) add(segs []string) {
	if r.next == nil {
		r.next = map[types.String]*redactor{}
	}
	k := types.String(segs[0])
	child, seen := r.next[k]
	if seen && child == nil {
		return // the whole field is already redacted
	}
	if len(segs) == 1 {
		r.next[k] = nil
		return
	}
	if child == nil {
		child = &redactor{}
		r.next[k] = child
	}
	child.add(segs[1:])
}

// apply returns a copy of m with the redacted fields replaced. m itself is
// shared with the decision and never modified.
func (r *redactor) apply(m types.RecordMap) types.RecordMap {
	out := make(types.RecordMap, len(m))
	for k, v := range m {
		child, hit := r.next[k]
		switch {
		case !hit:
			out[k] = v
		case child == nil:
			out[k] = types.String(Redacted)
		default:
			if rec, ok := v.(types.Record); ok {
				out[k] = types.NewRecord(child.apply(rec.Map()))
			} else {
				out[k] = v
			}
		}
	}
	return out
}
