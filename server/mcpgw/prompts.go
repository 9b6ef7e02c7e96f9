package mcpgw

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// prompt is one upstream prompt as the agent sees it.
type prompt struct {
	name     string // as the agent sees it, and the id of its MCPPrompt entity
	upstream *Upstream
	def      *mcp.Prompt // the upstream's definition, with the upstream's name
}

// mountPrompts exposes up's prompts, their names prefixed like tools',
// each prompts/get decided by getPrompt.
func (g *Gateway) mountPrompts(ctx context.Context, up *Upstream, prefix string) error {
	defs, err := up.prompts(ctx)
	if err != nil {
		return err
	}
	for _, def := range defs {
		p := &prompt{name: prefix + def.Name, upstream: up, def: def}
		if _, dup := g.prompts[p.name]; dup {
			return fmt.Errorf("prompt %q is offered twice", p.name)
		}
		exposed := *def
		exposed.Name = p.name
		if g.offer(up, "prompt", p.name, func() { g.server.AddPrompt(&exposed, g.getPrompt(p)) }) {
			g.prompts[p.name] = p
		}
	}
	return nil
}

// getPrompt decides each prompts/get of p and forwards only the allowed
// ones, the arguments unchanged.
func (g *Gateway) getPrompt(p *prompt) mcp.PromptHandler {
	return func(ctx context.Context, get *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		ctx = g.withCaller(ctx, get.Extra, get.Params.Meta)
		err := p.checkRequired(get.Params.Arguments)
		var args []byte
		if err == nil {
			args, err = json.Marshal(get.Params.Arguments)
		}
		var input types.RecordMap
		if err == nil {
			input, err = g.input(args)
		}
		if err != nil {
			return nil, deniedError(g.refusal(err))
		}
		id, why := g.decide(ctx, g.promptRequest(get.Extra, get.Params.Meta, p, input))
		if why != "" {
			return nil, deniedError(why)
		}
		res, err := p.upstream.getPrompt(ctx, p.def.Name, get.Params.Arguments)
		if err != nil {
			return nil, upstreamError(p.upstream, err, id)
		}
		return res, nil
	}
}

// checkRequired refuses arguments without one the prompt requires, before the
// decision: the schema declares an argument every prompt requires as a
// required attribute, which a policy may then read without `has`.
func (p *prompt) checkRequired(args map[string]string) error {
	for _, a := range p.def.Arguments {
		if _, ok := args[a.Name]; a.Required && !ok {
			return engine.Invalid("prompt %s: argument %q is required", p.name, a.Name)
		}
	}
	return nil
}

// promptRequest is the decision request for getting p:
// Action::"get_prompt" on MCPPrompt::"<name as the agent sees it>", a
// child of the upstream's MCPServer entity, the arguments (nil: unknown)
// as context.input.
func (g *Gateway) promptRequest(extra *mcp.RequestExtra, meta map[string]any, p *prompt, input types.RecordMap) policystore.Request {
	uid := types.NewEntityUID(PromptType, types.String(p.name))
	req := policystore.Request{
		Principal: g.principal,
		Action:    ActionGetPrompt,
		Resource:  uid,
		Intent:    intent(extra, meta, ""),
		Entities:  childOf(p.upstream, uid, types.RecordMap{"name": types.String(p.def.Name)}),
	}
	if input != nil {
		req.Context = types.RecordMap{ContextInput: types.NewRecord(input)}
	}
	return req
}
