package gateway

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
)

// route is a compiled RouteConfig.
type route struct {
	method   string // upper case; "*" matches any
	segments []segment
	rest     string // name of a final {name...} parameter, or ""
	action   types.EntityUID
	resType  types.EntityType
	resID    []segment // the id template: literals and parameter references
}

// segment is a literal, or a parameter when param is set.
type segment struct {
	literal string
	param   string
}

func compileRoute(r RouteConfig) (route, error) {
	out := route{method: strings.ToUpper(r.Method)}
	if out.method == "" {
		out.method = "*"
	}
	if r.Action == "" {
		return out, errors.New("action is required")
	}
	if r.Resource.Type == "" {
		return out, errors.New("resource.type is required")
	}
	actionType, err := types.NewEntityType(orDefault(r.ActionType, "Action"))
	if err != nil {
		return out, fmt.Errorf("action_type %q: %w", r.ActionType, err)
	}
	out.action = types.NewEntityUID(actionType, types.String(r.Action))
	if out.resType, err = types.NewEntityType(r.Resource.Type); err != nil {
		return out, fmt.Errorf("resource.type %q: %w", r.Resource.Type, err)
	}
	if err := out.compilePath(r.Path); err != nil {
		return out, err
	}
	out.resID, err = compileTemplate(r.Resource.ID, out.params())
	return out, err
}

func (r *route) compilePath(path string) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("path %q must start with /", path)
	}
	parts := strings.Split(path[1:], "/")
	for i, p := range parts {
		name, isParam := strings.CutPrefix(p, "{")
		if !isParam {
			if strings.ContainsAny(p, "{}") {
				return fmt.Errorf("path %q: segment %q mixes literal text and a parameter", path, p)
			}
			// A literal no canonical request path has would never match.
			if why := badSegment(p); why != "" && path != "/" {
				return fmt.Errorf("path %q: segment %q %s; no request path can match it", path, p, why)
			}
			r.segments = append(r.segments, segment{literal: p})
			continue
		}
		name, ok := strings.CutSuffix(name, "}")
		if !ok || name == "" || strings.ContainsAny(name, "{}") {
			return fmt.Errorf("path %q: malformed parameter %q", path, p)
		}
		if rest, isRest := strings.CutSuffix(name, "..."); isRest {
			if i != len(parts)-1 {
				return fmt.Errorf("path %q: {%s} must be the last segment", path, name)
			}
			r.rest = rest
			continue
		}
		r.segments = append(r.segments, segment{param: name})
	}
	return nil
}

func (r *route) params() map[string]bool {
	out := map[string]bool{}
	for _, s := range r.segments {
		if s.param != "" {
			out[s.param] = true
		}
	}
	if r.rest != "" {
		out[r.rest] = true
	}
	return out
}

// compileTemplate parses "{repo}/{path}"-style ids, accepting only
// parameters the path defines so that a typo fails at load, not per request.
func compileTemplate(tmpl string, params map[string]bool) ([]segment, error) {
	var out []segment
	for tmpl != "" {
		open := strings.IndexByte(tmpl, '{')
		if open < 0 {
			return append(out, segment{literal: tmpl}), nil
		}
		end := strings.IndexByte(tmpl[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("resource.id: unclosed { in %q", tmpl)
		}
		name := tmpl[open+1 : open+end]
		if !params[name] {
			return nil, fmt.Errorf("resource.id: {%s} is not a parameter of the path", name)
		}
		if open > 0 {
			out = append(out, segment{literal: tmpl[:open]})
		}
		out = append(out, segment{param: name})
		tmpl = tmpl[open+end+1:]
	}
	return out, nil
}

// match reports whether the route matches method and the path's unescaped
// segments (from canonicalPath, so none is empty, a dot segment or holds a
// slash), and returns the path parameters. A final {name...} parameter is
// the rest of the segments joined with "/".
func (r *route) match(method string, parts []string) (map[string]string, bool) {
	if r.method != "*" && r.method != method {
		return nil, false
	}
	if len(parts) < len(r.segments) || (r.rest == "" && len(parts) != len(r.segments)) {
		return nil, false
	}
	params := map[string]string{}
	for i, s := range r.segments {
		switch {
		case s.param == "" && parts[i] != s.literal:
			return nil, false
		case s.param != "":
			if parts[i] == "" {
				return nil, false
			}
			params[s.param] = parts[i]
		}
	}
	if r.rest != "" {
		rest := strings.Join(parts[len(r.segments):], "/")
		if rest == "" {
			return nil, false
		}
		params[r.rest] = rest
	}
	return params, true
}

func (r *route) resource(params map[string]string) types.EntityUID {
	var b strings.Builder
	for _, s := range r.resID {
		if s.param != "" {
			b.WriteString(params[s.param])
		} else {
			b.WriteString(s.literal)
		}
	}
	return types.NewEntityUID(r.resType, types.String(b.String()))
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
