// Package authzen serves the OpenID AuthZEN Authorization API 1.0 over
// HTTP/JSON: access evaluation, batched evaluations, the subject, resource
// and action search APIs, and the discovery metadata. Values convert with
// cedarvalue and every decision goes through the engine.
package authzen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

// The API's paths.
const (
	PathConfiguration  = "/.well-known/authzen-configuration"
	PathEvaluation     = "/access/v1/evaluation"
	PathEvaluations    = "/access/v1/evaluations"
	PathSearchSubject  = "/access/v1/search/subject"
	PathSearchResource = "/access/v1/search/resource"
	PathSearchAction   = "/access/v1/search/action"
)

// FrontEnd is how metrics, spans and the decision log name this front end.
const FrontEnd engine.FrontEnd = "authzen"

// intentKeys are action properties lifted into the intent's own fields;
// every other property goes to context.intent.attributes.
var intentKeys = []string{"purpose", "task_id", "tool"}

// Handler serves the AuthZEN API. It is safe for concurrent use.
type Handler struct {
	engine        *engine.Engine
	limits        engine.Limits
	log           *slog.Logger
	exposeReasons bool
	baseURL       string
}

// Option configures a Handler.
type Option func(*Handler)

// WithLimits sets the request limits; unset fields keep their defaults.
func WithLimits(l engine.Limits) Option {
	return func(h *Handler) {
		l.SetDefaults()
		h.limits = l
	}
}

// WithLogger sets the logger of internal errors (default: none).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithExposeReasons puts the determining policy ids into each decision's
// context.
func WithExposeReasons(expose bool) Option { return func(h *Handler) { h.exposeReasons = expose } }

// WithBaseURL sets the absolute URL (scheme, host, optional path prefix)
// that the discovery metadata names as the PDP and prefixes to every
// endpoint. Without it the metadata names the address the request arrived
// on, never the request's Host header, which the client chooses and a
// shared cache would hand to everyone.
func WithBaseURL(u string) Option {
	return func(h *Handler) { h.baseURL = strings.TrimSuffix(u, "/") }
}

// New returns a Handler deciding through eng.
func New(eng *engine.Engine, opts ...Option) *Handler {
	h := &Handler{engine: eng, limits: engine.DefaultLimits, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(h)
	}
	return h
}

// Register mounts the API on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET "+PathConfiguration, h.wrap(h.configuration))
	mux.Handle("POST "+PathEvaluation, h.wrap(h.evaluation))
	mux.Handle("POST "+PathEvaluations, h.wrap(h.evaluations))
	mux.Handle("POST "+PathSearchSubject, h.wrap(h.search(subjectSearch)))
	mux.Handle("POST "+PathSearchResource, h.wrap(h.search(resourceSearch)))
	mux.Handle("POST "+PathSearchAction, h.wrap(h.search(actionSearch)))
}

// endpoint answers with a value to encode, or an error for engine.Classify.
type endpoint func(r *http.Request) (any, error)

// wrap echoes X-Request-ID, as the specification asks, and writes the
// result or the error as JSON.
func (h *Handler) wrap(e endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Request-ID"); id != "" {
			w.Header().Set("X-Request-ID", id)
		}
		w.Header().Set("Content-Type", "application/json")
		out, err := e(r)
		code := http.StatusOK
		if err != nil {
			var d errorDetail
			code, d = h.errorDetail(err)
			out = errorBody{Error: d}
			if ch := engine.Classify(err).WWWAuthenticate(); ch != "" {
				w.Header().Set("WWW-Authenticate", ch)
			}
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(out) // the status is already sent; nothing to add on failure
	})
}

func (h *Handler) errorDetail(err error) (int, errorDetail) {
	f := engine.Classify(err)
	if f.Internal() {
		h.log.Error("internal error on the decision path", "err", err)
	}
	return f.HTTPStatus, errorDetail{Status: f.HTTPStatus, Message: f.Message}
}

