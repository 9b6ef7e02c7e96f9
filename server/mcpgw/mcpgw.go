// Package mcpgw is intentpdp's MCP front end: a gateway between an agent
// (an MCP client) and its upstream MCP servers. Every tools/call is one
// decision through the engine, with the tool as the action, the upstream
// (or a mapping from the arguments) as the resource and the arguments as
// context.input; a denied call never reaches the upstream and the agent
// gets a tool error saying why. Every resources/read and prompts/get is
// one decision too (see resources.go, prompts.go). The lists are filtered
// per caller: an item is listed when some request for it could be allowed
// (see policystore.Snapshot.CouldAllow).
package mcpgw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
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
	resources resourceRoutes
	prompts   map[string]*prompt // by the name the agent sees
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
	input    *jsonSchema      // the types its arguments must have (see conform)
}

// New connects to every upstream of cfg, reads their tools, and returns a
// gateway deciding through eng. The caller closes it.
func New(ctx context.Context, eng *engine.Engine, cfg Config, limits engine.Limits, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{engine: eng, conv: cedarvalue.New(limits), limits: limits, log: log,
		tools: map[string]*tool{}, resources: resourceRoutes{exact: map[string][]*Upstream{}}, prompts: map[string]*prompt{}}
	if cfg.Principal != "" {
		g.principal, _ = parseEntity(cfg.Principal) // checked by Validate
	}
	g.server = mcp.NewServer(&mcp.Implementation{Name: "intentpdp", Version: "1"}, &mcp.ServerOptions{Logger: log})
	g.server.AddReceivingMiddleware(g.filterLists)
	for _, uc := range cfg.Upstreams {
		up := newUpstream(uc, log)
		if err := g.mount(ctx, up, cfg.prefix(uc.Name)); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

// mount connects to up and exposes its tools (their names prefixed), its
// resources and, when configured, its prompts. What the upstream offers
// is read once, here.
func (g *Gateway) mount(ctx context.Context, up *Upstream, prefix string) error {
	g.upstreams = append(g.upstreams, up) // closed by Close from here on
	caps, err := up.capabilities(ctx)
	if err != nil {
		return err
	}
	if caps.Tools != nil {
		if err := g.mountTools(ctx, up, prefix); err != nil {
			return err
		}
	}
	if caps.Resources != nil {
		if err := g.mountResources(ctx, up); err != nil {
			return err
		}
	}
	if caps.Prompts != nil && up.cfg.Prompts == PromptsDecide {
		return g.mountPrompts(ctx, up, prefix)
	}
	return nil
}

func (g *Gateway) mountTools(ctx context.Context, up *Upstream, prefix string) error {
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
		if t.input, err = inputSchema(def); err != nil {
			// The MCP server would refuse it too (see offer); calls could
			// not be type-checked, so it is not offered.
			g.log.Warn("an upstream's tool has no object input schema; not offered", "upstream", up.cfg.Name, "tool", t.name, "err", err)
			continue
		}
		exposed := *def
		exposed.Name = t.name
		if g.offer(up, "tool", t.name, func() { g.server.AddTool(&exposed, g.callTool(t)) }) {
			g.tools[t.name] = t
		}
	}
	return nil
}

// offer runs one of the MCP server's Add methods, which panic on a
// definition they refuse (a tool schema not of type object, a URI that
// does not parse): an upstream's bad definition is then logged and not
// offered, and the gateway does not crash.
func (g *Gateway) offer(up *Upstream, kind, name string, add func()) (offered bool) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Warn("an upstream's definition is refused by the MCP server; not offered", "upstream", up.cfg.Name, kind, name, "err", r)
			offered = false
		}
	}()
	add()
	return true
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
		args := call.Params.Arguments
		if args == nil {
			// A call without arguments is decided on an empty
			// context.input; only tools/list leaves the input unknown.
			args = json.RawMessage("{}")
		}
		req, err := g.request(call.Extra, call.Params.Meta, t, args)
		if err != nil {
			return errorResult(g.refusal(err)), nil
		}
		id, why := g.decide(ctx, req)
		if why != "" {
			return errorResult(why), nil
		}
		out, err := t.upstream.call(ctx, t.def.Name, call.Params.Arguments)
		if err != nil {
			// The decision allowed; the upstream failed. Say so, as a tool
			// error: the agent must not mistake it for a result.
			return errorResult(upstreamFailure(t.upstream, err, id)), nil
		}
		return out, nil
	}
}

