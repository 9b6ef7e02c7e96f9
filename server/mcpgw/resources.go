package mcpgw

import (
	"context"
	"errors"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// Entity types and actions of resources/read and prompts/get decisions.
const (
	ServerType   = types.EntityType("MCPServer")
	ResourceType = types.EntityType("MCPResource")
	PromptType   = types.EntityType("MCPPrompt")
)

var (
	ActionReadResource = types.NewEntityUID("Action", "read_resource")
	ActionGetPrompt    = types.NewEntityUID("Action", "get_prompt")
)

// resourceRoutes say which upstream serves a URI: the one that listed it,
// else the one whose resource template matches it. URIs are offered as
// the upstreams give them (a URI names its own scheme and authority, so no
// prefix is added); a URI two upstreams claim is ambiguous and refused.
type resourceRoutes struct {
	exact     map[string][]*Upstream
	templates []resourceTemplate
}

type resourceTemplate struct {
	template *uritemplate.Template
	upstream *Upstream
}

// route is the one upstream that serves uri, and the template that
// matched it (nil: the upstream listed uri itself).
func (r *resourceRoutes) route(uri string) (*Upstream, *uritemplate.Template, error) {
	switch ups := r.exact[uri]; len(ups) {
	case 1:
		return ups[0], nil, nil
	case 0:
	default:
		return nil, nil, ambiguous(uri, ups[0], ups[1])
	}
	var match *resourceTemplate
	for i, t := range r.templates {
		if !t.template.Regexp().MatchString(uri) {
			continue
		}
		if match == nil {
			match = &r.templates[i]
		} else if match.upstream != t.upstream {
			return nil, nil, ambiguous(uri, match.upstream, t.upstream)
		}
	}
	if match == nil {
		return nil, nil, mcp.ResourceNotFoundError(uri)
	}
	return match.upstream, match.template, nil
}

func ambiguous(uri string, a, b *Upstream) error {
	return engine.Invalid("resource %q is offered by upstreams %s and %s: ambiguous, not read", uri, a.cfg.Name, b.cfg.Name)
}

// mountResources exposes up's resources and resource templates, each read
// decided by readResource.
func (g *Gateway) mountResources(ctx context.Context, up *Upstream) error {
	resources, err := up.resources(ctx)
	if err != nil {
		return err
	}
	for _, res := range resources {
		exposed := *res
		if g.offer(up, "resource", res.URI, func() { g.server.AddResource(&exposed, g.readResource) }) {
			g.resources.exact[res.URI] = append(g.resources.exact[res.URI], up)
		}
	}
	templates, err := up.resourceTemplates(ctx)
	if err != nil {
		return err
	}
	for _, rt := range templates {
		tmpl, err := uritemplate.New(rt.URITemplate)
		if err != nil {
			g.log.Warn("an upstream's resource template does not parse; not offered", "upstream", up.cfg.Name, "template", rt.URITemplate, "err", err)
			continue
		}
		exposed := *rt
		if g.offer(up, "resource template", rt.URITemplate, func() { g.server.AddResourceTemplate(&exposed, g.readResource) }) {
			g.resources.templates = append(g.resources.templates, resourceTemplate{template: tmpl, upstream: up})
		}
	}
	return nil
}

// readResource decides each read and forwards only the allowed ones to
// the upstream that offers the URI.
func (g *Gateway) readResource(ctx context.Context, read *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := read.Params.URI
	ctx = g.withCaller(ctx, read.Extra, read.Params.Meta)
	up, tmpl, err := g.resources.route(uri)
	var input types.RecordMap
	if err == nil {
		input, err = g.templateInput(tmpl, uri)
	}
	if err != nil {
		var notFound *jsonrpc.Error
		if errors.As(err, &notFound) {
			return nil, err
		}
		return nil, deniedError(g.refusal(err))
	}
	id, why := g.decide(ctx, g.resourceRequest(read.Extra, read.Params.Meta, up, uri, input))
	if why != "" {
		return nil, deniedError(why)
	}
	res, err := up.readResource(ctx, uri)
	if err != nil {
		return nil, upstreamError(up, err, id)
	}
	return res, nil
}

// resourceRequest is the decision request for reading uri from up:
// Action::"read_resource" on MCPResource::"<uri>", a child of the
// upstream's MCPServer entity, with the URI as its uri attribute (for
// `like` patterns). input (nil: none) is context.input.
func (g *Gateway) resourceRequest(extra *mcp.RequestExtra, meta map[string]any, up *Upstream, uri string, input types.RecordMap) policystore.Request {
	uid := types.NewEntityUID(ResourceType, types.String(uri))
	req := policystore.Request{
		Principal: g.principal,
		Action:    ActionReadResource,
		Resource:  uid,
		Intent:    intent(extra, meta, ""),
		Entities:  childOf(up, uid, types.RecordMap{"uri": types.String(uri)}),
	}
	if input != nil {
		req.Context = types.RecordMap{ContextInput: types.NewRecord(input)}
	}
	return req
}

// templateInput is context.input of a read of uri: the variables of the
// resource template that matched it (strings, or sets of strings for
// list variables); empty for a URI an upstream listed itself.
func (g *Gateway) templateInput(tmpl *uritemplate.Template, uri string) (types.RecordMap, error) {
	vars := map[string]any{}
	if tmpl != nil {
		for name, v := range tmpl.Match(uri) {
			switch {
			case !v.Valid():
			case v.T == uritemplate.ValueTypeString:
				vars[name] = v.String()
			default:
				list := make([]any, len(v.V))
				for i, s := range v.V {
					list[i] = s
				}
				vars[name] = list
			}
		}
	}
	return g.conv.JSONRecord(ContextInput, vars, 0)
}

// childOf is the request entity uid, a child of up's MCPServer entity.
func childOf(up *Upstream, uid types.EntityUID, attrs types.RecordMap) types.EntityMap {
	return types.EntityMap{uid: types.Entity{
		UID:        uid,
		Parents:    types.NewEntityUIDSet(up.entity()),
		Attributes: types.NewRecord(attrs),
	}}
}

// entity is the upstream's MCPServer entity.
func (u *Upstream) entity() types.EntityUID {
	return types.NewEntityUID(ServerType, types.String(u.cfg.Name))
}
