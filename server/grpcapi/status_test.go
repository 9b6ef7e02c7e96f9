package grpcapi_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
)

// panickingStore stands for a bug deep in the decision path.
type panickingStore struct{}

func (panickingStore) Current() (*policystore.Snapshot, error) { panic("bug") }

func TestPanicIsRecoveredAsInternal(t *testing.T) {
	t.Parallel()
	client := pdpv1.NewAuthorizationServiceClient(startServer(t, newService(panickingStore{})))
	for range 2 { // the server survives the first panic
		_, err := client.Authorize(context.Background(), readRequest())
		assertStatus(t, err, codes.Internal, engine.ReasonInternal)
	}
}

// failingStore fails every load with err.
type failingStore struct{ err error }

func (s failingStore) Current() (*policystore.Snapshot, error) { return nil, s.err }

// TestStatusCarriesReason: an error of the decision path reaches a gRPC
// caller as engine.Classify's code with its reason in an ErrorInfo.
func TestStatusCarriesReason(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		policystore.ErrNoSnapshot,
		fmt.Errorf("%w: no", engine.ErrUnauthenticated),
		context.DeadlineExceeded,
		fmt.Errorf("bug"),
	} {
		client := pdpv1.NewAuthorizationServiceClient(startServer(t, newService(failingStore{err})))
		_, got := client.Authorize(context.Background(), readRequest())
		f := engine.Classify(err)
		assertStatus(t, got, f.Code, f.Reason)
	}
}
