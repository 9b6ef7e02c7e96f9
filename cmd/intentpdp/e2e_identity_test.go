package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// bothIdentitiesBundle decides only what the orchestrator forwards
// (context.identity.caller) and lets an operator grant payments-api writes.
var bothIdentitiesBundle = map[string]string{
	"manifest.json": `{"revision": "both-identities"}`,
	"entities.json": `[
  {"uid": {"type": "Team", "id": "platform"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Team", "id": "payments-maintainers"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Agent", "id": "code-reviewer"}, "attrs": {}, "parents": [{"type": "Team", "id": "platform"}]},
  {"uid": {"type": "Agent", "id": "deployer"}, "attrs": {}, "parents": [{"type": "Team", "id": "platform"}]},
  {"uid": {"type": "User", "id": "mia"}, "attrs": {}, "parents": [{"type": "Team", "id": "payments-maintainers"}]},
  {"uid": {"type": "Repository", "id": "payments-api"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Document", "id": "payments-api/README.md"}, "attrs": {}, "parents": [{"type": "Repository", "id": "payments-api"}]},
  {"uid": {"type": "Action", "id": "write"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Action", "id": "write_file"}, "attrs": {}, "parents": [{"type": "Action", "id": "write"}]}
]`,
	"policies.cedar": `
@id("orchestrated-reads")
permit (principal in Team::"platform", action == Action::"read_file", resource in Repository::"payments-api")
when { context has identity && context.identity.caller == "spiffe://example.org/orchestrator" };

@id("orchestrated-task-grants")
permit (principal, action, resource)
when {
  context has identity && context.identity.caller == "spiffe://example.org/orchestrator" &&
  context has task && context.task.assignee == principal &&
  action in context.task.actions && resource in context.task.scope
};

@id("operators-grant-payments-api-writes")
permit (principal in Team::"payments-maintainers", action == Action::"grant", resource is Task)
when {
  context has identity && context.identity.spiffe_id like "spiffe://example.org/ops/*" &&
  context.assignee in Team::"platform" &&
  [Action::"write"].containsAll(context.actions) &&
  [Repository::"payments-api"].containsAll(context.scope) &&
  context.ttl_seconds <= 3600
};
`,
}

// jwtSVIDIssuer signs JWT-SVIDs with one key, published in a SPIFFE trust
// bundle file (use "jwt-svid").
type jwtSVIDIssuer struct {
	key    *ecdsa.PrivateKey
	bundle string
}

