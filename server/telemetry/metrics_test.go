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
intentpdp_decisions_total{front_end="authzen",outcome="allow"} 0
intentpdp_decisions_total{front_end="authzen",outcome="deny"} 0
intentpdp_decisions_total{front_end="authzen",outcome="error"} 1
intentpdp_decisions_total{front_end="grpc",outcome="allow"} 1
intentpdp_decisions_total{front_end="grpc",outcome="deny"} 1
intentpdp_decisions_total{front_end="grpc",outcome="error"} 0
# HELP intentpdp_evaluation_errors_total Policies that failed to evaluate during a decision (skipped, so never allowing).
# TYPE intentpdp_evaluation_errors_total counter
intentpdp_evaluation_errors_total{front_end="authzen"} 0
intentpdp_evaluation_errors_total{front_end="grpc"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"intentpdp_decisions_total", "intentpdp_evaluation_errors_total"); err != nil {
		t.Fatal(err)
	}
	timed := map[string]uint64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "intentpdp_decision_duration_seconds" {
			for _, mt := range f.GetMetric() {
				timed[mt.GetLabel()[0].GetValue()] = mt.GetHistogram().GetSampleCount()
			}
		}
	}
	if timed["grpc"] != 2 || timed["authzen"] != 0 {
		t.Fatalf("timed decisions by front end = %v, want grpc 2 and authzen 0 (errors are not timed)", timed)
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
