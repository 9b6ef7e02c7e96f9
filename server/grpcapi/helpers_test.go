package grpcapi_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/internal/testutil/agentgrants"
	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grants"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// exampleStore returns a store serving the embedded example bundle.
func exampleStore(t testing.TB) *policystore.Store {
	t.Helper()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	store := policystore.NewStore()
	if _, err := store.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return store
}

// startServer serves svc over an in-memory listener and returns a client
// connection to it; both stop when the test ends.
func startServer(t testing.TB, svc *grpcapi.Service) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs, health := grpcapi.NewServer(svc)
	grpcapi.SetServing(health, true)
	go gs.Serve(lis) //nolint:errcheck // returns when the test stops the server
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readRequest is a valid request the example bundle allows.
func readRequest() *pdpv1.AuthorizeRequest {
	return &pdpv1.AuthorizeRequest{
		Principal: &pdpv1.EntityRef{Type: "Agent", Id: "code-reviewer"},
		Intent:    &pdpv1.Intent{Action: proto.String("read_file"), Purpose: "code-review", TaskId: "PR-1", Tool: "github.get_file"},
		Resource:  &pdpv1.EntityRef{Type: "Document", Id: "payments-api/README.md"},
	}
}

func str(s string) *pdpv1.Value { return &pdpv1.Value{Kind: &pdpv1.Value_StringValue{StringValue: s}} }
func long(n int64) *pdpv1.Value { return &pdpv1.Value{Kind: &pdpv1.Value_LongValue{LongValue: n}} }
func ext(fn, arg string) *pdpv1.Value {
	return &pdpv1.Value{Kind: &pdpv1.Value_ExtensionValue{ExtensionValue: &pdpv1.ExtensionCall{Fn: fn, Arg: arg}}}
}
func record(fields map[string]*pdpv1.Value) *pdpv1.Value {
	return &pdpv1.Value{Kind: &pdpv1.Value_RecordValue{RecordValue: &pdpv1.Record{Fields: fields}}}
}

// exampleGrants returns the enrich and consume steps of a grant store
// holding the example bundle's grants (examples/agents/grants), created
// through the grant API against store.
func exampleGrants(t testing.TB, store engine.SnapshotSource) []engine.Option {
	t.Helper()
	gs := grants.NewMemory()
	opts := []engine.Option{engine.WithEnricher(gs), engine.WithConsumer(gs)}
	if err := agentgrants.Create(context.Background(), engine.New(store, opts...), gs); err != nil {
		t.Fatal(err)
	}
	return opts
}

// newService returns the gRPC front end of an engine deciding against
// store with opts.
func newService(store engine.SnapshotSource, opts ...engine.Option) *grpcapi.Service {
	return grpcapi.New(engine.New(store, opts...))
}
