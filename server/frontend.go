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
)
