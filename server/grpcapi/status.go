package grpcapi

import (
	"log/slog"

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

// statusOf is f as a gRPC status error.
func statusOf(f engine.Failure) error { return f.Status().Err() }
