package grpcapi_test

import (
	"context"
	"google.golang.org/protobuf/proto"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// switchingFetcher yields whatever bundle the test last published.
type switchingFetcher struct {
	next atomic.Pointer[policystore.Bundle]
}

func (f *switchingFetcher) Fetch(context.Context) (*policystore.Bundle, error) {
	return f.next.Load(), nil
}
func (f *switchingFetcher) Source() string { return "test" }

// flipPolicyBundle decides flipAuthorizeRequest as allow (revision allow-rev) or deny
// (revision deny-rev).
func flipPolicyBundle(allow bool) *policystore.Bundle {
	effect, rev := "forbid", "deny-rev"
	if allow {
		effect, rev = "permit", "allow-rev"
	}
	return &policystore.Bundle{Source: rev, Files: map[string][]byte{
		"manifest.json": []byte(`{"revision":"` + rev + `"}`),
		"policy.cedar":  []byte(`@id("p") ` + effect + ` (principal, action, resource);`),
	}}
}

var flipAuthorizeRequest = &pdpv1.AuthorizeRequest{
	Principal: &pdpv1.EntityRef{Type: "Agent", Id: "a"},
	Intent:    &pdpv1.Intent{Action: proto.String("read"), Purpose: "load-test"},
	Resource:  &pdpv1.EntityRef{Type: "Doc", Id: "d"},
}

// serveOnLoopback serves gs on a loopback port and returns a client connection.
func serveOnLoopback(t *testing.T, gs *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestReloadUnderLoad flips the bundle 200 times through the admin Reload
// RPC while clients call Authorize and BatchAuthorize over real TCP: no RPC
// may fail, and every decision must be the one its reported revision makes.
// A broken bundle pushed mid-load must change nothing but the status.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	const flips, clients, perFlip = 200, 6, 20
	store := policystore.NewStore()
	fetcher := &switchingFetcher{}
	fetcher.next.Store(flipPolicyBundle(true))
	reloader := bundlesrc.NewReloader(store, fetcher)
	if _, err := reloader.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	gs, hs := grpcapi.NewServer(newService(store))
	grpcapi.SetServing(hs, true)
	pdpConn := serveOnLoopback(t, gs)
	pdp := pdpv1.NewAuthorizationServiceClient(pdpConn)
	admin := pdpv1.NewPolicyAdminServiceClient(serveOnLoopback(t, grpcapi.NewAdminServer(reloader, slog.New(slog.DiscardHandler))))

	var requests, errs, mismatches atomic.Int64
	check := func(r *pdpv1.AuthorizeResponse) {
		requests.Add(1)
		allow := r.GetDecision() == pdpv1.Decision_DECISION_ALLOW
		if allow != (r.GetPolicyRevision() == "allow-rev") || r.GetPolicyRevision() == "" {
			mismatches.Add(1)
		}
	}
	start, done := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			<-start
			for {
				select {
				case <-done:
					return
				default:
				}
				if c%2 == 0 {
					resp, err := pdp.Authorize(t.Context(), flipAuthorizeRequest)
					if err != nil {
						errs.Add(1)
						continue
					}
					check(resp)
					continue
				}
				batch := &pdpv1.BatchAuthorizeRequest{Requests: []*pdpv1.AuthorizeRequest{flipAuthorizeRequest, flipAuthorizeRequest, flipAuthorizeRequest}}
				resp, err := pdp.BatchAuthorize(t.Context(), batch)
				if err != nil {
					errs.Add(1)
					continue
				}
				for _, r := range resp.GetResponses() {
					check(r)
					if r.GetPolicyRevision() != resp.GetPolicyRevision() {
						mismatches.Add(1) // a batch is decided against one snapshot
					}
				}
			}
		})
	}
	close(start)
	for i := range flips {
		if i == flips/2 {
			pushBrokenBundle(t, admin, fetcher, store)
		}
		fetcher.next.Store(flipPolicyBundle(i%2 == 1))
		resp, err := admin.Reload(t.Context(), &pdpv1.ReloadRequest{})
		if err != nil || resp.GetOutcome() != pdpv1.ReloadOutcome_RELOAD_OUTCOME_ACTIVATED {
			t.Fatalf("flip %d: %v %v", i, resp, err)
		}
		waitForDecisions(t, &requests, int64(i+1)*perFlip)
	}
	close(done)
	wg.Wait()
	t.Logf("reload under load: %d decisions, %d reloads, %d errors, %d mismatches", requests.Load(), flips, errs.Load(), mismatches.Load())
	if errs.Load() != 0 || mismatches.Load() != 0 || requests.Load() == 0 {
		t.Fatalf("%d RPC errors and %d mismatches in %d decisions", errs.Load(), mismatches.Load(), requests.Load())
	}
	health, err := healthpb.NewHealthClient(pdpConn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after reloads: %v %v", health, err)
	}
}

// pushBrokenBundle reloads a bundle with a syntax error: the outcome is FAILED
// with a located message, the revision does not change, and GetStatus shows
// the failure.
func pushBrokenBundle(t *testing.T, admin pdpv1.PolicyAdminServiceClient, f *switchingFetcher, store *policystore.Store) {
	t.Helper()
	before, _ := store.Current()
	f.next.Store(&policystore.Bundle{Source: "broken", Files: map[string][]byte{
		"policy.cedar": []byte("permit (principal, action, resource);\nforbid (principal,"),
	}})
	resp, err := admin.Reload(t.Context(), &pdpv1.ReloadRequest{})
	if err != nil || resp.GetOutcome() != pdpv1.ReloadOutcome_RELOAD_OUTCOME_FAILED || !strings.Contains(resp.GetError(), "policy.cedar:2:19") {
		t.Fatalf("broken bundle: %v %v", resp, err)
	}
	st, err := admin.GetStatus(t.Context(), &pdpv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	last, active := st.GetStatus().GetLastAttempt(), st.GetStatus().GetActive()
	if last.GetSuccess() || last.GetSource() != "broken" || last.GetError() != resp.GetError() ||
		active.GetRevision() != before.Revision() || active.GetPolicyCount() != 1 {
		t.Fatalf("status after a broken bundle: %v", st)
	}
}

// waitForDecisions yields until the clients have made n decisions, so that
// every revision is actually exercised; it gives up after a generous bound.
func waitForDecisions(t *testing.T, requests *atomic.Int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for requests.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("clients made only %d of %d decisions", requests.Load(), n)
		}
		runtime.Gosched()
	}
}
