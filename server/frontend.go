package server

import "errors"

// Errors of the gateway front ends (Envoy ext_authz, forward-auth), mapped
// by ToStatus like every other decision-path error.
var (
	// ErrUnauthenticated marks a gateway request with no usable identity.
	ErrUnauthenticated = errors.New("no principal identity in the request")
	// ErrNoRoute marks a gateway request that no configured route maps to
	// an action; it is denied without evaluation.
	ErrNoRoute = errors.New("no route maps the request to an action")
	// ErrNonCanonicalPath marks a gateway request whose path a proxy or a
	// backend could read as another path than the one intentpdp would
	// decide on (dot or empty segments, encoded slashes, double encoding,
	// control characters, ...); it is refused without evaluation.
	ErrNonCanonicalPath = errors.New("request path is not canonical")
	// ErrConflictingRequestHeaders marks a gateway request carrying headers
	// that could describe another request than the one the proxy asks
	// about (a method or URI header other than the configured ones, a
	// repeated one, a method override); it is refused without evaluation.
	ErrConflictingRequestHeaders = errors.New("conflicting request headers")
)
