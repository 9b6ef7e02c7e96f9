package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

func exampleSnapshot(t *testing.T) *policystore.Snapshot {
	t.Helper()
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policystore.Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func readRequest() policystore.Request {
	return policystore.Request{
		Principal: types.NewEntityUID("Agent", "code-reviewer"),
		Action:    types.NewEntityUID("Action", "read_file"),
		Resource:  types.NewEntityUID("Document", "payments-api/README.md"),
		Intent:    policystore.Intent{Purpose: "code-review", TaskID: "PR-1", Tool: "github.get_file"},
	}
}

// hook records the order the steps ran in and may fail.
type hook struct {
	name  string
	steps *[]string
	err   error
}

func (h hook) Authenticate(_ context.Context, r policystore.Request) (policystore.Request, error) {
	*h.steps = append(*h.steps, h.name)
	return r, h.err
}

func (h hook) Enrich(_ context.Context, r policystore.Request) (policystore.Request, error) {
	*h.steps = append(*h.steps, h.name)
	if !r.Now.IsZero() {
		*h.steps = append(*h.steps, "now set before enrich")
	}
	return r, h.err
}

func TestEvaluateSteps(t *testing.T) {
	t.Parallel()
	snap := exampleSnapshot(t)
	var steps []string
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	eng := engine.New(engine.Fixed(snap), engine.WithClock(func() time.Time { return now }),
		engine.WithAuthenticator(hook{"authenticate", &steps, nil}), engine.WithEnricher(hook{"enrich", &steps, nil}),
		engine.WithDecisionID(func() string { return "id-1" }))
	res, err := eng.Evaluate(context.Background(), "test", readRequest())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Decision.Allow || res.ID != "id-1" || res.Decision.Revision != snap.Revision() {
		t.Errorf("result %+v", res)
	}
	if len(steps) != 2 || steps[0] != "authenticate" || steps[1] != "enrich" {
		t.Errorf("steps %v, want authenticate then enrich", steps)
	}
}

func TestAuthenticatorRefusal(t *testing.T) {
	t.Parallel()
	var steps []string
	refused := errors.Join(engine.ErrUnauthenticated, errors.New("bad token"))
	eng := engine.New(engine.Fixed(exampleSnapshot(t)),
		engine.WithAuthenticator(hook{"authenticate", &steps, refused}), engine.WithEnricher(hook{"enrich", &steps, nil}))
	_, err := eng.Evaluate(context.Background(), "test", readRequest())
	if !errors.Is(err, engine.ErrUnauthenticated) || len(steps) != 1 {
		t.Errorf("err %v, steps %v: want ErrUnauthenticated before enrich", err, steps)
	}
}

func TestPinWithoutSnapshot(t *testing.T) {
	t.Parallel()
	if _, err := engine.New(policystore.NewStore()).Pin(); !errors.Is(err, policystore.ErrNoSnapshot) {
		t.Errorf("Pin: %v, want ErrNoSnapshot", err)
	}
}

func TestCredentialsTravelInTheContext(t *testing.T) {
	t.Parallel()
	if got := engine.CredentialsFrom(context.Background()); got != (engine.Credentials{}) {
		t.Fatalf("credentials without any attached: %+v", got)
	}
	want := engine.Credentials{Caller: "spiffe://example.org/orchestrator", PrincipalToken: "tok"}
	if got := engine.CredentialsFrom(engine.WithCredentials(context.Background(), want)); got != want {
		t.Fatalf("credentials = %+v, want %+v", got, want)
	}
}
