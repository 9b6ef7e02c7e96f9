package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/intentpdp/intentpdp/policystore"
)

// ErrorDomain is the ErrorInfo domain of every error the server returns.
const ErrorDomain = "intentpdp"

// Machine-readable reasons carried in errdetails.ErrorInfo.
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
)

// ToStatus maps any error from the decision path to a gRPC status with an
// ErrorInfo reason. It is the one place where domain errors become codes.
// Internal details are logged, not returned.
func ToStatus(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var override *policystore.EntityOverrideError
	switch {
	case errors.As(err, &override):
		return withReason(codes.InvalidArgument, ReasonEntityOverrides, err.Error())
	case errors.Is(err, policystore.ErrInvalidRequest):
		return withReason(codes.InvalidArgument, ReasonInvalidRequest, err.Error())
	case errors.Is(err, ErrLimitExceeded):
		return withReason(codes.ResourceExhausted, ReasonLimitExceeded, err.Error())
	case errors.Is(err, ErrUnauthenticated):
		return withReason(codes.Unauthenticated, ReasonUnauthenticated, err.Error())
	case errors.Is(err, ErrNonCanonicalPath):
		return withReason(codes.InvalidArgument, ReasonNonCanonicalPath, err.Error())
	case errors.Is(err, ErrConflictingRequestHeaders):
		return withReason(codes.InvalidArgument, ReasonConflictingHeaders, err.Error())
	case errors.Is(err, ErrNoRoute):
		return withReason(codes.PermissionDenied, ReasonNoRoute, err.Error())
	case errors.Is(err, policystore.ErrNoSnapshot):
		return withReason(codes.Unavailable, ReasonNoActiveBundle, err.Error())
	case errors.Is(err, ErrDecisionNotLogged):
		return withReason(codes.Unavailable, ReasonNotLogged, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return withReason(codes.DeadlineExceeded, ReasonDeadline, "deadline exceeded before a decision")
	case errors.Is(err, context.Canceled):
		return withReason(codes.Canceled, ReasonCanceled, "request canceled before a decision")
	default:
		log.Error("internal error on the decision path", "err", err)
		return withReason(codes.Internal, ReasonInternal, "internal error; the request was not evaluated")
	}
}

func withReason(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	if detailed, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		st = detailed
	}
	return st.Err()
}