// decide is one decision on req: the decision id, and when it is not an
// allow, why, as the agent is told.
func (g *Gateway) decide(ctx context.Context, req policystore.Request) (id, why string) {
	res, err := g.engine.Evaluate(ctx, FrontEnd, req)
	if err != nil {
		return "", g.refusal(err)
	}
	if !res.Decision.Allow {
		return res.ID, denial(req, res)
	}
	return res.ID, ""
}

func upstreamFailure(up *Upstream, err error, decisionID string) string {
	return fmt.Sprintf("upstream %s failed: %v (decision %s)", up.cfg.Name, err, decisionID)
}

// filterLists drops from a tools/list, resources/list or prompts/list
// answer what no request could be allowed for, for this caller and
// intent. Any error hides the item: listing is an invitation, and each
// request is decided anyway. Resource templates are all listed: the
// resource a template names is unknown until it is filled in.
func (g *Gateway) filterLists(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, r mcp.Request) (mcp.Result, error) {
		result, err := next(ctx, method, r)
		if err != nil {
			return result, err
		}
		switch list := result.(type) {
		case *mcp.ListToolsResult:
			l := g.lister(ctx, r)
			list.Tools = keep(list.Tools, func(def *mcp.Tool) bool { return l.toolListed(g.tools[def.Name]) })
		case *mcp.ListResourcesResult:
			l := g.lister(ctx, r)
			list.Resources = keep(list.Resources, func(res *mcp.Resource) bool { return l.resourceListed(res.URI) })
		case *mcp.ListPromptsResult:
			l := g.lister(ctx, r)
			list.Prompts = keep(list.Prompts, func(def *mcp.Prompt) bool { return l.promptListed(g.prompts[def.Name]) })
		}
		return result, nil
	}
}

func keep[T any](items []T, listed func(T) bool) []T {
	kept := items[:0]
	for _, item := range items {
		if listed(item) {
			kept = append(kept, item)
		}
	}
	return kept
}

// lister decides what one list answer keeps.
type lister struct {
	g      *Gateway
	ctx    context.Context
	extra  *mcp.RequestExtra
	meta   map[string]any
	pinned engine.Pinned
	err    error // from pinning: nothing is listed
}

func (g *Gateway) lister(ctx context.Context, r mcp.Request) *lister {
	var meta map[string]any
	if p := r.GetParams(); p != nil {
		meta = p.GetMeta()
	}
	l := &lister{g: g, extra: r.GetExtra(), meta: meta}
	l.ctx = g.withCaller(ctx, l.extra, meta)
	l.pinned, l.err = g.engine.Pin()
	return l
}

// toolListed reports whether some call of t could be allowed, its
// arguments unknown. A tool whose resource is mapped from its arguments
// is always listed: its resource is unknown too, and listing it is the
// sound choice.
func (l *lister) toolListed(t *tool) bool {
	if t == nil || t.resource != nil {
		return t != nil
	}
	req, err := l.g.request(l.extra, l.meta, t, nil)
	return err == nil && l.could(req)
}

func (l *lister) resourceListed(uri string) bool {
	up, _, err := l.g.resources.route(uri)
	return err == nil && l.could(l.g.resourceRequest(l.extra, l.meta, up, uri, nil))
}

func (l *lister) promptListed(p *prompt) bool {
	return p != nil && l.could(l.g.promptRequest(l.extra, l.meta, p, nil))
}

