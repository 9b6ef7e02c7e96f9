// Package forwardauth serves the HTTP forward-auth hook of nginx
// (auth_request), Caddy (forward_auth) and Traefik (forwardAuth): the proxy
// asks intentpdp about each request before passing it on, and passes it
// only on a 2xx answer.
package forwardauth

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// FrontEnd is how metrics, spans and the decision log name this front end.
const FrontEnd engine.FrontEnd = "forward_auth"

// Path is where the handler is mounted on the HTTP listener.
const Path = "/forward-auth"

// The headers proxies are known to use to describe the original request
// to an auth service or to a backend. Caddy and Traefik send
// X-Forwarded-*; nginx sends whatever its configuration sets. One set is
// configured (gateway.ForwardAuthConfig); every other one present on a
// subrequest was sent by the client, or by a proxy configured differently
// from intentpdp, and is refused.
var (
	methodHeaders = []string{"X-Forwarded-Method", "X-Original-Method"}
	uriHeaders    = []string{"X-Forwarded-Uri", "X-Original-Uri", "X-Original-Url", "X-Rewrite-Url"}
	hostHeaders   = []string{"X-Forwarded-Host", "X-Original-Host"}
)

// Handler answers forward-auth subrequests: 200 with the decision headers
// on allow, 403 on deny, 401 without identity, 400 when the subrequest
// carries conflicting descriptions of the original request or a
// non-canonical path, and an error status (which proxies also treat as a
// denial) when no decision could be made. It is safe for concurrent use.
type Handler struct {
	checker *gateway.Checker
	method  string // canonical names of the configured headers
	uri     string
	host    string
	others  []string // the known headers not configured
}

// New returns a Handler deciding through checker, reading the original
// request from the headers checker's configuration names.
func New(checker *gateway.Checker) *Handler {
	fa := checker.ForwardAuth()
	h := &Handler{
		checker: checker,
		method:  http.CanonicalHeaderKey(fa.MethodHeader),
		uri:     http.CanonicalHeaderKey(fa.URIHeader),
		host:    http.CanonicalHeaderKey(fa.HostHeader),
	}
	for _, set := range [][]string{methodHeaders, uriHeaders, hostHeaders} {
		for _, n := range set {
			if n != h.method && n != h.uri && n != h.host {
				h.others = append(h.others, n)
			}
		}
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var a gateway.Answer
	if req, err := h.original(r); err != nil {
		a = h.checker.Refuse(err)
	} else {
		a = h.checker.Check(withBearer(r), req)
	}
	for k, vs := range a.Header {
		w.Header()[k] = vs
	}
	if a.Allow {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.HTTPStatus)
	_, _ = w.Write(a.Body) // the status is the answer; a lost body changes nothing
}

// withBearer is r's context carrying the original request's bearer token
// (nginx, Caddy and Traefik pass the client's Authorization header to the
// auth request), beside the caller the transport set.
func withBearer(r *http.Request) context.Context {
	ctx := r.Context()
	tok := gateway.BearerToken(r.Header)
	if tok == "" {
		return ctx
	}
	c := engine.CredentialsFrom(ctx)
	c.PrincipalToken = tok
	return engine.WithCredentials(ctx, c)
}

// original reconstructs the request the proxy is asking about from the
// configured headers, and only from them. Without the method or URI header
// it yields an empty method or path, which no route matches: the request is
// denied.
func (h *Handler) original(r *http.Request) (gateway.Request, error) {
	for _, n := range h.others {
		if _, ok := r.Header[n]; ok {
			return gateway.Request{}, fmt.Errorf("%w: %s is present but forward_auth reads %s, %s and %s",
				engine.ErrConflictingRequestHeaders, n, h.method, h.uri, h.host)
		}
	}
	method, err := single(r.Header, h.method)
	if err != nil {
		return gateway.Request{}, err
	}
	uri, err := single(r.Header, h.uri)
	if err != nil {
		return gateway.Request{}, err
	}
	host, err := single(r.Header, h.host)
	if err != nil {
		return gateway.Request{}, err
	}
	if host == "" {
		host = r.Host
	}
	return gateway.Request{
		FrontEnd:      FrontEnd,
		Method:        method,
		Path:          uri,
		Host:          host,
		Header:        r.Header,
		SourceAddress: clientIP(r.Header),
	}, nil
}

// single is the one value of header name, or "" without one; a repeated
// header is refused rather than resolved one way or the other.
func single(h http.Header, name string) (string, error) {
	switch vs := h[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	default:
		return "", fmt.Errorf("%w: %s is repeated", engine.ErrConflictingRequestHeaders, name)
	}
}

// clientIP is X-Real-IP, else the last X-Forwarded-For hop: the one the
// proxy in front of us appended, not one the client could have forged.
func clientIP(h http.Header) string {
	if ip := strings.TrimSpace(h.Get("X-Real-IP")); ip != "" {
		return ip
	}
	hops := h.Values("X-Forwarded-For")
	if len(hops) == 0 {
		return ""
	}
	last := hops[len(hops)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	last = strings.TrimSpace(last)
	if host, _, err := net.SplitHostPort(last); err == nil {
		return host
	}
	return last
}
