package engine

import "strings"

// Realm is the realm of intentpdp's Bearer challenges.
const Realm = "intentpdp"

// WWWAuthenticate is the RFC 6750 challenge an HTTP front end sends with a
// 401 for f, or "" when f is no principal-token failure. A missing token
// gets a bare challenge; a token that was refused gets
// error="invalid_token" and the reason as error_description.
func (f Failure) WWWAuthenticate() string {
	switch f.Reason {
	case ReasonTokenMissing:
		return `Bearer realm="` + Realm + `"`
	case ReasonTokenInvalid, ReasonTokenExpired, ReasonIssuerNotAllowed, ReasonAudienceMismatch, ReasonTokenTooLongLived:
		return `Bearer realm="` + Realm + `", error="invalid_token", error_description="` + strings.ToLower(f.Reason) + `"`
	}
	return ""
}
