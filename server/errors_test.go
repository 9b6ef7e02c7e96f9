package server_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server"
)

func TestToStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{fmt.Errorf("decode: %w", policystore.ErrInvalidRequest), codes.InvalidArgument, server.ReasonInvalidRequest},
		{&policystore.EntityOverrideError{}, codes.InvalidArgument, server.ReasonEntityOverrides},
		{fmt.Errorf("context: %w", server.ErrLimitExceeded), codes.ResourceExhausted, server.ReasonLimitExceeded},
		{fmt.Errorf("%w: /a//b", server.ErrNonCanonicalPath), codes.InvalidArgument, server.ReasonNonCanonicalPath},
		{fmt.Errorf("%w: X-Original-URI", server.ErrConflictingRequestHeaders), codes.InvalidArgument, server.ReasonConflictingHeaders},
		{fmt.Errorf("%w: GET /x", server.ErrNoRoute), codes.PermissionDenied, server.ReasonNoRoute},
		{server.ErrUnauthenticated, codes.Unauthenticated, server.ReasonUnauthenticated},
		{policystore.ErrNoSnapshot, codes.Unavailable, server.ReasonNoActiveBundle},
		{server.ErrDecisionNotLogged, codes.Unavailable, server.ReasonNotLogged},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded, server.ReasonDeadline},
		{context.Canceled, codes.Canceled, server.ReasonCanceled},
		{errors.New("disk on fire at /secret/path"), codes.Internal, server.ReasonInternal},
		{status.Error(codes.PermissionDenied, "kept"), codes.PermissionDenied, ""},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			t.Parallel()
			err := server.ToStatus(slog.New(slog.DiscardHandler), c.err)
			assertStatus(t, err, c.code, c.reason)
			if c.code == codes.Internal && strings.Contains(status.Convert(err).Message(), "/secret/path") {
				t.Errorf("internal detail leaked: %q", status.Convert(err).Message())
			}
		})
	}
	if server.ToStatus(slog.New(slog.DiscardHandler), nil) != nil {
		t.Error("nil error must stay nil")
	}
}

// panickingStore stands for a bug deep in the decision path.
type panickingStore struct{}

func (panickingStore) Current() (*policystore.Snapshot, error) { panic("bug") }

func TestPanicIsRecoveredAsInternal(t *testing.T) {
	t.Parallel()
	client := pdpv1.NewAuthorizationServiceClient(startServer(t, server.NewService(panickingStore{})))
	for range 2 { // the server survives the first panic
		_, err := client.Authorize(context.Background(), readRequest())
		assertStatus(t, err, codes.Internal, server.ReasonInternal)
	}
}
