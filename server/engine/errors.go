package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/intentpdp/intentpdp/policystore"
)

// Errors of the decision path that no other package owns. Front ends wrap
// them with what they know ("%w: GET /x").
var (
	// ErrUnauthenticated marks a request with no usable identity.
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
	// ErrDecisionNotLogged means a decision was made but could not be
	// recorded in the decision log (it is closing, or in block mode or
	// with a durable log the request's context ended first), so it is not
	// returned.
	ErrDecisionNotLogged = errors.New("the decision could not be logged")
	// ErrCallerNotAllowed marks a request whose transport peer (the mTLS
	// caller's SPIFFE ID) is not on the allowlist of the service it calls;
	// it is refused before anything is evaluated.
	ErrCallerNotAllowed = errors.New("caller not allowed")
)

// Errors of the authenticate step (a principal token). Each token error
// wraps ErrUnauthenticated; ErrPrincipalMismatch is a refusal of a proven
// identity, not a missing one.
var (
	ErrTokenMissing      = fmt.Errorf("%w: a principal token is required", ErrUnauthenticated)
	ErrTokenInvalid      = fmt.Errorf("%w: invalid principal token", ErrUnauthenticated)
	ErrTokenExpired      = fmt.Errorf("%w: the principal token has expired", ErrUnauthenticated)
	ErrIssuerNotAllowed  = fmt.Errorf("%w: the principal token's issuer is not allowed", ErrUnauthenticated)
	ErrAudienceMismatch  = fmt.Errorf("%w: the principal token is not for this audience", ErrUnauthenticated)
	ErrTokenTooLongLived = fmt.Errorf("%w: the principal token lives longer than allowed", ErrUnauthenticated)
	ErrPrincipalMismatch = errors.New("the request's principal is not the one its token proves")
)

// ErrorDomain is the ErrorInfo domain of every error intentpdp returns.
const ErrorDomain = "intentpdp"

// Machine-readable reasons, carried in errdetails.ErrorInfo by gRPC.
const (
	ReasonInvalidRequest     = "INVALID_REQUEST"
	ReasonLimitExceeded      = "LIMIT_EXCEEDED"
	ReasonNoActiveBundle     = "NO_ACTIVE_BUNDLE"
	ReasonDeadline           = "DEADLINE_EXCEEDED"
	ReasonCanceled           = "CANCELED"
	ReasonInternal           = "INTERNAL"
	ReasonEntityOverrides    = "ENTITY_OVERRIDE_REJECTED"
	ReasonUnauthenticated    = "UNAUTHENTICATED"
	ReasonNoRoute            = "NO_ROUTE"
	ReasonNonCanonicalPath   = "NON_CANONICAL_PATH"
	ReasonConflictingHeaders = "CONFLICTING_REQUEST_HEADERS"
	ReasonNotLogged          = "DECISION_NOT_LOGGED"
	ReasonCallerNotAllowed   = "CALLER_NOT_ALLOWED"
	ReasonTokenMissing       = "TOKEN_MISSING"
	ReasonTokenInvalid       = "TOKEN_INVALID"
	ReasonTokenExpired       = "TOKEN_EXPIRED"
	ReasonIssuerNotAllowed   = "ISSUER_NOT_ALLOWED"
	ReasonAudienceMismatch   = "AUDIENCE_MISMATCH"
	ReasonTokenTooLongLived  = "TOKEN_TOO_LONG_LIVED"
	ReasonPrincipalMismatch  = "PRINCIPAL_MISMATCH"
)

// StatusClientClosedRequest is the HTTP status of a request its client
// canceled, as nginx and Envoy report it.
const StatusClientClosedRequest = 499

// Failure is how every front end reports an error of the decision path:
// the gRPC code and the HTTP status for the same classification, the
// machine-readable reason and a message safe to show the caller.
type Failure struct {
	Code       codes.Code
	HTTPStatus int
	Reason     string
	Message    string
}

// Internal reports whether the failure hides an internal error, which the
// front end should log (the message says nothing about it).
func (f Failure) Internal() bool { return f.Reason == ReasonInternal }

