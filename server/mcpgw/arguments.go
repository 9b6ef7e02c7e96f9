package mcpgw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/server/engine"
)

// conforming refuses, before next decides it, a call whose arguments do
// not have the types the tool's input schema gives them, as far as a
// schema written by Schema declares them (required attributes present,
// String, Long, Bool, Set and record values of their type). A policy that
// reads an argument of another type fails to evaluate, and a forbid that
// fails is skipped: without this check, "limit": "500" would slip past
// `forbid … when { context.input.limit > 100 }`.
func (g *Gateway) conforming(t *tool, next mcp.ToolHandler) mcp.ToolHandler {
	in, schemaErr := inputSchema(t.def)
	return func(ctx context.Context, call *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		args := call.Params.Arguments
		if len(args) > g.limits.MaxMessageBytes {
			return next(ctx, call) // refused there, before anything reads it
		}
		err := schemaErr
		if err == nil {
			err = in.conforms(args)
		}
		if err != nil {
			return errorResult(g.refusal(engine.Invalid("%v", err))), nil
		}
		return next(ctx, call)
	}
}

// conforms checks a call's arguments against the types Schema declares
// for them; what Schema leaves undeclared is not checked.
func (s *jsonSchema) conforms(args json.RawMessage) error {
	var v any = map[string]any{}
	if t := bytes.TrimSpace(args); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("arguments: not JSON: %v", err)
		}
	}
	return s.conform(v, "arguments")
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
		if !ok {
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
