package engine

import "context"

// Credentials are what a front end read from a request to prove who is
// asking. The engine's authenticate step verifies them; nothing else in the
// engine trusts them.
type Credentials struct {
	// Caller is the SPIFFE ID of the mTLS peer (orchestrator, gateway),
	// already verified by the transport against the trust bundle; empty
	// without mTLS.
	Caller string
	// PrincipalToken is the principal's token (a JWT-SVID or an OIDC access
	// token) as the caller forwarded it, unverified; empty when none.
	PrincipalToken string
}

type credentialsKey struct{}

// WithCredentials returns ctx carrying c for the Authenticator. Front ends
// call it once per request, before Evaluate; a batch shares them.
func WithCredentials(ctx context.Context, c Credentials) context.Context {
	return context.WithValue(ctx, credentialsKey{}, c)
}

// CredentialsFrom returns the credentials a front end attached to ctx, or
// the zero Credentials.
func CredentialsFrom(ctx context.Context) Credentials {
	c, _ := ctx.Value(credentialsKey{}).(Credentials)
	return c
}