func newJWTSVIDIssuer(t *testing.T) *jwtSVIDIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(map[string]any{"spiffe_sequence": 1, "keys": []jose.JSONWebKey{{Key: key.Public(), KeyID: "svid-1", Use: "jwt-svid"}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt-bundle.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return &jwtSVIDIssuer{key: key, bundle: path}
}

// mint returns a JWT-SVID for the SPIFFE ID sub, for the PDP.
func (i *jwtSVIDIssuer) mint(t *testing.T, sub string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "svid-1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: "spiffe://example.org", Subject: sub, Audience: jwt.Audience{"intentpdp"},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func writeBundleFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestServeBothIdentities runs the real binary with both identities
// verified: the orchestrator by its X.509-SVID (mutual TLS, allowlisted),
// the agent by the JWT-SVID the orchestrator forwards. Then the grant
// walkthrough with an operator's X.509-SVID on the admin API.
func TestServeBothIdentities(t *testing.T) {
	f := newCallerFixture(t)
	svids := newJWTSVIDIssuer(t)
	p := startServe(t, nil, append(f.flags(),
		"--bundle", writeBundleFiles(t, bothIdentitiesBundle),
		"--decision-callers", "spiffe://example.org/orchestrator,spiffe://example.org/gateway",
		"--admin-callers", "spiffe://example.org/ops/*",
		"--grant-caller-spiffe-prefix", "spiffe://example.org/ops/",
		"--token-issuer", "spiffe://example.org", "--token-audience", "intentpdp",
		"--spiffe-jwt-bundle", svids.bundle,
		"--principal-binding", "verified", "--principal-spiffe-prefix", "spiffe://example.org/agent/")...)
	tc := f.pki.clientTLS
	client := func(cert tls.Certificate) pdpv1.AuthorizationServiceClient {
		return pdpv1.NewAuthorizationServiceClient(dial(t, p.grpcAddr, tc(cert)))
	}
	orchestrator := client(f.orchestrator)
	gateway := client(f.pki.svid(t, "spiffe://example.org/gateway"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // bounds a hung binary; not a timing assertion
	defer cancel()
	reviewer := svids.mint(t, "spiffe://example.org/agent/code-reviewer")
	read := func(tok string) *pdpv1.AuthorizeRequest {
		r := readFile("code-reviewer")
		r.Principal, r.PrincipalToken = nil, tok
		return r
	}

	resp, err := orchestrator.Authorize(ctx, read(reviewer))
	if err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
		t.Fatalf("orchestrator forwards the reviewer's JWT-SVID: %v, %v", resp, err)
	}
	if ids := resp.GetReasons(); len(ids) != 1 || ids[0].GetPolicyId() != "orchestrated-reads" {
		t.Errorf("reasons = %v, want orchestrated-reads", ids)
	}
	// The same token through another allowlisted caller: the policy sees
	// a different context.identity.caller and denies.
	if resp, err := gateway.Authorize(ctx, read(reviewer)); err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_DENY {
		t.Errorf("gateway forwards the reviewer's JWT-SVID: %v, %v, want DENY (caller is not the orchestrator)", resp, err)
	}
	forged := readFile("deployer")
	forged.PrincipalToken = reviewer
	for _, c := range []struct {
		name   string
		client pdpv1.AuthorizationServiceClient
		req    *pdpv1.AuthorizeRequest
		code   codes.Code
		reason string
	}{
		{"an SVID off the allowlist", client(f.agent), read(reviewer), codes.PermissionDenied, "CALLER_NOT_ALLOWED"},
		{"orchestrator forwards no token", orchestrator, readFile("code-reviewer"), codes.Unauthenticated, "TOKEN_MISSING"},
		{"orchestrator forges the body principal", orchestrator, forged, codes.PermissionDenied, "PRINCIPAL_MISMATCH"},
		{"a JWT-SVID signed by another key", orchestrator, read(newJWTSVIDIssuer(t).mint(t, "spiffe://example.org/agent/code-reviewer")), codes.Unauthenticated, "TOKEN_INVALID"},
	} {
		_, err := c.client.Authorize(ctx, c.req)
		if code, reason := reasonOf(err); code != c.code || reason != c.reason {
			t.Errorf("%s: %v %s, want %v %s (%v)", c.name, code, reason, c.code, c.reason, err)
		}
	}

	// The grant walkthrough under identity: mia, an operator, grants the
	// deployer writes on payments-api for task T-9.
	grantsAs := pdpv1.NewGrantServiceClient(dial(t, p.adminAddress(), tc(f.pki.svid(t, "spiffe://example.org/ops/mia"))))
	deployer := svids.mint(t, "spiffe://example.org/agent/deployer")
	write := &pdpv1.AuthorizeRequest{
		PrincipalToken: deployer,
		Intent:         &pdpv1.Intent{Action: proto.String("write_file"), Purpose: "fix-build", TaskId: "T-9", Tool: "github.put_file"},
		Resource:       &pdpv1.EntityRef{Type: "Repository", Id: "payments-api"},
	}
	decide := func(what string) pdpv1.Decision {
		t.Helper()
		resp, err := orchestrator.Authorize(ctx, write)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return resp.GetDecision()
	}
	if d := decide("before the grant"); d != pdpv1.Decision_DECISION_DENY {
		t.Fatalf("write before the grant: %v", d)
	}
	g, err := grantsAs.Grant(ctx, &pdpv1.GrantRequest{
		TaskId: "T-9", Assignee: &pdpv1.EntityRef{Type: "Agent", Id: "deployer"},
		Actions: []*pdpv1.EntityRef{{Type: "Action", Id: "write"}}, Scope: []*pdpv1.EntityRef{{Type: "Repository", Id: "payments-api"}},
		Purpose: "fix-build", Ttl: durationpb.New(15 * time.Minute),
	})
	if err != nil {
		t.Fatalf("operator grants: %v", err)
	}
	if a := g.GetGrant().GetApprovedBy(); a.GetType() != "User" || a.GetId() != "mia" {
		t.Errorf("approved_by = %v, want User::mia", a)
	}
	if d := decide("under the grant"); d != pdpv1.Decision_DECISION_ALLOW {
		t.Fatalf("the deployer's write under T-9: %v, want ALLOW", d)
	}
	if _, err := grantsAs.Revoke(ctx, &pdpv1.RevokeRequest{TaskId: "T-9"}); err != nil {
		t.Fatal(err)
	}
	if d := decide("after Revoke"); d != pdpv1.Decision_DECISION_DENY {
		t.Fatalf("the deployer's write after Revoke: %v, want DENY", d)
	}
	p.stop(t)
}
