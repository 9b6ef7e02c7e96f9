package grpcapi

import (
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/intentpdp/intentpdp/server/engine"
)

// toStatus turns an error of the decision path into the gRPC status that
// engine.Classify gives it, with its reason in an ErrorInfo; an error that
// already is a status is kept. Internal details are logged, not returned.
func toStatus(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	f := engine.Classify(err)
	if f.Internal() {
		log.Error("internal error on the decision path", "err", err)
	}
	return statusOf(f)
}

// statusOf is f as a gRPC status error with an ErrorInfo.
func statusOf(f engine.Failure) error {
	st := status.New(f.Code, f.Message)
	if detailed, err := st.WithDetails(&errdetails.ErrorInfo{Reason: f.Reason, Domain: engine.ErrorDomain}); err == nil {
		st = detailed
	}
	return st.Err()
}
