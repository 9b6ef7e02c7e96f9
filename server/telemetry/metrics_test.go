package telemetry_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/telemetry"
)

func TestActivationsAndRevision(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveActivation("r1", nil, time.Millisecond)
	m.ObserveActivation("", errors.New("bad bundle"), time.Millisecond)
	m.ObserveActivation("r2", nil, time.Millisecond)
	want := `
# HELP intentpdp_bundle_activations_total Bundle activations by result (success, failure).
# TYPE intentpdp_bundle_activations_total counter
intentpdp_bundle_activations_total{result="failure"} 1
intentpdp_bundle_activations_total{result="success"} 2
# HELP intentpdp_policy_revision_info The active bundle revision (value 1).
# TYPE intentpdp_policy_revision_info gauge
intentpdp_policy_revision_info{revision="r2"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"intentpdp_bundle_activations_total", "intentpdp_policy_revision_info"); err != nil {
		t.Fatal(err)
	}
}

func TestDecisionOutcomes(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveDecision("grpc", policystore.Decision{Allow: true}, nil, time.Microsecond)
	m.ObserveDecision("grpc", policystore.Decision{Errors: []policystore.EvalError{{}, {}}}, nil, time.Microsecond)
	m.ObserveDecision("authzen", policystore.Decision{}, errors.New("canceled"), time.Microsecond)
	want := `
# HELP intentpdp_decisions_total Decisions by outcome (allow, deny, error) and front end.
# TYPE intentpdp_decisions_total counter
intentpdp_decisions_total{front_end="authzen",outcome="error"} 1
intentpdp_decisions_total{front_end="grpc",outcome="allow"} 1
intentpdp_decisions_total{front_end="grpc",outcome="deny"} 1
# HELP intentpdp_evaluation_errors_total Policies that failed to evaluate during a decision (skipped, so never allowing).
# TYPE intentpdp_evaluation_errors_total counter
intentpdp_evaluation_errors_total{front_end="grpc"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"intentpdp_decisions_total", "intentpdp_evaluation_errors_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "intentpdp_decision_duration_seconds"); n != 1 {
		t.Fatalf("decision_duration_seconds series = %d, want 1 (errors are not timed)", n)
	}
}

func TestRegistersOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := telemetry.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := telemetry.NewMetrics(reg); err == nil {
		t.Fatal("second registration into the same registry succeeded")
	}
}
