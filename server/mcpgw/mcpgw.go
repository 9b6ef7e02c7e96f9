// Package mcpgw is intentpdp's MCP front end: a gateway between an agent
// (an MCP client) and its upstream MCP servers. Every tools/call is one
// decision through the engine, with the tool as the action, the upstream
// (or a mapping from the arguments) as the resource and the arguments as
// context.input; a denied call never reaches the upstream and the agent
// gets a tool error saying why. tools/list is filtered per caller: a tool
// is listed when some call of it could be allowed (see
// policystore.Snapshot.CouldAllow).
package mcpgw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

// FrontEnd is how metrics, spans and the decision log name this front end.
const FrontEnd engine.FrontEnd = "mcp"

// The _meta keys and HTTP headers an agent states its intent with.
const (
	MetaPurpose   = "io.intentpdp/purpose"
	MetaTaskID    = "io.intentpdp/task_id"
	HeaderPurpose = "Intentpdp-Purpose"
	HeaderTaskID  = "Intentpdp-Task-Id"
)

// ContextInput is the context key policies read a call's arguments from.
const ContextInput = "input"

// Gateway is the agent-facing MCP server. It is safe for concurrent use.
type Gateway struct {
	engine    *engine.Engine
	principal types.EntityUID // zero: from the verified bearer token
	conv      *cedarvalue.Converter
	limits    engine.Limits
	tools     map[string]*tool // by the name the agent sees
	upstreams []*Upstream
	server    *mcp.Server
	log       *slog.Logger
}

// tool is one upstream tool as the agent sees it.
type tool struct {
	name     string // as the agent sees it, and the Cedar action id
	upstream *Upstream
	def      *mcp.Tool // the upstream's definition, with the upstream's name
	action   types.EntityUID
	resource *ResourceMapping // nil: the upstream's MCPServer entity
}

