package decisionlog_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/server/decisionlog"
)

// FuzzRecordLine feeds caller-controlled context and intent values through
// the writer: whatever they hold, each record must come out as exactly one
// parseable line with its decision id.
func FuzzRecordLine(f *testing.F) {
	f.Add(`{"a":1,"b":{"c":"d"}}`, "shell")
	f.Add(`{"__entity":{"type":"A","id":"b"},"x":1}`, "x")
	f.Add(`{"s":"\u2028\n\"quoted\""}`, "\xff\xfe")
	f.Add(`{"ip":{"__extn":{"fn":"ip","arg":"10.0.0.1"}}}`, "")
	f.Fuzz(func(t *testing.T, ctxJSON, tool string) {
		var fields types.Record
		if err := json.Unmarshal([]byte(ctxJSON), &fields); err != nil {
			t.Skip()
		}
		var buf bytes.Buffer
		w, err := decisionlog.New(&buf, decisionlog.WithRedact([]string{"b.c"}))
		if err != nil {
			t.Fatal(err)
		}
		r := record(t, "fuzz", nil, types.RecordMap{"tool": types.String(tool)})
		r.Request.Intent.Tool = tool
		r.Request.Context = mergeContext(r.Request.Context, fields.Map())
		if err := w.Log(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if w.Failed() != 0 {
			t.Fatalf("record failed to encode")
		}
		out := buf.Bytes()
		if bytes.Count(out, []byte("\n")) != 1 {
			t.Fatalf("want exactly one line, got %q", out)
		}
		var l struct {
			DecisionID string `json:"decision_id"`
			Intent     struct{ Tool string }
		}
		if err := json.Unmarshal(out, &l); err != nil || l.DecisionID != "fuzz" {
			t.Fatalf("unparseable line %q: %v", out, err)
		}
		if utf8.ValidString(tool) && l.Intent.Tool != tool {
			t.Fatalf("tool %q came back as %q", tool, l.Intent.Tool)
		}
	})
}

// mergeContext adds the fuzzed fields to a record's context.
func mergeContext(built, fields types.RecordMap) types.RecordMap {
	if built == nil {
		built = types.RecordMap{}
	}
	maps.Copy(built, fields)
	return built
}
