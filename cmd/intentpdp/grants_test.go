package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/intentpdp/intentpdp/internal/testutil/pgtest"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

func (p *servedBinary) grants(t *testing.T) pdpv1.GrantServiceClient {
	t.Helper()
	p.mu.Lock()
	addr := p.adminAddr
	p.mu.Unlock()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pdpv1.NewGrantServiceClient(conn)
}

// adminAddress is the admin API's address, for the grant CLI.
func (p *servedBinary) adminAddress() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.adminAddr
}

// writeReadme is the README walkthrough's write: deployer edits a file of
// payments-api under task taskID.
func writeReadme(taskID string) *pdpv1.AuthorizeRequest {
	return &pdpv1.AuthorizeRequest{
		Principal: &pdpv1.EntityRef{Type: "Agent", Id: "deployer"},
		Intent:    &pdpv1.Intent{Action: proto.String("write_file"), Purpose: "fix-build", TaskId: taskID, Tool: "github.put_file"},
		Resource:  &pdpv1.EntityRef{Type: "Repository", Id: "payments-api"},
	}
}

func (p *servedBinary) allows(t *testing.T, req *pdpv1.AuthorizeRequest) bool {
	t.Helper()
	resp, err := p.client.Authorize(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetDecision() == pdpv1.Decision_DECISION_ALLOW
}

func writeGrant(taskID string, ttl time.Duration, uses int64) *pdpv1.GrantRequest {
	return &pdpv1.GrantRequest{
		TaskId: taskID, Assignee: &pdpv1.EntityRef{Type: "Agent", Id: "deployer"},
		Actions: []*pdpv1.EntityRef{{Type: "Action", Id: "write"}}, Scope: []*pdpv1.EntityRef{{Type: "Repository", Id: "payments-api"}},
		Purpose: "fix-build", Ttl: durationpb.New(ttl), MaxUses: uses, ApprovedBy: &pdpv1.EntityRef{Type: "User", Id: "mia"},
	}
}

// TestServeGrantWalkthrough is the README's walkthrough against the real
// binary and its default memory store: grant with the CLI, write, revoke,
// write again; then a grant that expires by the real clock.
func TestServeGrantWalkthrough(t *testing.T) {
	t.Parallel()
	p := startServe(t, nil)
	if !strings.Contains(p.logs(), "task grants in memory") {
		t.Error("start-up does not say grants are in memory")
	}
	if p.allows(t, writeReadme("T-9")) {
		t.Fatal("write allowed before any grant")
	}
	code, out := runCommand(t, "grant", "create", "--admin", p.adminAddress(), "--task", "T-9", "--assignee", "Agent::deployer",
		"--action", "write", "--scope", `Repository::"payments-api"`, "--purpose", "fix-build", "--ttl", "15m", "--approved-by", "User::mia")
	if code != 0 || !strings.Contains(out, `"GRANT_STATE_LIVE"`) {
		t.Fatalf("grant create: exit %d\n%s", code, out)
	}
	if !p.allows(t, writeReadme("T-9")) {
		t.Fatal("write under a live grant denied")
	}
	if code, out := runCommand(t, "grant", "show", "--admin", p.adminAddress(), "--task", "T-9"); code != 0 || !strings.Contains(out, `"T-9"`) {
		t.Fatalf("grant show: exit %d\n%s", code, out)
	}
	if code, out := runCommand(t, "grant", "revoke", "--admin", p.adminAddress(), "--task", "T-9"); code != 0 || !strings.Contains(out, "REVOKED") {
		t.Fatalf("grant revoke: exit %d\n%s", code, out)
	}
	if p.allows(t, writeReadme("T-9")) {
		t.Fatal("write allowed after Revoke")
	}

	// Who may grant is the bundle's decision: a maintainer may not grant
	// deploys, nor anything for more than an hour.
	deploy := writeGrant("T-10", 10*time.Minute, 0)
	deploy.Actions = []*pdpv1.EntityRef{{Type: "Action", Id: "deploy"}}
	if _, err := p.grants(t).Grant(context.Background(), deploy); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("maintainer grants deploys: %v, want PermissionDenied", err)
	}
	if _, err := p.grants(t).Grant(context.Background(), writeGrant("T-11", 2*time.Hour, 0)); err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Errorf("ttl over --max-grant-ttl: %v, want InvalidArgument", err)
	}

	g, err := p.grants(t).Grant(context.Background(), writeGrant("T-12", 3*time.Second, 0))
	if err != nil {
		t.Fatal(err)
	}
	expires := g.GetGrant().GetExpiresAt().AsTime()
	// A deny is wrong only if the answer came before expires_at: a loaded
	// machine may reach the call after it.
	if !p.allows(t, writeReadme("T-12")) && time.Now().Before(expires) {
		t.Fatal("write under a short grant denied before expires_at")
	}
	time.Sleep(time.Until(expires)) // a point in time, not synchronisation
	if p.allows(t, writeReadme("T-12")) {
		t.Fatal("write allowed at or after expires_at")
	}
}

// TestServeGrantReplicas runs two binaries on one PostgreSQL: revocation
// propagation between them, and a one-shot grant raced across both.
func TestServeGrantReplicas(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Start(t).Database(t)
	// The staleness bound is not what this test is about (server/grants
	// tests it): a generous one keeps a heartbeat delayed on a busy
	// machine from failing lookups.
	shared := []string{"--grant-store", dsn, "--grant-max-staleness", "1m"}
	a := startServe(t, nil, shared...)
	b := startServe(t, nil, shared...)
	ga := a.grants(t)
	ctx := context.Background()

	var lat []time.Duration
	for i := range 40 {
		task := "T-prop-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, err := ga.Grant(ctx, writeGrant(task, 10*time.Minute, 0)); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, "grant reaches the other replica", func() bool { return b.allows(t, writeReadme(task)) })
		start := time.Now()
		if _, err := ga.Revoke(ctx, &pdpv1.RevokeRequest{TaskId: task}); err != nil {
			t.Fatal(err)
		}
		if a.allows(t, writeReadme(task)) {
			t.Fatal("revocation not immediate on the replica that took it")
		}
		pollUntil(t, "revocation reaches the other replica", func() bool { return !b.allows(t, writeReadme(task)) })
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("revocation propagation across replicas (revoke returned → other replica denies), %d samples: p50 %v, p99 %v", len(lat), p50, p99)
	if p99 > time.Second {
		t.Errorf("revocation propagation p99 %v", p99)
	}

	for round := range 10 {
		task := "T-once-" + string(rune('a'+round))
		if _, err := ga.Grant(ctx, writeGrant(task, 10*time.Minute, 1)); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, "one-shot grant reaches the other replica", func() bool {
			g, err := b.grants(t).GetGrant(ctx, &pdpv1.GetGrantRequest{TaskId: task})
			return err == nil && g.GetGrant().GetState() == pdpv1.GrantState_GRANT_STATE_LIVE
		})
		var wg sync.WaitGroup
		results := make([]bool, 8)
		start := make(chan struct{})
		for i := range results {
			p := a
			if i%2 == 1 {
				p = b
			}
			wg.Go(func() {
				<-start
				results[i] = p.allows(t, writeReadme(task))
			})
		}
		close(start)
		wg.Wait()
		n := 0
		for _, ok := range results {
			if ok {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("round %d: %d allows of a one-shot grant across two replicas, want exactly 1", round, n)
		}
	}
	t.Log("one-shot grant raced by 8 decisions across 2 replicas, 10 rounds: exactly one allow each")
}