// New connects to every upstream of cfg, reads their tools, and returns a
// gateway deciding through eng. The caller closes it.
func New(ctx context.Context, eng *engine.Engine, cfg Config, limits engine.Limits, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{engine: eng, conv: cedarvalue.New(limits), limits: limits, tools: map[string]*tool{}, log: log}
	if cfg.Principal != "" {
		g.principal, _ = parseEntity(cfg.Principal) // checked by Validate
	}
	g.server = mcp.NewServer(&mcp.Implementation{Name: "intentpdp", Version: "1"}, &mcp.ServerOptions{Logger: log})
	g.server.AddReceivingMiddleware(g.filterToolList)
	for _, uc := range cfg.Upstreams {
		up := newUpstream(uc, log)
		if err := g.mount(ctx, up, cfg.prefix(uc.Name)); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

// mount connects to up and exposes its tools, their names prefixed.
func (g *Gateway) mount(ctx context.Context, up *Upstream, prefix string) error {
	defs, err := up.tools(ctx)
	if err != nil {
		return err
	}
	for _, def := range defs {
		t := &tool{name: prefix + def.Name, upstream: up, def: def}
		t.action = types.NewEntityUID("Action", types.String(t.name))
		if m, ok := up.cfg.Resources[def.Name]; ok {
			t.resource = &m
		}
		if _, dup := g.tools[t.name]; dup {
			return fmt.Errorf("tool %q is offered twice; give the upstreams a prefix", t.name)
		}
		g.tools[t.name] = t
		exposed := *def
		exposed.Name = t.name
		g.server.AddTool(&exposed, g.conforming(t, g.callTool(t)))
	}
	g.upstreams = append(g.upstreams, up)
	return nil
}

// Server is the agent-facing MCP server, to run over any transport
// (mcp.StdioTransport for a desktop agent).
func (g *Gateway) Server() *mcp.Server { return g.server }

// Close disconnects from every upstream.
func (g *Gateway) Close() {
	for _, up := range g.upstreams {
		up.close()
	}
}

// callTool decides each call of t and forwards only the allowed ones.
func (g *Gateway) callTool(t *tool) mcp.ToolHandler {
	return func(ctx context.Context, call *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		ctx = g.withCaller(ctx, call.Extra, call.Params.Meta)
		req, err := g.request(call.Extra, call.Params.Meta, t, call.Params.Arguments)
		if err != nil {
			return g.refused(err), nil
		}
		res, err := g.engine.Evaluate(ctx, FrontEnd, req)
		if err != nil {
			return g.refused(err), nil
		}
		if !res.Decision.Allow {
			return denied(req, res), nil
		}
		out, err := t.upstream.call(ctx, t.def.Name, call.Params.Arguments)
		if err != nil {
			// The decision allowed; the upstream failed. Say so, as a tool
			// error: the agent must not mistake it for a result.
			return errorResult(fmt.Sprintf("upstream %s failed: %v (decision %s)", t.upstream.cfg.Name, err, res.ID)), nil
		}
		return out, nil
	}
}

// filterToolList drops from a tools/list answer the tools no call of which
// could be allowed for this caller and intent. Any error hides the tool:
// listing is an invitation, and the call is decided anyway.
func (g *Gateway) filterToolList(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, r mcp.Request) (mcp.Result, error) {
		result, err := next(ctx, method, r)
		list, ok := result.(*mcp.ListToolsResult)
		if err != nil || method != "tools/list" || !ok {
			return result, err
		}
		var meta map[string]any
		if p := r.GetParams(); p != nil {
			meta = p.GetMeta()
		}
		extra := r.GetExtra()
		ctx = g.withCaller(ctx, extra, meta)
		pinned, err := g.engine.Pin()
		if err != nil {
			list.Tools = nil
			return list, nil
		}
		kept := list.Tools[:0]
		for _, def := range list.Tools {
			if t := g.tools[def.Name]; t != nil && g.listed(ctx, pinned, extra, meta, t) {
				kept = append(kept, def)
			}
		}
		list.Tools = kept
		return list, nil
	}
}

// listed reports whether some call of t could be allowed, its arguments
// unknown. A tool whose resource is mapped from its arguments is listed
// whenever the principal could call it at all: its resource is unknown
// too, and listing it is the sound choice.
func (g *Gateway) listed(ctx context.Context, pinned engine.Pinned, extra *mcp.RequestExtra, meta map[string]any, t *tool) bool {
	if t.resource != nil {
		return true
	}
	req, err := g.request(extra, meta, t, nil)
	if err == nil {
		req, err = pinned.Prepare(ctx, req)
	}
	if err != nil {
		return false
	}
	ok, err := pinned.Snapshot().CouldAllow(ctx, req, ContextInput)
	if err != nil {
		g.log.Warn("tools/list: cannot tell whether a tool could be allowed; not listed", "tool", t.name, "err", err)
	}
	return ok && err == nil
}

// withCaller puts the agent's bearer token and trace context into ctx.
func (g *Gateway) withCaller(ctx context.Context, extra *mcp.RequestExtra, meta map[string]any) context.Context {
	carrier := propagation.MapCarrier{}
	if extra != nil && extra.Header != nil {
		if tp := extra.Header.Get("Traceparent"); tp != "" {
			carrier["traceparent"] = tp
		}
		if token, ok := bearer(extra.Header); ok {
			ctx = engine.WithCredentials(ctx, engine.Credentials{PrincipalToken: token})
		}
	}
	if tp, ok := meta["traceparent"].(string); ok {
		carrier["traceparent"] = tp
	}
	if len(carrier) > 0 {
		ctx = propagation.TraceContext{}.Extract(ctx, carrier)
	}
	return ctx
}

// request is the decision request for a call of t with args (nil: none).
func (g *Gateway) request(extra *mcp.RequestExtra, meta map[string]any, t *tool, args json.RawMessage) (policystore.Request, error) {
	req := policystore.Request{
		Principal: g.principal,
		Action:    t.action,
		Resource:  types.NewEntityUID("MCPServer", types.String(t.upstream.cfg.Name)),
		Intent: policystore.Intent{
			Purpose: intentField(extra, meta, MetaPurpose, HeaderPurpose),
			TaskID:  intentField(extra, meta, MetaTaskID, HeaderTaskID),
			Tool:    t.name,
		},
	}
	if args == nil {
		return req, nil
	}
	input, err := g.input(args)
	if err != nil {
		return req, err
	}
	if t.resource != nil {
		if req.Resource, err = t.resource.resolve(input); err != nil {
			return req, err
		}
	}
	req.Context = types.RecordMap{ContextInput: types.NewRecord(input)}
	return req, nil
}

// input converts a call's arguments into a Cedar record: whole numbers
// as Long, fractions as decimal when Cedar's decimal holds them exactly.
func (g *Gateway) input(args json.RawMessage) (types.RecordMap, error) {
	if len(args) > g.limits.MaxMessageBytes {
		return nil, engine.Invalid("arguments are %d bytes, over the limit of %d", len(args), g.limits.MaxMessageBytes)
	}
	if len(bytes.TrimSpace(args)) == 0 || string(bytes.TrimSpace(args)) == "null" {
		return types.RecordMap{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, engine.Invalid("arguments: not a JSON object: %v", err)
	}
	if err := decimals(m, 0, g.limits.MaxDepth); err != nil {
		return nil, err
	}
	return g.conv.JSONRecord("input", m, 0)
}

// decimals rewrites every fraction in v into Cedar's JSON escape of a
// decimal, which cedar-go's own parser then checks (at most four digits
// after the point, in range): what it refuses is refused, not rounded.
func decimals(v any, depth, max int) error {
	if depth > max {
		return engine.Invalid("arguments nest deeper than %d", max)
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if n, ok := e.(json.Number); ok && strings.ContainsAny(string(n), ".eE") {
				v[k] = decimalEscape(n)
				continue
			}
			if err := decimals(e, depth+1, max); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if n, ok := e.(json.Number); ok && strings.ContainsAny(string(n), ".eE") {
				v[i] = decimalEscape(n)
				continue
			}
			if err := decimals(e, depth+1, max); err != nil {
				return err
			}
		}
	}
	return nil
}

func decimalEscape(n json.Number) map[string]any {
	return map[string]any{"__extn": map[string]any{"fn": "decimal", "arg": string(n)}}
}

func intentField(extra *mcp.RequestExtra, meta map[string]any, metaKey, header string) string {
	if s, ok := meta[metaKey].(string); ok {
		return s
	}
	if extra != nil && extra.Header != nil {
		return extra.Header.Get(header)
	}
	return ""
}

func bearer(h http.Header) (string, bool) {
	scheme, token, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// refused is the tool error for a call that could not be decided: it is
// denied, and the agent is told why.
func (g *Gateway) refused(err error) *mcp.CallToolResult {
	f := engine.Classify(err)
	if f.Internal() {
		g.log.Error("internal error on the decision path", "err", err)
	}
	return errorResult(fmt.Sprintf("denied by intentpdp: %s (%s)", f.Message, f.Reason))
}

// denied is the tool error for a call the policies denied: the reasons of
// the determining policies (their @reason, else their id), the decision
// id, and what became of the task grant the call named.
func denied(req policystore.Request, res engine.Result) *mcp.CallToolResult {
	var why []string
	for _, r := range res.Decision.Reasons {
		if text := r.Annotations["reason"]; text != "" {
			why = append(why, text)
		} else {
			why = append(why, "policy "+r.PolicyID)
		}
	}
	if len(why) == 0 {
		why = append(why, "no policy permits this call")
	}
	if req.Intent.TaskID != "" && res.TaskState != "live" {
		state := res.TaskState
		if state == "" {
			state = "grants are off"
		}
		why = append(why, fmt.Sprintf("no live grant for task %s (%s)", req.Intent.TaskID, state))
	}
	return errorResult(fmt.Sprintf("denied by intentpdp: %s (decision %s)", strings.Join(why, "; "), res.ID))
}

func errorResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}
