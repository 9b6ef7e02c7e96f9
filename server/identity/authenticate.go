package identity

import (
	"context"
	"fmt"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// Binding says where a request's principal comes from.
type Binding string

const (
	// BindRequest takes the principal from the request, as without
	// verification; a token is optional, and when present it must verify
	// and fills context.identity (and the principal, if the request names
	// none).
	BindRequest Binding = "request"
	// BindVerified requires a token and takes the principal from it; a
	// request principal that differs is refused (PRINCIPAL_MISMATCH).
	BindVerified Binding = "verified"
	// BindVerifiedOrRequest is BindVerified when a token is present, and
	// BindRequest otherwise (migration).
	BindVerifiedOrRequest Binding = "verified-or-request"
)

// ParseBinding checks a --principal-binding value.
func ParseBinding(s string) (Binding, error) {
	switch b := Binding(s); b {
	case BindRequest, BindVerified, BindVerifiedOrRequest:
		return b, nil
	}
	return "", fmt.Errorf("principal-binding must be %s, %s or %s, not %q", BindRequest, BindVerified, BindVerifiedOrRequest, s)
}

// Authenticator is the engine's authenticate step for principal tokens:
// it verifies the token the front end put in the request's
// engine.Credentials, binds the principal as its Binding says and sets
// req.Identity. It is safe for concurrent use.
type Authenticator struct {
	verifier *Verifier
	binding  Binding
}

// NewAuthenticator returns the authenticate step verifying with v.
func NewAuthenticator(v *Verifier, binding Binding) *Authenticator {
	return &Authenticator{verifier: v, binding: binding}
}

// Authenticate implements engine.Authenticator. With a proven principal
// (verified bindings), request entities may not describe it: its
// attributes and parents come from the bundle only, so such a request is
// refused (*policystore.EntityOverrideError).
func (a *Authenticator) Authenticate(ctx context.Context, req policystore.Request) (policystore.Request, error) {
	creds := engine.CredentialsFrom(ctx)
	if creds.PrincipalToken == "" {
		if a.binding == BindVerified {
			return req, engine.ErrTokenMissing
		}
		return req, nil
	}
	ver, err := a.verifier.Verify(ctx, creds.PrincipalToken)
	if err != nil {
		return req, err
	}
	out := req
	out.Identity = ver.ForCaller(creds.Caller)
	unset := req.Principal == types.EntityUID{}
	if a.binding == BindRequest {
		if unset {
			out.Principal = ver.Principal
		}
		return out, nil
	}
	if !unset && req.Principal != ver.Principal {
		return req, fmt.Errorf("%w: the token proves %s", engine.ErrPrincipalMismatch, ver.Principal)
	}
	out.Principal = ver.Principal
	if _, ok := req.Entities[ver.Principal]; ok {
		return req, &policystore.EntityOverrideError{Ignored: []policystore.IgnoredEntity{{
			UID: ver.Principal, Detail: "the principal is proven by its token: request entities may not describe it",
		}}}
	}
	return out, nil
}
