package engine_test

import (
	"maps"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/cedar-policy/cedar-go/types"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// TestDecisionSpanAttributesAreEachDecisions checks the attributes of
// decision spans made one after another: more determining policies than
// the engine gathers without a slice of their own, a log-only policy that
// would have changed the decision, and a request without a task after one
// with a task (the attribute buffers are reused: nothing of one decision
// may show on the next one's span).
func TestDecisionSpanAttributesAreEachDecisions(t *testing.T) {
	t.Parallel()
	policies := `@id("p1") permit (principal, action, resource);
@id("p2") permit (principal, action, resource);
@id("p3") permit (principal, action, resource);
@id("p4") permit (principal, action, resource);
@id("p5") permit (principal, action, resource);
@id("p6") permit (principal, action, resource);
@id("f") @enforcement("log_only") forbid (principal, action == Action::"delete", resource);`
	b, err := policystore.LoadFS(fstest.MapFS{"p.cedar": {Data: []byte(policies)}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policystore.Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	eng := engine.New(engine.Fixed(snap), engine.WithTracerProvider(tp),
		engine.WithTracedIdentifiers(engine.TracedIdentifiers{PrincipalID: true}))

	withTask := policystore.Request{
		Principal: types.NewEntityUID("Agent", "a"),
		Action:    types.NewEntityUID("Action", "delete"),
		Resource:  types.NewEntityUID("Document", "d"),
		Intent:    policystore.Intent{TaskID: "T-1"},
	}
	withoutTask := withTask
	withoutTask.Action = types.NewEntityUID("Action", "read")
	withoutTask.Intent = policystore.Intent{}
	var ids []string
	for _, req := range []policystore.Request{withTask, withoutTask} {
		res, err := eng.Evaluate(t.Context(), "test", req)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}

	ended := spans.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans, want 2", len(ended))
	}
	allIDs := []string{"p1", "p2", "p3", "p4", "p5", "p6"}
	for i, want := range []map[attribute.Key]attribute.Value{{
		engine.AttrFrontEnd:      attribute.StringValue("test"),
		engine.AttrPrincipalType: attribute.StringValue("Agent"),
		engine.AttrPrincipalID:   attribute.StringValue("a"),
		engine.AttrAction:        attribute.StringValue("delete"),
		engine.AttrResourceType:  attribute.StringValue("Document"),
		engine.AttrTaskID:        attribute.StringValue("T-1"),
		engine.AttrDecision:      attribute.StringValue("ALLOW"),
		engine.AttrPolicyIDs:     attribute.StringSliceValue(allIDs),
		engine.AttrErrorCount:    attribute.IntValue(0),
		engine.AttrRevision:      attribute.StringValue(snap.Revision()),
		engine.AttrDecisionID:    attribute.StringValue(ids[0]),
		engine.AttrWouldHave:     attribute.StringSliceValue([]string{"f"}),
	}, {
		engine.AttrFrontEnd:      attribute.StringValue("test"),
		engine.AttrPrincipalType: attribute.StringValue("Agent"),
		engine.AttrPrincipalID:   attribute.StringValue("a"),
		engine.AttrAction:        attribute.StringValue("read"),
		engine.AttrResourceType:  attribute.StringValue("Document"),
		engine.AttrDecision:      attribute.StringValue("ALLOW"),
		engine.AttrPolicyIDs:     attribute.StringSliceValue(allIDs),
		engine.AttrErrorCount:    attribute.IntValue(0),
		engine.AttrRevision:      attribute.StringValue(snap.Revision()),
		engine.AttrDecisionID:    attribute.StringValue(ids[1]),
	}} {
		got := map[attribute.Key]attribute.Value{}
		for _, kv := range ended[i].Attributes() {
			got[kv.Key] = kv.Value
		}
		if len(got) != len(want) {
			t.Errorf("span %d: %d attributes %v, want %d", i, len(got), slices.Collect(maps.Keys(got)), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("span %d: %s = %s, want %s", i, k, got[k].Emit(), v.Emit())
			}
		}
	}
}
