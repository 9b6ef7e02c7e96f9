package cedarvalue_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/cedarvalue"
	"github.com/intentpdp/intentpdp/server/engine"
)

func decodeJSON(t testing.TB, s string) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	return v, dec.Decode(&v) == nil
}

// TestJSONAndWireAgree: the same value arrives as the same Cedar value
// whichever wire format carried it.
func TestJSONAndWireAgree(t *testing.T) {
	t.Parallel()
	j, _ := decodeJSON(t, `{"n": 9007199254740993, "s": ["a"], "who": {"__entity": {"type": "Agent", "id": "x"}}, "ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}}`)
	fromJSON, err := cedarvalue.New(engine.DefaultLimits).JSON("context", j, 0)
	if err != nil {
		t.Fatal(err)
	}
	wire := &pdpv1.Value{Kind: &pdpv1.Value_RecordValue{RecordValue: &pdpv1.Record{Fields: map[string]*pdpv1.Value{
		"n":   {Kind: &pdpv1.Value_LongValue{LongValue: 9007199254740993}},
		"s":   {Kind: &pdpv1.Value_SetValue{SetValue: &pdpv1.ValueSet{Values: []*pdpv1.Value{{Kind: &pdpv1.Value_StringValue{StringValue: "a"}}}}}},
		"who": {Kind: &pdpv1.Value_EntityValue{EntityValue: &pdpv1.EntityRef{Type: "Agent", Id: "x"}}},
		"ip":  {Kind: &pdpv1.Value_ExtensionValue{ExtensionValue: &pdpv1.ExtensionCall{Fn: "ip", Arg: "10.0.0.1"}}},
	}}}}
	fromWire, err := cedarvalue.New(engine.DefaultLimits).Wire("context", wire, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !fromJSON.Equal(fromWire) {
		t.Errorf("JSON gave %v, wire gave %v", fromJSON, fromWire)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	limits := engine.Limits{MaxDepth: 2, MaxValues: 3}
	for _, tt := range []struct {
		json string
		want error
	}{
		{`[1, 2, 3, 4]`, engine.ErrLimitExceeded},
		{`[[[1]]]`, policystore.ErrInvalidRequest},
		{`1.5`, policystore.ErrInvalidRequest},
		{`null`, policystore.ErrInvalidRequest},
	} {
		v, _ := decodeJSON(t, tt.json)
		if _, err := cedarvalue.New(limits).JSON("v", v, 0); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.json, err, tt.want)
		}
	}
}

// FuzzJSON: any JSON converts or fails as a malformed or oversized
// request, never with a panic.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a": [1, {"b": true}]}`, `{"__entity": {"type": "A", "id": "b"}}`, `{"__extn": {"fn": "decimal", "arg": "1.5"}}`, `1e2`} {
		f.Add(s)
	}
	limits := engine.Limits{MaxDepth: 4, MaxValues: 64}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := decodeJSON(t, s)
		if !ok {
			return
		}
		val, err := cedarvalue.New(limits).JSON("v", v, 0)
		if err != nil {
			if !errors.Is(err, policystore.ErrInvalidRequest) && !errors.Is(err, engine.ErrLimitExceeded) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		var _ types.Value = val
	})
}

// TestToWireRoundTrips: every kind of Cedar value comes back from its wire
// form as itself.
func TestToWireRoundTrips(t *testing.T) {
	t.Parallel()
	dec, _ := types.ParseDecimal("1.2345")
	dur, _ := types.ParseDuration("1h30m")
	ip, _ := types.ParseIPAddr("10.0.0.0/8")
	dt, _ := types.ParseDatetime("2026-12-02T10:00:00Z")
	in := types.RecordMap{
		"b": types.True, "n": types.Long(-7), "s": types.String("x"),
		"e":   types.NewEntityUID("Agent", "a"),
		"set": types.NewSet(types.Long(1), types.String("y")),
		"rec": types.NewRecord(types.RecordMap{"inner": types.False}),
		"dt":  dt, "dur": dur, "dec": dec, "ip": ip,
	}
	got, err := cedarvalue.New(engine.DefaultLimits).WireRecord("context", cedarvalue.ToWireRecord(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !types.NewRecord(got).Equal(types.NewRecord(in)) {
		t.Fatalf("round trip: %v, want %v", got, in)
	}
	if cedarvalue.ToWireRecord(nil) != nil {
		t.Fatal("an empty record must encode as nil")
	}
}

// TestWireRecordCountsScalars checks that the scalar fields of a wire
// record count against the value limit like any other value, and that
// the error names the field that went over.
func TestWireRecordCountsScalars(t *testing.T) {
	t.Parallel()
	limits := engine.Limits{MaxDepth: 2, MaxValues: 3}
	str := func(s string) *pdpv1.Value { return &pdpv1.Value{Kind: &pdpv1.Value_StringValue{StringValue: s}} }
	three := map[string]*pdpv1.Value{"a": str("1"), "b": str("2"), "c": str("3")}
	if got, err := cedarvalue.New(limits).WireRecord("context", three, 0); err != nil || len(got) != 3 {
		t.Fatalf("three values within a limit of three: %v, %v", got, err)
	}
	three["d"] = str("4")
	_, err := cedarvalue.New(limits).WireRecord("context", three, 0)
	if !errors.Is(err, engine.ErrLimitExceeded) || !strings.Contains(err.Error(), "context.") {
		t.Errorf("four values, limit three: %v, want a limit error naming the field", err)
	}
}
