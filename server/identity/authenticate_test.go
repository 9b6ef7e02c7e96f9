package identity_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/identity"
)

func exampleEngine(t testing.TB, a engine.Authenticator, opts ...engine.Option) *engine.Engine {
	t.Helper()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policystore.Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(engine.Fixed(snap), append(opts, engine.WithAuthenticator(a), engine.WithClock(func() time.Time { return testNow }))...)
}

// readRequest is allowed for Agent::"code-reviewer" by the example bundle.
func readRequest(principal types.EntityUID) policystore.Request {
	return policystore.Request{
		Principal: principal,
		Action:    types.NewEntityUID("Action", "read_file"),
		Resource:  types.NewEntityUID("Document", "payments-api/README.md"),
		Intent:    policystore.Intent{Purpose: "code-review", TaskID: "PR-1", Tool: "github.get_file"},
	}
}

func withToken(tok string) context.Context {
	return engine.WithCredentials(context.Background(), engine.Credentials{PrincipalToken: tok, Caller: "spiffe://example.org/orchestrator"})
}

func TestBindings(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k", jose.ES256)
	v := newVerifier(t, testConfig(), fileKeys(t, k))
	reviewer := types.NewEntityUID("Agent", "code-reviewer")
	other := types.NewEntityUID("Agent", "intruder")
	tok := mint(t, k, goodClaims(testNow).with("sub", "code-reviewer"))
	expired := mint(t, k, goodClaims(testNow).with("sub", "code-reviewer", "exp", testNow.Add(-time.Hour).Unix(), "iat", testNow.Add(-2*time.Hour).Unix()))
	background := context.Background()
	withEntity := readRequest(types.EntityUID{})
	withEntity.Entities = types.EntityMap{reviewer: {UID: reviewer, Parents: types.NewEntityUIDSet(types.NewEntityUID("Team", "admins"))}}

	cases := []struct {
		name    string
		binding identity.Binding
		ctx     context.Context
		req     policystore.Request
		allow   bool
		want    error // nil: a decision
	}{
		{"request: no token, body principal", identity.BindRequest, background, readRequest(reviewer), true, nil},
		{"request: token and matching body", identity.BindRequest, withToken(tok), readRequest(reviewer), true, nil},
		{"request: token fills a missing principal", identity.BindRequest, withToken(tok), readRequest(types.EntityUID{}), true, nil},
		{"request: body principal is kept", identity.BindRequest, withToken(tok), readRequest(other), false, nil},
		{"request: invalid token refused", identity.BindRequest, withToken(expired), readRequest(reviewer), false, engine.ErrTokenExpired},
		{"request: no token, no principal", identity.BindRequest, background, readRequest(types.EntityUID{}), false, policystore.ErrInvalidRequest},
		{"verified: token, no body principal", identity.BindVerified, withToken(tok), readRequest(types.EntityUID{}), true, nil},
		{"verified: token and matching body", identity.BindVerified, withToken(tok), readRequest(reviewer), true, nil},
		{"verified: forged body principal", identity.BindVerified, withToken(tok), readRequest(other), false, engine.ErrPrincipalMismatch},
		{"verified: no token", identity.BindVerified, background, readRequest(reviewer), false, engine.ErrTokenMissing},
		{"verified: garbage token", identity.BindVerified, withToken("x.y.z"), readRequest(reviewer), false, engine.ErrTokenInvalid},
		{"verified: request entity for the principal", identity.BindVerified, withToken(tok), withEntity, false, policystore.ErrInvalidRequest},
		{"verified-or-request: no token", identity.BindVerifiedOrRequest, background, readRequest(reviewer), true, nil},
		{"verified-or-request: forged body", identity.BindVerifiedOrRequest, withToken(tok), readRequest(other), false, engine.ErrPrincipalMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			eng := exampleEngine(t, identity.NewAuthenticator(v, c.binding))
			res, err := eng.Evaluate(c.ctx, "test", c.req)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("err %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Decision.Allow != c.allow {
				t.Errorf("allow = %v, want %v (%+v)", res.Decision.Allow, c.allow, res.Decision)
			}
		})
	}
}

// TestContextIdentity checks what policies see: a policy on
// context.identity decides, and a request may not set it itself.
func TestContextIdentity(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k", jose.ES256)
	cfg := testConfig()
	v := newVerifier(t, cfg, fileKeys(t, k))
	a := identity.NewAuthenticator(v, identity.BindVerified)
	tok := mint(t, k, goodClaims(testNow).with("sub", "code-reviewer", "tenant", "acme", "act", map[string]any{"sub": "user:alice"}))
	ver, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	req, err := a.Authenticate(withToken(tok), readRequest(types.EntityUID{}))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := req.CedarContext()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := rec.Get("identity")
	want := types.NewRecord(types.RecordMap{
		"issuer": types.String(testIssuer), "subject": types.String("code-reviewer"), "spiffe_id": types.String(""),
		"audience": types.NewSet(types.String(testAudience)), "expires_at": types.NewDatetime(ver.Identity.ExpiresAt),
		"claims": types.NewRecord(types.RecordMap{"tenant": types.String("acme")}), "caller": types.String("spiffe://example.org/orchestrator"),
		"actor": types.NewRecord(types.RecordMap{"sub": types.String("user:alice"), "iss": types.String("")}),
	})
	if !want.Equal(got) {
		t.Errorf("context.identity = %v\nwant %v", got, want)
	}
	forged := readRequest(types.EntityUID{})
	forged.Context = types.RecordMap{"identity": types.NewRecord(nil)}
	if _, err := exampleEngine(t, a).Evaluate(withToken(tok), "test", forged); !errors.Is(err, policystore.ErrInvalidRequest) {
		t.Errorf("request setting context.identity: %v", err)
	}
}
