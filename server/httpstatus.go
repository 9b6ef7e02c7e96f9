package server

import (
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// HTTPError maps an error from the decision path, through ToStatus, to the
// HTTP status an HTTP front end answers with and the status it came from.
func (s *Service) HTTPError(err error) (int, *status.Status) {
	st := status.Convert(ToStatus(s.log, err))
	return HTTPStatus(st.Code()), st
}

// HTTPStatus maps the code of a status made by ToStatus to the HTTP status
// an HTTP front end answers with, so HTTP and gRPC callers see the same
// classification of every error.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusRequestEntityTooLarge
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499 // client closed request, as nginx and Envoy report it
	default:
		return http.StatusInternalServerError
	}
}
