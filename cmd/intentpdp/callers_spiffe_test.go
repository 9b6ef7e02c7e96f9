package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// fakeWorkloadAPI is a SPIFFE Workload API serving one X.509-SVID and its
// bundle, streaming every update to the watchers.
type fakeWorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	mu      sync.Mutex
	current *workload.X509SVIDResponse
	changed chan struct{} // closed and replaced at each update
}

// startWorkloadAPI serves a fake Workload API on a unix socket and returns
// its address.
func startWorkloadAPI(t *testing.T, api *fakeWorkloadAPI) string {
	t.Helper()
	// A short directory: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "wlapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(gs, api)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return "unix://" + sock
}

// set publishes an SVID of cert with the bundle of cas.
func (f *fakeWorkloadAPI) set(t *testing.T, id string, cert tls.Certificate, cas ...*x509.Certificate) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	for _, ca := range cas {
		bundle = append(bundle, ca.Raw...)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.current = &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId: id, X509Svid: cert.Certificate[0], X509SvidKey: key, Bundle: bundle,
	}}}
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

func (f *fakeWorkloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	for {
		f.mu.Lock()
		resp, changed := f.current, f.changed
		f.mu.Unlock()
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// serverSVID issues the PDP's own X.509-SVID from p's CA.
func (p *testPKI) serverSVID(t *testing.T, id string) tls.Certificate {
	t.Helper()
	u, _ := url.Parse(id)
	return p.issue(t, "pdp", &x509.Certificate{URIs: []*url.URL{u}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
}

// spiffeClient is the TLS configuration of a SPIFFE workload presenting
// cert, trusting cas, and accepting only the server SPIFFE ID pdp. It
// records the serial number of each server certificate it sees.
func spiffeClient(t *testing.T, cert tls.Certificate, pdp string, served *atomic.Pointer[big.Int], cas ...*x509.Certificate) *tls.Config {
	t.Helper()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		t.Fatal(err)
	}
	svid := &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf}, PrivateKey: cert.PrivateKey.(crypto.Signer)}
	bundle := x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString("example.org"), cas)
	cfg := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromString(pdp)))
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if served != nil {
			served.Store(cs.PeerCertificates[0].SerialNumber)
		}
		return nil
	}
	return cfg
}

// TestCallersWorkloadAPI serves every listener with the X.509-SVID of a
// (fake) Workload API and verifies callers with its bundle; when the API
// rotates the SVID and adds a CA, the new SVID is served and callers of the
// new CA are accepted, without a restart.
func TestCallersWorkloadAPI(t *testing.T) {
	const pdpID = "spiffe://example.org/intentpdp"
	ca1, ca2 := newTestPKI(t), newTestPKI(t)
	api := &fakeWorkloadAPI{}
	first := ca1.serverSVID(t, pdpID)
	api.set(t, pdpID, first, ca1.ca)
	sock := startWorkloadAPI(t, api)
	p := serveCallers(t, "--spiffe-socket", sock, "--spiffe-trust-domain", "example.org",
		"--decision-callers", "spiffe://example.org/orchestrator")

	orchestrator1 := ca1.svid(t, "spiffe://example.org/orchestrator")
	orchestrator2 := ca2.svid(t, "spiffe://example.org/orchestrator")
	served := new(atomic.Pointer[big.Int])
	resp, err := authorize(t, p.addrs["gRPC"], spiffeClient(t, orchestrator1, pdpID, served, ca1.ca, ca2.ca))
	if err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
		t.Fatalf("Authorize by the orchestrator = %v, %v", resp.GetDecision(), err)
	}
	if leaf, _ := x509.ParseCertificate(first.Certificate[0]); served.Load().Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("served certificate %v, want the Workload API's SVID %v", served.Load(), leaf.SerialNumber)
	}
	_, err = authorize(t, p.addrs["gRPC"], spiffeClient(t, orchestrator2, pdpID, nil, ca1.ca, ca2.ca))
	wantHandshakeRefused(t, "a caller of a CA the Workload API does not trust yet", err)
	_, err = authorize(t, p.addrs["gRPC"], spiffeClient(t, ca1.svid(t, "spiffe://example.org/agent/x"), pdpID, nil, ca1.ca))
	wantRefusedCaller(t, "an SVID off the allowlist", err)

	// Rotation: a new SVID from the new CA, and a bundle of both.
	second := ca2.serverSVID(t, pdpID)
	api.set(t, pdpID, second, ca1.ca, ca2.ca)
	leaf2, _ := x509.ParseCertificate(second.Certificate[0])
	pollUntil(t, "the rotated SVID served", func() bool {
		_, err := authorize(t, p.addrs["gRPC"], spiffeClient(t, orchestrator1, pdpID, served, ca1.ca, ca2.ca))
		return err == nil && served.Load().Cmp(leaf2.SerialNumber) == 0
	})
	if _, err := authorize(t, p.addrs["gRPC"], spiffeClient(t, orchestrator2, pdpID, nil, ca1.ca, ca2.ca)); err != nil {
		t.Errorf("a caller of the new CA after rotation: %v", err)
	}
	// The other listeners serve the same SVID.
	if _, err := pdpv1.NewPolicyAdminServiceClient(dial(t, p.addrs["admin API"], spiffeClient(t, orchestrator1, pdpID, nil, ca1.ca, ca2.ca))).GetStatus(t.Context(), &pdpv1.GetStatusRequest{}); err != nil {
		t.Errorf("admin API over the Workload API's SVID: %v", err)
	}
}
