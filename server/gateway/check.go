package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// Response headers of an answered gateway request. On allow, gateways
// pass them upstream; on deny they go back to the client.
const (
	HeaderDecisionID = "X-Intentpdp-Decision-Id"
	HeaderRevision   = "X-Intentpdp-Policy-Revision"
)

// Request is what a gateway tells us about one HTTP request.
type Request struct {
	// FrontEnd is the hook that asks (extauthz.FrontEnd, ...).
	FrontEnd engine.FrontEnd
	Method   string
	// Path is the request target as sent: escaped, possibly with a query.
	Path   string
	Host   string
	Header http.Header
	// SourceAddress is the client's IP address, or empty.
	SourceAddress string
	// SPIFFEID is the mTLS peer's verified SPIFFE ID, or empty.
	SPIFFEID string
	// FilterMetadata is Envoy's filter metadata by namespace (where
	// jwt_authn puts the verified token's claims), or nil.
	FilterMetadata map[string]any
}

// Answer is the outcome of a gateway check, in HTTP terms.
type Answer struct {
	Allow bool
	// HTTPStatus is 200 on allow, 403 on a policy deny, else the status of
	// the error that prevented a decision (401 without identity, 503
	// without a bundle, ...).
	HTTPStatus int
	// Failure is how engine.Classify classified the error that prevented a
	// decision; nil when a decision was made.
	Failure *engine.Failure
	// Header carries the decision id and revision when a decision was made.
	Header http.Header
	// Body is the JSON deny body (empty on allow).
	Body []byte
}

// contextHeader is an allowlisted header: its canonical name to read it
// and its lower-case key in context.http.headers.
type contextHeader struct {
	canonical string
	key       types.String
}

// Checker maps gateway requests to decision requests and decides them
// through the engine. It is safe for concurrent use.
type Checker struct {
	engine  *engine.Engine
	cfg     Config
	log     *slog.Logger
	routes  []route
	headers []contextHeader // ContextHeaders, named once
	// tokenPrincipal: see WithTokenPrincipal.
	tokenPrincipal bool
}

// Option configures a Checker.
type Option func(*Checker)

// WithLogger sets the logger of internal errors (default: none).
func WithLogger(l *slog.Logger) Option { return func(c *Checker) { c.log = l } }

// WithTokenPrincipal leaves the principal of a request that carries a
// principal token (engine.Credentials) to the engine's authenticate step,
// which takes it from the verified token, instead of mapping it from the
// mTLS peer, jwt_authn metadata or the identity header. It is set when the
// principal binding is verified or verified-or-request.
func WithTokenPrincipal() Option { return func(c *Checker) { c.tokenPrincipal = true } }

