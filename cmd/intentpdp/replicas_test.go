package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/internal/testutil/ociregistry"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// searchCodeRequest is allowed by the example bundle, denied under
// noSearchPolicy.
func searchCodeRequest() *pdpv1.AuthorizeRequest {
	return &pdpv1.AuthorizeRequest{
		Principal: &pdpv1.EntityRef{Type: "Agent", Id: "code-reviewer"},
		Intent:    &pdpv1.Intent{Action: proto.String("search_code"), Purpose: "code-review"},
		Resource:  &pdpv1.EntityRef{Type: "Repository", Id: "payments-api"},
	}
}

func healthz(addr string) int {
	resp, err := http.Get("http://" + addr + healthzPath)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestShutdownDelayReportsNotServingFirst: on SIGTERM a replica with
// --shutdown-delay reports NOT_SERVING (gRPC health and /healthz) while it
// still accepts and answers new calls, and only then drains and exits.
func TestShutdownDelayReportsNotServingFirst(t *testing.T) {
	t.Parallel()
	p := startServe(t, nil, "--shutdown-delay", "3s")
	if code := healthz(p.httpAddr); code != http.StatusOK {
		t.Fatalf("/healthz while serving: %d", code)
	}
	hc := healthpb.NewHealthClient(p.conn)
	if resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health while serving: %v, %v", resp, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "/healthz to answer 503", func() bool { return healthz(p.httpAddr) == http.StatusServiceUnavailable })
	if resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("gRPC health during the delay: %v, %v", resp, err)
	}
	// A balancer that has not noticed yet still gets answers, on a new
	// connection too.
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if r, err := pdpv1.NewAuthorizationServiceClient(conn).Authorize(t.Context(), searchCodeRequest()); err != nil || r.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
		t.Fatalf("Authorize during the shutdown delay: %v, %v", r, err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.logs())
		}
	case <-time.After(startupDeadline):
		t.Fatal("intentpdp did not exit after the shutdown delay")
	}
	logs := p.logs()
	if i, j := strings.Index(logs, "still serving for the shutdown delay"), strings.Index(logs, "draining in-flight requests"); i < 0 || j < i {
		t.Fatalf("shutdown order: delay at %d, drain at %d\n%s", i, j, logs)
	}
}

// replicaRevision is what a replica reports as its revision: in admin
// GetStatus and in intentpdp_policy_revision_info.
func replicaRevision(t *testing.T, p *servedBinary, admin pdpv1.PolicyAdminServiceClient) (status, metric string) {
	t.Helper()
	resp, err := admin.GetStatus(t.Context(), &pdpv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range p.scrape(t)["intentpdp_policy_revision_info"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "revision" && m.GetGauge().GetValue() == 1 {
				metric = l.GetValue()
			}
		}
	}
	return resp.GetStatus().GetActive().GetRevision(), metric
}

// converge starts n replicas with args, publishes a new bundle with
// publish, and returns how long each replica took, from the end of the
// publish, to report it in GetStatus and in its revision metric; each then
// decides with it.
func converge(t *testing.T, n int, args []string, publish func(revision string)) []time.Duration {
	t.Helper()
	replicas := make([]*servedBinary, n)
	admins := make([]pdpv1.PolicyAdminServiceClient, n)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { replicas[i] = startServe(t, nil, args...) })
	}
	wg.Wait()
	for i, p := range replicas {
		admins[i] = p.admin(t)
		if st, m := replicaRevision(t, p, admins[i]); st != "agents-example-v1" || m != st {
			t.Fatalf("replica %d starts on %q (metric %q)", i, st, m)
		}
	}
	const want = "agents-example-v2"
	begin := time.Now()
	publish(want)
	start := time.Now() // propagation is measured from the end of the publish
	t.Logf("publishing took %v", start.Sub(begin))
	took := make([]time.Duration, n)
	for i, p := range replicas {
		wg.Go(func() {
			deadline := time.Now().Add(30 * time.Second)
			for {
				st, m := replicaRevision(t, p, admins[i])
				if st == want && m == want {
					took[i] = time.Since(start)
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("replica %d still on %q (metric %q)\n%s", i, st, m, p.logs())
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	for i, p := range replicas {
		r, err := p.client.Authorize(t.Context(), searchCodeRequest())
		if err != nil || r.GetPolicyRevision() != want || r.GetDecision() != pdpv1.Decision_DECISION_DENY {
			t.Fatalf("replica %d after convergence: %v, %v", i, r, err)
		}
	}
	sorted := slices.Clone(took)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	t.Logf("convergence of %d replicas: %v (p50 %v, max %v)", n, took, sorted[n/2], sorted[n-1])
	return took
}

// v2Bundle edits the example bundle in dir into revision, which denies
// searchCodeRequest.
func v2Bundle(t *testing.T, dir, revision string) {
	t.Helper()
	writeBundleFile(t, filepath.Join(dir, "no-search.cedar"), noSearchPolicy)
	writeBundleFile(t, filepath.Join(dir, "manifest.json"), `{"revision": "`+revision+`"}`)
}

// TestReplicasConvergeOnRegistry runs three replicas polling one real OCI
// registry, signed bundles required, and publishes a new bundle with
// `intentpdp bundle push`: every replica serves it.
func TestReplicasConvergeOnRegistry(t *testing.T) {
	t.Parallel()
	reg := ociregistry.Start(t, ociregistry.Options{})
	tmp := t.TempDir()
	key := filepath.Join(tmp, "signer")
	if out, err := runIntentpdp(t, "bundle", "keygen", "-o", key); err != nil {
		t.Fatal(out)
	}
	regConfig := filepath.Join(tmp, "config.json")
	writeBundleFile(t, regConfig, "{}")
	loc := "oci://" + reg.Host + "/intentpdp/agents:prod"
	dir := copyExampleBundle(t)
	push := func(seq string) {
		t.Helper()
		out, err := runIntentpdp(t, "bundle", "push", dir, loc, "--sign", key+".key", "--sequence", seq,
			"--registry-plain-http", "--registry-config", regConfig)
		if err != nil || !strings.Contains(out, "@sha256:") {
			t.Fatalf("bundle push: %v\n%s", err, out)
		}
	}
	push("1")
	converge(t, 3, []string{"--bundle-url", loc, "--registry-plain-http", "--registry-config", regConfig,
		"--verify-key", key + ".pub", "--poll-interval", "100ms", "--poll-max-backoff", "1s"},
		func(revision string) {
			v2Bundle(t, dir, revision)
			push("2")
		})
}

// TestReplicasConvergeOnHTTPArchive is the same with an HTTP archive
// source (ETags).
func TestReplicasConvergeOnHTTPArchive(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	archive := filepath.Join(tmp, "bundle.tar.gz")
	dir := copyExampleBundle(t)
	build := func() {
		t.Helper()
		next := filepath.Join(tmp, "next.tar.gz")
		if out, err := runIntentpdp(t, "bundle", "build", dir, "-o", next); err != nil {
			t.Fatal(out)
		}
		if err := os.Rename(next, archive); err != nil {
			t.Fatal(err)
		}
	}
	build()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile(archive)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256(data)))
		http.ServeContent(w, r, "bundle.tar.gz", time.Time{}, bytes.NewReader(data)) // answers If-None-Match with 304
	}))
	t.Cleanup(ts.Close)
	converge(t, 3, []string{"--bundle-url", ts.URL + "/bundle.tar.gz", "--poll-interval", "100ms", "--poll-max-backoff", "1s"},
		func(revision string) {
			v2Bundle(t, dir, revision)
			build()
		})
}
