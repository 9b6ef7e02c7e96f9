package server_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server"
)

// TestHTTPStatus: HTTP front ends classify errors exactly as ToStatus does
// for gRPC, the gateway errors included.
func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		err      error
		wantCode codes.Code
		wantHTTP int
	}{
		{fmt.Errorf("route: %w", server.ErrUnauthenticated), codes.Unauthenticated, http.StatusUnauthorized},
		{fmt.Errorf("%w: GET /x", server.ErrNoRoute), codes.PermissionDenied, http.StatusForbidden},
		{fmt.Errorf("%w: bad", policystore.ErrInvalidRequest), codes.InvalidArgument, http.StatusBadRequest},
		{fmt.Errorf("%w: big", server.ErrLimitExceeded), codes.ResourceExhausted, http.StatusRequestEntityTooLarge},
		{policystore.ErrNoSnapshot, codes.Unavailable, http.StatusServiceUnavailable},
		{errors.New("boom"), codes.Internal, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		st := status.Convert(server.ToStatus(log, tt.err))
		if st.Code() != tt.wantCode {
			t.Errorf("ToStatus(%v) = %v, want %v", tt.err, st.Code(), tt.wantCode)
		}
		if got := server.HTTPStatus(st.Code()); got != tt.wantHTTP {
			t.Errorf("HTTPStatus(%v) = %d, want %d", st.Code(), got, tt.wantHTTP)
		}
	}
}
