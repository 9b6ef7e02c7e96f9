package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// TestClassify covers every row of the error table: the gRPC code, the
// HTTP status, the reason and the message callers see.
func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err     error
		code    codes.Code
		status  int
		reason  string
		message string // "": the error's own text
	}{
		{fmt.Errorf("decode: %w", policystore.ErrInvalidRequest), codes.InvalidArgument, http.StatusBadRequest, engine.ReasonInvalidRequest, ""},
		{&policystore.EntityOverrideError{}, codes.InvalidArgument, http.StatusBadRequest, engine.ReasonEntityOverrides, ""},
		{fmt.Errorf("context: %w", engine.ErrLimitExceeded), codes.ResourceExhausted, http.StatusRequestEntityTooLarge, engine.ReasonLimitExceeded, ""},
		{fmt.Errorf("%w: /a//b", engine.ErrNonCanonicalPath), codes.InvalidArgument, http.StatusBadRequest, engine.ReasonNonCanonicalPath, ""},
		{fmt.Errorf("%w: X-Original-URI", engine.ErrConflictingRequestHeaders), codes.InvalidArgument, http.StatusBadRequest, engine.ReasonConflictingHeaders, ""},
		{fmt.Errorf("%w: GET /x", engine.ErrNoRoute), codes.PermissionDenied, http.StatusForbidden, engine.ReasonNoRoute, ""},
		{fmt.Errorf("%w: spiffe://example.org/x", engine.ErrCallerNotAllowed), codes.PermissionDenied, http.StatusForbidden, engine.ReasonCallerNotAllowed, ""},
		{fmt.Errorf("route: %w", engine.ErrUnauthenticated), codes.Unauthenticated, http.StatusUnauthorized, engine.ReasonUnauthenticated, ""},
		{engine.ErrTokenMissing, codes.Unauthenticated, http.StatusUnauthorized, engine.ReasonTokenMissing, ""},
		{fmt.Errorf("%w: signature", engine.ErrTokenInvalid), codes.Unauthenticated, http.StatusUnauthorized, engine.ReasonTokenInvalid, ""},
		{fmt.Errorf("%w: at 10:00", engine.ErrTokenExpired), codes.Unauthenticated, http.StatusUnauthorized, engine.ReasonTokenExpired, ""},
		{fmt.Errorf("%w: https://evil", engine.ErrIssuerNotAllowed), codes.Unauthenticated, http.StatusUnauthorized, engine.ReasonIssuerNotAllowed, ""},
		{engine.ErrAudienceMismatch, codes.Unauthenticated, http.StatusUnauthorized, engine.ReasonAudienceMismatch, ""},
		{engine.ErrTokenTooLongLived, codes.Unauthenticated, http.StatusUnauthorized, engine.ReasonTokenTooLongLived, ""},
		{fmt.Errorf("%w: Agent::\"a\"", engine.ErrPrincipalMismatch), codes.PermissionDenied, http.StatusForbidden, engine.ReasonPrincipalMismatch, ""},
		{policystore.ErrNoSnapshot, codes.Unavailable, http.StatusServiceUnavailable, engine.ReasonNoActiveBundle, ""},
		{engine.ErrDecisionNotLogged, codes.Unavailable, http.StatusServiceUnavailable, engine.ReasonNotLogged, ""},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded, http.StatusGatewayTimeout, engine.ReasonDeadline, "deadline exceeded before a decision"},
		{context.Canceled, codes.Canceled, 499, engine.ReasonCanceled, "request canceled before a decision"},
		{errors.New("disk on fire at /secret/path"), codes.Internal, http.StatusInternalServerError, engine.ReasonInternal, "internal error; the request was not evaluated"},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			t.Parallel()
			f := engine.Classify(c.err)
			want := c.message
			if want == "" {
				want = c.err.Error()
			}
			if f.Code != c.code || f.HTTPStatus != c.status || f.Reason != c.reason || f.Message != want {
				t.Errorf("Classify = %+v, want {%v %d %s %q}", f, c.code, c.status, c.reason, want)
			}
			if f.Internal() != (c.code == codes.Internal) {
				t.Errorf("Internal() = %v", f.Internal())
			}
			if c.code == codes.Internal && strings.Contains(f.Message, "/secret/path") {
				t.Errorf("internal detail leaked: %q", f.Message)
			}
		})
	}
	if f := engine.InternalFailure(); f.Code != codes.Internal || f.Reason != engine.ReasonInternal {
		t.Errorf("InternalFailure = %+v", f)
	}
}