// failureRow is one row of the error table. A fixed message replaces the
// error's own; otherwise the error's text is the message.
type failureRow struct {
	is      func(error) bool
	code    codes.Code
	status  int
	reason  string
	message string
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func isOverride(err error) bool {
	var override *policystore.EntityOverrideError
	return errors.As(err, &override)
}

// failures is the one table from domain errors to what callers see, first
// match wins. Anything else is INTERNAL.
var failures = [...]failureRow{
	{isOverride, codes.InvalidArgument, http.StatusBadRequest, ReasonEntityOverrides, ""},
	{is(policystore.ErrInvalidRequest), codes.InvalidArgument, http.StatusBadRequest, ReasonInvalidRequest, ""},
	{is(ErrLimitExceeded), codes.ResourceExhausted, http.StatusRequestEntityTooLarge, ReasonLimitExceeded, ""},
	{is(ErrTokenMissing), codes.Unauthenticated, http.StatusUnauthorized, ReasonTokenMissing, ""},
	{is(ErrTokenExpired), codes.Unauthenticated, http.StatusUnauthorized, ReasonTokenExpired, ""},
	{is(ErrIssuerNotAllowed), codes.Unauthenticated, http.StatusUnauthorized, ReasonIssuerNotAllowed, ""},
	{is(ErrAudienceMismatch), codes.Unauthenticated, http.StatusUnauthorized, ReasonAudienceMismatch, ""},
	{is(ErrTokenTooLongLived), codes.Unauthenticated, http.StatusUnauthorized, ReasonTokenTooLongLived, ""},
	{is(ErrTokenInvalid), codes.Unauthenticated, http.StatusUnauthorized, ReasonTokenInvalid, ""},
	{is(ErrUnauthenticated), codes.Unauthenticated, http.StatusUnauthorized, ReasonUnauthenticated, ""},
	{is(ErrPrincipalMismatch), codes.PermissionDenied, http.StatusForbidden, ReasonPrincipalMismatch, ""},
	{is(ErrNonCanonicalPath), codes.InvalidArgument, http.StatusBadRequest, ReasonNonCanonicalPath, ""},
	{is(ErrConflictingRequestHeaders), codes.InvalidArgument, http.StatusBadRequest, ReasonConflictingHeaders, ""},
	{is(ErrCallerNotAllowed), codes.PermissionDenied, http.StatusForbidden, ReasonCallerNotAllowed, ""},
	{is(ErrNoRoute), codes.PermissionDenied, http.StatusForbidden, ReasonNoRoute, ""},
	{is(policystore.ErrNoSnapshot), codes.Unavailable, http.StatusServiceUnavailable, ReasonNoActiveBundle, ""},
	{is(ErrDecisionNotLogged), codes.Unavailable, http.StatusServiceUnavailable, ReasonNotLogged, ""},
	{is(context.DeadlineExceeded), codes.DeadlineExceeded, http.StatusGatewayTimeout, ReasonDeadline, "deadline exceeded before a decision"},
	{is(context.Canceled), codes.Canceled, StatusClientClosedRequest, ReasonCanceled, "request canceled before a decision"},
}

var internal = Failure{
	Code: codes.Internal, HTTPStatus: http.StatusInternalServerError, Reason: ReasonInternal,
	Message: "internal error; the request was not evaluated",
}

// Classify maps any non-nil error from the decision path to its Failure.
// It is the one place where domain errors become codes and statuses.
// Internal details are never in the message.
func Classify(err error) Failure {
	for _, r := range failures {
		if r.is(err) {
			msg := r.message
			if msg == "" {
				msg = err.Error()
			}
			return Failure{Code: r.code, HTTPStatus: r.status, Reason: r.reason, Message: msg}
		}
	}
	return internal
}

// Status is f as a gRPC status carrying its reason in an ErrorInfo, for
// the front ends that answer in gRPC terms (gRPC, Envoy ext_authz).
func (f Failure) Status() *status.Status {
	st := status.New(f.Code, f.Message)
	if detailed, err := st.WithDetails(&errdetails.ErrorInfo{Reason: f.Reason, Domain: ErrorDomain}); err == nil {
		st = detailed
	}
	return st
}

// InternalFailure is the Failure of an internal error (a recovered panic).
func InternalFailure() Failure { return internal }