func (h *Handler) configuration(r *http.Request) (any, error) {
	base := h.baseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if !ok {
			return nil, errors.New("discovery metadata: no base URL configured and no local address")
		}
		base = scheme + "://" + addr.String()
	}
	return configuration{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + PathEvaluation,
		AccessEvaluationsEndpoint: base + PathEvaluations,
		SearchSubjectEndpoint:     base + PathSearchSubject,
		SearchResourceEndpoint:    base + PathSearchResource,
		SearchActionEndpoint:      base + PathSearchAction,
	}, nil
}

// decode reads one JSON body within the message size limit, refusing what
// checkStrict refuses. Numbers stay json.Number so whole numbers become
// Longs exactly.
func (h *Handler) decode(r *http.Request, v any) error {
	max := int64(h.limits.MaxMessageBytes)
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return engine.Invalid("reading the body: %v", err)
	}
	if int64(len(body)) > max {
		return fmt.Errorf("%w: body larger than %d bytes", engine.ErrLimitExceeded, max)
	}
	if err := checkStrict(body, v); err != nil {
		return engine.Invalid("malformed JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return engine.Invalid("malformed JSON: %v", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return engine.Invalid("malformed JSON: data after the request object")
	}
	return nil
}

func (h *Handler) evaluation(r *http.Request) (any, error) {
	var req evaluation
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	p, err := h.engine.Pin()
	if err != nil {
		return nil, err
	}
	return h.decide(r.Context(), p, req)
}

func (h *Handler) evaluations(r *http.Request) (any, error) {
	var req evaluationsRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	semantic := req.Options.EvaluationsSemantic
	switch semantic {
	case "", executeAll, denyOnFirstDeny, permitOnFirstPermit:
	default:
		return nil, engine.Invalid("options.evaluations_semantic %q: want %s, %s or %s", semantic, executeAll, denyOnFirstDeny, permitOnFirstPermit)
	}
	if err := h.limits.CheckBatch(len(req.Evaluations)); err != nil {
		return nil, err
	}
	p, err := h.engine.Pin()
	if err != nil {
		return nil, err
	}
	if len(req.Evaluations) == 0 {
		// Without items the request is a single evaluation (spec §7.1).
		return h.decide(r.Context(), p, req.evaluation)
	}
	h.engine.ObserveBatch(FrontEnd, len(req.Evaluations))
	out := evaluationsResponse{Evaluations: make([]decision, 0, len(req.Evaluations))}
	for _, item := range req.Evaluations {
		d, err := h.decide(r.Context(), p, item.withDefaults(req.evaluation))
		if err != nil {
			if r.Context().Err() != nil {
				return nil, err // the client is gone: no point deciding the rest
			}
			_, detail := h.errorDetail(err)
			d = decision{Context: map[string]any{"error": detail}}
		}
		out.Evaluations = append(out.Evaluations, d)
		if (semantic == denyOnFirstDeny && !d.Decision) || (semantic == permitOnFirstPermit && d.Decision) {
			break
		}
	}
	return out, nil
}

// decide converts one evaluation and evaluates it against p.
func (h *Handler) decide(ctx context.Context, p engine.Pinned, e evaluation) (decision, error) {
	ctx, err := tokenContext(ctx, e)
	if err != nil {
		return decision{}, err
	}
	req, err := h.request(e)
	if err != nil {
		return decision{}, err
	}
	return h.evaluate(ctx, p, req)
}

// TokenProperty is the subject property carrying the principal's token:
// the HTTP Authorization header of an AuthZEN request authenticates the
// PEP to the PDP, not the subject. It is never a Cedar attribute.
const TokenProperty = "token"

// subjectToken is e's subject.properties.token, or "".
func subjectToken(e evaluation) (string, error) {
	if e.Subject == nil {
		return "", nil
	}
	v, ok := e.Subject.Properties[TokenProperty]
	if !ok {
		return "", nil
	}
	tok, isString := v.(string)
	if !isString || tok == "" {
		return "", engine.Invalid("subject.properties.%s must be a non-empty string", TokenProperty)
	}
	return tok, nil
}

// tokenContext is ctx carrying e's subject token, if any, for the
// authenticate step, beside the caller the transport set.
func tokenContext(ctx context.Context, e evaluation) (context.Context, error) {
	tok, err := subjectToken(e)
	if err != nil || tok == "" {
		return ctx, err
	}
	c := engine.CredentialsFrom(ctx)
	c.PrincipalToken = tok
	return engine.WithCredentials(ctx, c), nil
}

