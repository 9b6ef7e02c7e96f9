package mcpgw

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

// conform refuses a call whose arguments do not have the types the tool's
// input schema gives them, as far as a schema written by Schema declares
// them (required attributes present, String, Long, Bool, Set and record
// values of their type), before the call is decided. A policy that reads
// an argument of another type fails to evaluate, and a forbid that fails
// is skipped: without this check, "limit": "500" would slip past
// `forbid … when { context.input.limit > 100 }`.
func (t *tool) conform(args map[string]any) error {
	if err := t.input.conform(args, "arguments"); err != nil {
		return engine.Invalid("%v", err)
	}
	return nil
}

func (s *jsonSchema) conform(v any, path string) error {
	wrong := func(want string) error { return fmt.Errorf("%s: want %s", path, want) }
	switch s.kind {
	case "": // undeclared: no policy reads it
	case "string":
		if _, ok := v.(string); !ok {
			return wrong("a string")
		}
	case "integer":
		if n, ok := v.(json.Number); !ok || strings.ContainsAny(string(n), ".eE") {
			return wrong("a whole number")
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return wrong("true or false")
		}
	case "array":
		elems, ok := v.([]any)
		if !ok {
			return wrong("an array")
		}
		for i, e := range elems {
			if err := s.Items.conform(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case "object":
		m, ok := v.(map[string]any)
		// An escape would reach policies as an entity or an extension
		// value, not the record the schema promises.
		if !ok || cedarvalue.IsEscape(m) {
			return wrong("an object")
		}
		for name, p := range s.Properties {
			if p == nil || p.kind == "" {
				continue
			}
			e, present := m[name]
			if !present {
				if slices.Contains(s.Required, name) {
					return fmt.Errorf("%s: %q is required", path, name)
				}
				continue
			}
			if err := p.conform(e, path+"."+name); err != nil {
				return err
			}
		}
	}
	return nil
}