// BearerToken is the token of h's one `Authorization: Bearer` header, or
// "" without one.
func BearerToken(h http.Header) string {
	vs := h.Values("Authorization")
	if len(vs) != 1 || len(vs[0]) < 7 || !strings.EqualFold(vs[0][:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(vs[0][7:])
}

// NewChecker compiles cfg (after SetDefaults) into a Checker deciding
// through eng.
func NewChecker(eng *engine.Engine, cfg Config, opts ...Option) (*Checker, error) {
	cfg.SetDefaults()
	routes, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	c := &Checker{engine: eng, cfg: cfg, routes: routes, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(c)
	}
	for _, h := range cfg.ContextHeaders {
		c.headers = append(c.headers, contextHeader{canonical: http.CanonicalHeaderKey(h), key: types.String(strings.ToLower(h))})
	}
	return c, nil
}

// Check decides r. It never allows unless a decision allowed: a request it
// cannot map or evaluate is denied with the error's status.
func (c *Checker) Check(ctx context.Context, r Request) Answer {
	p, err := c.engine.Pin()
	if err != nil {
		return c.failed(err)
	}
	req, err := c.mapRequest(r, c.tokenPrincipal && engine.CredentialsFrom(ctx).PrincipalToken != "")
	if err != nil {
		return c.failed(err)
	}
	res, err := p.Evaluate(ctx, r.FrontEnd, req)
	if err != nil {
		return c.failed(err)
	}
	d, id := res.Decision, res.ID
	h := http.Header{}
	h.Set(HeaderDecisionID, id)
	h.Set(HeaderRevision, d.Revision)
	if d.Allow {
		return Answer{Allow: true, HTTPStatus: http.StatusOK, Header: h}
	}
	body := denyBody{Decision: policystore.Deny.Lower(), DecisionID: id, PolicyRevision: d.Revision}
	if c.cfg.ExposeReasons {
		body.Reasons = d.PolicyIDs()
	}
	return Answer{
		HTTPStatus: http.StatusForbidden,
		Header:     h,
		Body:       marshal(body),
	}
}

// denyBody is the JSON body of every deny.
type denyBody struct {
	Decision       string   `json:"decision"`
	DecisionID     string   `json:"decision_id,omitempty"`
	PolicyRevision string   `json:"policy_revision,omitempty"`
	Reasons        []string `json:"reasons,omitempty"`
	Error          string   `json:"error,omitempty"`
}

// ForwardAuth is the forward-auth part of the configuration, defaults
// filled in.
func (c *Checker) ForwardAuth() ForwardAuthConfig { return c.cfg.ForwardAuth }

// Refuse is the answer to a request a front end cannot even describe to
// Check (ErrConflictingRequestHeaders, ...): a denial with err's status,
// exactly as Check answers when it cannot map a request.
func (c *Checker) Refuse(err error) Answer { return c.failed(err) }

func (c *Checker) failed(err error) Answer {
	f := engine.Classify(err)
	if f.Internal() {
		c.log.Error("internal error on the decision path", "err", err)
	}
	h := http.Header{}
	if ch := f.WWWAuthenticate(); ch != "" {
		h.Set("WWW-Authenticate", ch)
	}
	return Answer{
		HTTPStatus: f.HTTPStatus,
		Failure:    &f,
		Header:     h,
		Body:       marshal(denyBody{Decision: policystore.Deny.Lower(), Error: f.Message}),
	}
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // denyBody always marshals
	}
	return b
}

// methodOverrideHeaders ask a backend to act as if the request had another
// method than the one the gateway reports.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Method-Override", "X-Http-Method"}

// mapRequest turns a gateway request into a decision request: the route
// gives the action and resource, the identity the principal, and the
// request itself context.http. A request whose path is not canonical, or
// that asks the backend to override its method, is refused before any
// route is tried.
func (c *Checker) mapRequest(r Request, fromToken bool) (policystore.Request, error) {
	var out policystore.Request
	path, _, _ := strings.Cut(r.Path, "?")
	method := strings.ToUpper(r.Method)
	if path == "" {
		return out, fmt.Errorf("%w: %s without a path", engine.ErrNoRoute, method)
	}
	parts, path, err := canonicalPath(path)
	if err != nil {
		return out, err
	}
	for _, h := range methodOverrideHeaders {
		if _, ok := r.Header[h]; ok {
			return out, fmt.Errorf("%w: %s asks the backend for another method than %s", engine.ErrConflictingRequestHeaders, h, method)
		}
	}
	rt, params, ok := c.route(method, parts)
	if !ok {
		return out, fmt.Errorf("%w: %s %s", engine.ErrNoRoute, method, path)
	}
	if !fromToken {
		principal, err := c.principal(r)
		if err != nil {
			return out, err
		}
		out.Principal = principal
	}
	out.Action = rt.action
	out.Resource = rt.resource(params)
	out.Intent = policystore.Intent{
		Purpose: r.Header.Get(c.cfg.Intent.PurposeHeader),
		TaskID:  r.Header.Get(c.cfg.Intent.TaskIDHeader),
		Tool:    r.Header.Get(c.cfg.Intent.ToolHeader),
	}
	out.Context = types.RecordMap{"http": c.httpContext(r, method, path, params)}
	return out, nil
}

func (c *Checker) route(method string, parts []string) (*route, map[string]string, bool) {
	for i := range c.routes {
		if params, ok := c.routes[i].match(method, parts); ok {
			return &c.routes[i], params, true
		}
	}
	return nil, nil, false
}

// principal takes the most trustworthy identity the request carries.
func (c *Checker) principal(r Request) (types.EntityUID, error) {
	id, err := c.principalID(r)
	if err != nil {
		return types.EntityUID{}, err
	}
	return types.NewEntityUID(types.EntityType(c.cfg.Principal.Type), types.String(id)), nil // type checked by Validate
}

func (c *Checker) principalID(r Request) (string, error) {
	pc := c.cfg.Principal
	if r.SPIFFEID != "" {
		id, ok := strings.CutPrefix(r.SPIFFEID, pc.SPIFFEPrefix)
		if !ok || id == "" {
			return "", fmt.Errorf("%w: SPIFFE ID %q is outside %q", engine.ErrUnauthenticated, r.SPIFFEID, pc.SPIFFEPrefix)
		}
		return id, nil
	}
	if payload, ok := r.FilterMetadata[pc.JWT.Namespace].(map[string]any); ok {
		claims, _ := payload[pc.JWT.PayloadKey].(map[string]any)
		if id, ok := claims[pc.JWT.Claim].(string); ok && id != "" {
			return id, nil
		}
	}
	if pc.Header != "" {
		if id := r.Header.Get(pc.Header); id != "" {
			return id, nil
		}
	}
	return "", engine.ErrUnauthenticated
}

// httpContext is context.http: method, path (canonical, no query), host,
// route parameters, allowlisted headers and, when it parses, the source
// address as a Cedar ip.
func (c *Checker) httpContext(r Request, method, path string, params map[string]string) types.Record {
	headers := types.RecordMap{}
	for _, h := range c.headers {
		if v := r.Header.Values(h.canonical); len(v) > 0 {
			headers[h.key] = types.String(strings.Join(v, ","))
		}
	}
	ps := make(types.RecordMap, len(params))
	for k, v := range params {
		ps[types.String(k)] = types.String(v)
	}
	rec := types.RecordMap{
		"method":  types.String(method),
		"path":    types.String(path),
		"host":    types.String(r.Host),
		"params":  types.NewRecord(ps),
		"headers": types.NewRecord(headers),
	}
	if ip := net.ParseIP(r.SourceAddress); ip != nil {
		if addr, err := types.ParseIPAddr(ip.String()); err == nil {
			rec["source_ip"] = addr
		}
	}
	return types.NewRecord(rec)
}