// could reports whether req could be allowed with context.input unknown.
func (l *lister) could(req policystore.Request) bool {
	if l.err != nil {
		return false
	}
	req, err := l.pinned.Prepare(l.ctx, req)
	if err != nil {
		return false
	}
	ok, err := l.pinned.Snapshot().CouldAllow(l.ctx, req, ContextInput)
	if err != nil {
		l.g.log.Warn("cannot tell whether a request could be allowed; not listed", "action", string(req.Action.ID), "resource", req.Resource.String(), "err", err)
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
		Resource:  t.upstream.entity(),
		Intent:    intent(extra, meta, t.name),
	}
	if args == nil {
		return req, nil
	}
	m, err := g.decodeArguments(args)
	if err == nil {
		err = t.conform(m)
	}
	var input types.RecordMap
	if err == nil {
		input, err = g.cedarInput(m)
	}
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

// input converts a request's arguments into a Cedar record (see
// decodeArguments and cedarInput).
func (g *Gateway) input(args json.RawMessage) (types.RecordMap, error) {
	m, err := g.decodeArguments(args)
	if err != nil {
		return nil, err
	}
	return g.cedarInput(m)
}

// decodeArguments reads a request's arguments, a JSON object (absent or
// null: empty), its numbers as written. A call's arguments are decoded
// once, for the type check and the conversion alike.
func (g *Gateway) decodeArguments(args json.RawMessage) (map[string]any, error) {
	if len(args) > g.limits.MaxMessageBytes {
		return nil, engine.Invalid("arguments are %d bytes, over the limit of %d", len(args), g.limits.MaxMessageBytes)
	}
	m := map[string]any{}
	if len(bytes.TrimSpace(args)) == 0 || string(bytes.TrimSpace(args)) == "null" {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, engine.Invalid("arguments: not a JSON object: %v", err)
	}
	return m, nil
}

// cedarInput converts decoded arguments into a Cedar record: whole
// numbers as Long, fractions as decimal when Cedar's decimal holds them
// exactly. It rewrites m.
func (g *Gateway) cedarInput(m map[string]any) (types.RecordMap, error) {
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

// intent is the intent the agent stated in _meta or headers.
func intent(extra *mcp.RequestExtra, meta map[string]any, tool string) policystore.Intent {
	return policystore.Intent{
		Purpose: intentField(extra, meta, MetaPurpose, HeaderPurpose),
		TaskID:  intentField(extra, meta, MetaTaskID, HeaderTaskID),
		Tool:    tool,
	}
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

// refusal says why a request that could not be decided is denied.
func (g *Gateway) refusal(err error) string {
	f := engine.Classify(err)
	if f.Internal() {
		g.log.Error("internal error on the decision path", "err", err)
	}
	return fmt.Sprintf("denied by intentpdp: %s (%s)", f.Message, f.Reason)
}

// denial says why the policies denied req: the reasons of the determining
// policies (their @reason, else their id), the decision id, and what
// became of the task grant the request named.
func denial(req policystore.Request, res engine.Result) string {
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
	return fmt.Sprintf("denied by intentpdp: %s (decision %s)", strings.Join(why, "; "), res.ID)
}

// errorResult is the tool error a denied or failed call gets.
func errorResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

// CodeDenied is the JSON-RPC error code of a resources/read or
// prompts/get that intentpdp denied (tools/call answers a denial with a
// tool error instead, as the MCP specification asks of tool failures). It
// is an application code, outside JSON-RPC's reserved -32768..-32000, part
// of which MCP SDKs use for their own errors (-32003 reads as "client is
// closing" to the Go SDK).
const CodeDenied = 403

// deniedError is the JSON-RPC error of a denied resources/read or
// prompts/get.
func deniedError(why string) error {
	return &jsonrpc.Error{Code: CodeDenied, Message: why}
}

// upstreamError passes an upstream's JSON-RPC error on with its code (a
// resource not found stays one), naming the upstream; any other failure
// is an internal error.
func upstreamError(up *Upstream, err error, decisionID string) error {
	var answered *jsonrpc.Error
	code := int64(jsonrpc.CodeInternalError)
	if errors.As(err, &answered) {
		code = answered.Code
	}
	return &jsonrpc.Error{Code: code, Message: upstreamFailure(up, err, decisionID)}
}
