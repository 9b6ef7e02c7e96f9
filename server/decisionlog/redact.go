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
	// all redacts every key below, for a value redacted as a whole that is
	// nonetheless logged field by field (the intent).
	all bool
	// entities, on the root only, redacts every attribute and tag value of
	// request entities (see WithRedactEntities).
	entities bool
}

// redacts reports whether r redacts anything.
func (r *redactor) redacts() bool { return r != nil && (r.next != nil || r.entities || r.all) }

// redactAll redacts every key it is asked about.
var redactAll = &redactor{all: true}

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

// child is the redactor for the value under key k; whole reports that the
// value is redacted entirely. A nil redactor redacts nothing.
func (r *redactor) child(k types.String) (sub *redactor, whole bool) {
	if r == nil {
		return nil, false
	}
	if r.all {
		return nil, true
	}
	sub, hit := r.next[k]
	return sub, hit && sub == nil
}
