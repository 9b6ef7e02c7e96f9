package main

import (
	"crypto/tls"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// deployGrant asks for the embedded bundle's deploy grant: the release
// agent deploys to payments-staging; approver may be nil.
func deployGrant(taskID string, approver *pdpv1.EntityRef) *pdpv1.GrantRequest {
	return &pdpv1.GrantRequest{
		TaskId: taskID, Assignee: &pdpv1.EntityRef{Type: "Agent", Id: "deployer"},
		Actions: []*pdpv1.EntityRef{{Type: "Action", Id: "deploy"}}, Scope: []*pdpv1.EntityRef{{Type: "Environment", Id: "payments-staging"}},
		Purpose: "release", Ttl: durationpb.New(30 * time.Minute), ApprovedBy: approver,
	}
}

// TestGrantApproverIsTheCaller attacks GrantService over real mutual TLS:
// the approver of a grant is the admin caller's SPIFFE ID mapped by
// --grant-caller-type and --grant-caller-spiffe-prefix, so an operator may
// not claim to be a release manager, and the bundle decides for the
// caller's entity.
func TestGrantApproverIsTheCaller(t *testing.T) {
	f := newCallerFixture(t)
	p := serveCallers(t, append(f.flags(),
		"--admin-callers", "spiffe://example.org/*",
		"--grant-caller-spiffe-prefix", "spiffe://example.org/ops/")...)
	grantAs := func(cert tls.Certificate, req *pdpv1.GrantRequest) (*pdpv1.GrantResponse, error) {
		return pdpv1.NewGrantServiceClient(dial(t, p.addrs["admin API"], f.pki.clientTLS(cert))).Grant(t.Context(), req)
	}
	rita := f.pki.svid(t, "spiffe://example.org/ops/rita") // User::"rita", a release manager
	mia := f.pki.svid(t, "spiffe://example.org/ops/mia")   // User::"mia", a payments maintainer
	ritaRef := &pdpv1.EntityRef{Type: "User", Id: "rita"}

	// The release manager grants a deploy; approved_by is filled with her.
	resp, err := grantAs(rita, deployGrant("T-1", nil))
	if err != nil {
		t.Fatalf("release manager grants a deploy: %v", err)
	}
	if got := resp.GetGrant().GetApprovedBy(); got.GetType() != "User" || got.GetId() != "rita" {
		t.Errorf("approved_by = %v, want User::rita (the caller)", got)
	}
	// Naming herself is the same grant.
	if _, err := grantAs(rita, deployGrant("T-2", ritaRef)); err != nil {
		t.Errorf("release manager names herself: %v", err)
	}

	for _, c := range []struct {
		name   string
		cert   tls.Certificate
		req    *pdpv1.GrantRequest
		code   codes.Code
		reason string
	}{
		// A maintainer claims to be the release manager: refused before
		// the bundle is asked.
		{"maintainer claims approved_by rita", mia, deployGrant("T-3", ritaRef), codes.PermissionDenied, "APPROVER_MISMATCH"},
		// As herself, the bundle does not let her grant deploys.
		{"maintainer grants a deploy as herself", mia, deployGrant("T-4", nil), codes.PermissionDenied, "GRANT_DENIED"},
		// An admin caller outside the prefix approves nothing, whatever
		// it claims.
		{"orchestrator claims approved_by rita", f.orchestrator, deployGrant("T-5", ritaRef), codes.PermissionDenied, "CALLER_NOT_ALLOWED"},
		{"orchestrator without approved_by", f.orchestrator, deployGrant("T-6", nil), codes.PermissionDenied, "CALLER_NOT_ALLOWED"},
	} {
		_, err := grantAs(c.cert, c.req)
		if code, reason := reasonOf(err); code != c.code || reason != c.reason {
			t.Errorf("%s: %v %s, want %v %s (%v)", c.name, code, reason, c.code, c.reason, err)
		}
	}
	// Nothing refused was created.
	list, err := pdpv1.NewGrantServiceClient(dial(t, p.addrs["admin API"], f.pki.clientTLS(rita))).ListGrants(t.Context(), &pdpv1.ListGrantsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetGrants()); n != 2 {
		t.Errorf("%d grants exist, want 2 (T-1, T-2): %v", n, list.GetGrants())
	}

	// The grant CLI over mutual TLS: the operator's SVID, no --approved-by.
	tlsFlags := []string{"--admin", p.addrs["admin API"], "--cacert", f.pki.path("ca.pem"),
		"--cert", f.pki.path("example.org_ops_rita.pem"), "--key", f.pki.path("example.org_ops_rita-key.pem")}
	code, out := runCommand(t, append([]string{"grant", "create", "--task", "T-7", "--assignee", "Agent::deployer", "--action", "deploy",
		"--scope", `Environment::"payments-staging"`, "--purpose", "release", "--ttl", "10m"}, tlsFlags...)...)
	if code != 0 || !strings.Contains(out, `"rita"`) {
		t.Fatalf("grant create over mutual TLS: exit %d\n%s", code, out)
	}
	if code, out := runCommand(t, append([]string{"grant", "revoke", "--task", "T-7"}, tlsFlags...)...); code != 0 || !strings.Contains(out, "REVOKED") {
		t.Fatalf("grant revoke over mutual TLS: exit %d\n%s", code, out)
	}
	if code, out := runCommand(t, "grant", "show", "--admin", p.addrs["admin API"], "--task", "T-7"); code == 0 {
		t.Fatalf("grant show over plaintext to a mutual-TLS admin API succeeded:\n%s", out)
	}
}

// TestGrantWithoutMutualTLS: without mutual TLS on the admin listener
// approved_by is the principal as given, and it is required.
func TestGrantWithoutMutualTLS(t *testing.T) {
	p := serveCallers(t)
	conn := dialInsecure(t, p.addrs["admin API"])
	gs := pdpv1.NewGrantServiceClient(conn)
	if _, err := gs.Grant(t.Context(), deployGrant("T-1", &pdpv1.EntityRef{Type: "User", Id: "rita"})); err != nil {
		t.Errorf("grant approved by rita: %v", err)
	}
	if _, err := gs.Grant(t.Context(), deployGrant("T-2", &pdpv1.EntityRef{Type: "User", Id: "mia"})); err == nil {
		t.Error("grant approved by mia allowed")
	}
	_, err := gs.Grant(t.Context(), deployGrant("T-3", nil))
	if code, _ := reasonOf(err); code != codes.InvalidArgument {
		t.Errorf("grant without approved_by: %v, want InvalidArgument", err)
	}
}

// dialInsecure connects to a plaintext gRPC listener of the PDP.
func dialInsecure(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestGrantCallerConfig(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string // "" means valid
	}{
		{nil, ""},
		{[]string{"--grant-caller-type", "Acme::Operator", "--grant-caller-spiffe-prefix", "spiffe://example.org/ops/"}, ""},
		{[]string{"--grant-caller-type", "not a type"}, "grant-caller-type"},
		{[]string{"--grant-caller-spiffe-prefix", "spiffe://example.org/ops"}, "want a SPIFFE ID ending in /"},
		{[]string{"--grant-caller-spiffe-prefix", "https://example.org/ops/"}, "want a SPIFFE ID ending in /"},
	} {
		var cfg Config
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.bindFlags(fs)
		if err := fs.Parse(slices.Concat(loopbackFlags, tt.args)); err != nil {
			t.Fatal(err)
		}
		cfg.SetDefaults()
		err := cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: Validate = %v, want valid", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: Validate = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
