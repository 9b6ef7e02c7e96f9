// Package forwardauth serves the HTTP forward-auth hook of nginx
// (auth_request), Caddy (forward_auth) and Traefik (forwardAuth): the proxy
// asks intentpdp about each request before passing it on, and passes it
// only on a 2xx answer.
package forwardauth

import (
	"net"
	"net/http"
	"strings"

	"github.com/intentpdp/intentpdp/server"
	"github.com/intentpdp/intentpdp/server/gateway"
)

// Path is where the handler is mounted on the HTTP listener.
const Path = "/forward-auth"

// The headers proxies use to describe the original request. Caddy and
// Traefik send X-Forwarded-Method and X-Forwarded-Uri; nginx has no
// convention, so its configuration sets X-Original-Method and
// X-Original-URI (see examples/nginx).
var (
	methodHeaders = []string{"X-Forwarded-Method", "X-Original-Method"}
	uriHeaders    = []string{"X-Forwarded-Uri", "X-Original-URI"}
)

// Handler answers forward-auth subrequests: 200 with the decision headers
// on allow, 403 on deny, 401 without identity, and an error status (which
// proxies also treat as a denial) when no decision could be made.
type Handler struct {
	checker *gateway.Checker
}

// New returns a Handler deciding through checker.
func New(checker *gateway.Checker) *Handler { return &Handler{checker: checker} }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := h.checker.Check(r.Context(), original(r))
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

// original reconstructs the request the proxy is asking about. Without the
// method or URI headers it yields an empty method or path, which no route
// matches: the request is denied.
func original(r *http.Request) gateway.Request {
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	return gateway.Request{
		FrontEnd:      server.FrontEndForwardAuth,
		Method:        first(r.Header, methodHeaders),
		Path:          first(r.Header, uriHeaders),
		Host:          host,
		Header:        r.Header,
		SourceAddress: clientIP(r.Header),
	}
}

func first(h http.Header, names []string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
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
