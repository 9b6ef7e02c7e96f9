// Package gateway is the route-mapping library of the gateway hooks: it
// maps HTTP requests seen by an API gateway (Envoy ext_authz,
// nginx/Caddy/Traefik forward-auth) onto decision requests, decides them
// through the engine, and maps decisions back onto HTTP answers. It is no
// front end itself and imports none: the extauthz and forwardauth front
// ends describe their requests to it, so both map requests identically.
package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
)

// Config is the gateway mapping, read from the JSON file named by
// --gateway-config. Every field has a default; see SetDefaults.
type Config struct {
	// Principal says where the principal comes from.
	Principal PrincipalConfig `json:"principal"`
	// Intent names the headers that carry the intent's purpose, task and
	// tool.
	Intent IntentConfig `json:"intent"`
	// Routes map method and path to an action and a resource; the first
	// matching route wins. A request no route matches is denied.
	Routes []RouteConfig `json:"routes"`
	// ContextHeaders are the request headers copied into
	// context.http.headers (case-insensitive); no others are.
	ContextHeaders []string `json:"context_headers"`
	// ExposeReasons puts the determining policy ids into deny bodies.
	ExposeReasons bool `json:"expose_reasons"`
	// ForwardAuth names the headers through which the proxy in front of
	// the forward-auth hook describes the original request.
	ForwardAuth ForwardAuthConfig `json:"forward_auth"`
}

// ForwardAuthConfig names the one set of headers this deployment's proxy
// sets on forward-auth subrequests to describe the original request.
// Proxies pass the client's own headers along, so forward-auth refuses a
// subrequest carrying any other known method, URI or host header, or the
// configured ones more than once (ErrConflictingRequestHeaders): a client
// cannot name the request that is decided. The defaults are what Caddy and
// Traefik send, and what examples/nginx sets.
type ForwardAuthConfig struct {
	// MethodHeader carries the original method (default
	// X-Forwarded-Method).
	MethodHeader string `json:"method_header"`
	// URIHeader carries the original request target, escaped, with its
	// query (default X-Forwarded-Uri).
	URIHeader string `json:"uri_header"`
	// HostHeader carries the original host, context.http.host (default
	// X-Forwarded-Host); without it the subrequest's own Host is used.
	HostHeader string `json:"host_header"`
}

// PrincipalConfig says where a gateway request's principal comes from. The
// sources are tried in order: the mTLS peer's SPIFFE ID, the JWT claim
// Envoy's jwt_authn filter verified, then the header.
type PrincipalConfig struct {
	// Type is the principal's entity type (default "Agent").
	Type string `json:"type"`
	// SPIFFEPrefix is stripped from the peer's SPIFFE ID to give the
	// principal's id; a SPIFFE ID without it is refused. Empty keeps the
	// whole SPIFFE ID as the id.
	SPIFFEPrefix string `json:"spiffe_prefix"`
	// JWT locates verified token claims in Envoy's metadata.
	JWT JWTConfig `json:"jwt"`
	// Header, when set, names a request header holding the principal's id.
	// Only use it when the gateway sets or strips that header itself: it is
	// taken on trust.
	Header string `json:"header"`
}

// JWTConfig locates the claims that Envoy's jwt_authn filter wrote to
// dynamic metadata (payload_in_metadata) and forwarded to ext_authz
// (metadata_context_namespaces).
type JWTConfig struct {
	// Namespace is the metadata namespace (default
	// "envoy.filters.http.jwt_authn").
	Namespace string `json:"metadata_namespace"`
	// PayloadKey is the payload_in_metadata key (default "jwt_payload").
	PayloadKey string `json:"payload_key"`
	// Claim is the claim holding the principal's id (default "sub").
	Claim string `json:"claim"`
}

// IntentConfig names the headers that carry the intent.
type IntentConfig struct {
	PurposeHeader string `json:"purpose_header"` // default X-Intent-Purpose
	TaskIDHeader  string `json:"task_id_header"` // default X-Intent-Task-Id
	ToolHeader    string `json:"tool_header"`    // default X-Intent-Tool
}

// RouteConfig maps requests to an action and a resource.
type RouteConfig struct {
	// Method matches the request method; empty or "*" matches any.
	Method string `json:"method"`
	// Path is a template: literal segments, {name} for one segment and a
	// final {name...} for the rest of the path, e.g. /repos/{repo}/issues.
	Path string `json:"path"`
	// Action is the Cedar action id, e.g. list_issues; ActionType defaults
	// to Action.
	Action     string `json:"action"`
	ActionType string `json:"action_type"`
	// Resource is the resource; its id may use the path's parameters, e.g.
	// {"type": "Repository", "id": "{repo}"}.
	Resource ResourceConfig `json:"resource"`
}

// ResourceConfig is a resource template.
type ResourceConfig struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// LoadConfig reads a JSON config file, rejecting unknown fields so that a
// typo cannot silently fall back to a default.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("gateway config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("gateway config %s: %w", path, err)
	}
	return c, nil
}

// SetDefaults fills every unset field.
func (c *Config) SetDefaults() {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.Principal.Type, "Agent")
	def(&c.Principal.JWT.Namespace, "envoy.filters.http.jwt_authn")
	def(&c.Principal.JWT.PayloadKey, "jwt_payload")
	def(&c.Principal.JWT.Claim, "sub")
	def(&c.Intent.PurposeHeader, "X-Intent-Purpose")
	def(&c.Intent.TaskIDHeader, "X-Intent-Task-Id")
	def(&c.Intent.ToolHeader, "X-Intent-Tool")
	def(&c.ForwardAuth.MethodHeader, "X-Forwarded-Method")
	def(&c.ForwardAuth.URIHeader, "X-Forwarded-Uri")
	def(&c.ForwardAuth.HostHeader, "X-Forwarded-Host")
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

// compile checks the configuration and compiles its routes, reporting
// every problem at once.
func (c *Config) compile() ([]route, error) {
	var errs []error
	if _, err := types.NewEntityType(c.Principal.Type); err != nil {
		errs = append(errs, fmt.Errorf("principal.type %q: %w", c.Principal.Type, err))
	}
	routes := make([]route, 0, len(c.Routes))
	for i, r := range c.Routes {
		cr, err := compileRoute(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d]: %w", i, err))
		}
		routes = append(routes, cr)
	}
	for _, h := range c.ContextHeaders {
		if !validHeaderName(h) {
			errs = append(errs, fmt.Errorf("context_headers: %q is not a header name", h))
		}
	}
	fa := c.ForwardAuth
	names := map[string]string{}
	for _, f := range []struct{ field, name string }{
		{"method_header", fa.MethodHeader}, {"uri_header", fa.URIHeader}, {"host_header", fa.HostHeader},
	} {
		if !validHeaderName(f.name) {
			errs = append(errs, fmt.Errorf("forward_auth.%s: %q is not a header name", f.field, f.name))
			continue
		}
		if other, dup := names[http.CanonicalHeaderKey(f.name)]; dup {
			errs = append(errs, fmt.Errorf("forward_auth.%s: %q is also forward_auth.%s", f.field, f.name, other))
		}
		names[http.CanonicalHeaderKey(f.name)] = f.field
	}
	return routes, errors.Join(errs...)
}

func validHeaderName(h string) bool {
	return h != "" && !strings.ContainsAny(h, " :\t\r\n")
}