// evaluate decides a converted request against p.
func (h *Handler) evaluate(ctx context.Context, p engine.Pinned, req policystore.Request) (decision, error) {
	res, err := p.Evaluate(ctx, FrontEnd, req)
	if err != nil {
		return decision{}, err
	}
	d, id := res.Decision, res.ID
	out := decision{Decision: d.Allow, Context: map[string]any{"decision_id": id, "policy_revision": d.Revision}}
	if h.exposeReasons && len(d.Reasons) > 0 {
		out.Context["reasons"] = d.PolicyIDs()
	}
	return out, nil
}

// request maps an AuthZEN evaluation onto a decision request.
func (h *Handler) request(e evaluation) (policystore.Request, error) {
	var out policystore.Request
	var err error
	if e.Action == nil || e.Action.Name == "" {
		return out, engine.Invalid("action.name is required")
	}
	out.Action = types.NewEntityUID("Action", types.String(e.Action.Name))
	conv := converter{cedarvalue.New(h.limits)}
	out.Entities = types.EntityMap{}
	subject, tok := withoutToken(e.Subject)
	// With a token the subject's id may be left to the authenticate step,
	// which takes the principal from the verified token.
	if fromToken := tok && subject.ID == "" && len(subject.Properties) == 0; !fromToken {
		if out.Principal, err = conv.entity("subject", subject, out.Entities); err != nil {
			return out, err
		}
	}
	if out.Resource, err = conv.entity("resource", e.Resource, out.Entities); err != nil {
		return out, err
	}
	if out.Intent, err = conv.intent(e.Action.Properties); err != nil {
		return out, err
	}
	fields, err := conv.JSONRecord("context", e.Context, 0)
	if err != nil {
		return out, err
	}
	out.Context = fields
	return out, nil
}

// withoutToken is s without its token property, and whether it had one.
func withoutToken(s *entity) (*entity, bool) {
	if s == nil {
		return s, false
	}
	if _, ok := s.Properties[TokenProperty]; !ok {
		return s, false
	}
	out := *s
	out.Properties = make(map[string]any, len(s.Properties)-1)
	for k, v := range s.Properties {
		if k != TokenProperty {
			out.Properties[k] = v
		}
	}
	return &out, true
}

// converter converts the values of one evaluation.
type converter struct {
	*cedarvalue.Converter
}

// entity maps a subject or resource to its UID, and its properties, if
// any, to a request-scoped entity added to ents. The bundle stays
// authoritative for entities it defines.
func (c *converter) entity(what string, e *entity, ents types.EntityMap) (types.EntityUID, error) {
	if e == nil || e.Type == "" || e.ID == "" {
		return types.EntityUID{}, engine.Invalid("%s.type and %s.id are required", what, what)
	}
	uid, err := cedarvalue.EntityUID(what+".type", e.Type, e.ID)
	if err != nil {
		return uid, err
	}
	if len(e.Properties) == 0 {
		return uid, nil
	}
	attrs, err := c.JSONRecord(what+".properties", e.Properties, 0)
	if err != nil {
		return uid, err
	}
	if _, dup := ents[uid]; dup {
		return uid, engine.Invalid("subject and resource are the same entity with properties given twice")
	}
	ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
	return uid, nil
}

func (c *converter) intent(props map[string]any) (policystore.Intent, error) {
	var in policystore.Intent
	rest := make(map[string]any, len(props))
	for k, v := range props {
		rest[k] = v
	}
	fields := []*string{&in.Purpose, &in.TaskID, &in.Tool}
	for i, k := range intentKeys {
		v, ok := rest[k]
		if !ok {
			continue
		}
		s, isString := v.(string)
		if !isString {
			return in, engine.Invalid("action.properties.%s must be a string", k)
		}
		*fields[i] = s
		delete(rest, k)
	}
	attrs, err := c.JSONRecord("action.properties", rest, 1)
	in.Attributes = attrs
	return in, err
}
