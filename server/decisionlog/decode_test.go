package decisionlog_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/decisionlog"
)

// logged writes recs through a Writer made with opts and parses the lines.
func logged(t *testing.T, recs []decisionlog.Record, opts ...decisionlog.Option) []*decisionlog.Line {
	t.Helper()
	var buf bytes.Buffer
	w, err := decisionlog.New(&buf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Log(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var out []*decisionlog.Line
	for line := range strings.Lines(buf.String()) {
		l, err := decisionlog.ParseLine([]byte(line))
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		out = append(out, l)
	}
	return out
}

// TestLoggedRequestRoundTrips: a logged decision holds everything the
// decision depended on, so the request read back equals the one decided.
func TestLoggedRequestRoundTrips(t *testing.T) {
	t.Parallel()
	group := types.NewEntityUID("Group", "ops")
	ip, _ := types.ParseIPAddr("10.0.0.1")
	ctx := types.RecordMap{
		"env":     types.String("prod"),
		"n":       types.Long(-7),
		"ok":      types.True,
		"owner":   types.NewEntityUID("User", "alice"),
		"tags":    types.NewSet(types.String("a"), types.Long(2)),
		"nested":  types.NewRecord(types.RecordMap{"ip": ip}),
		"unicode": types.String("é\n\"x\""),
	}
	attrs := types.RecordMap{"ticket": types.String("INC-1")}
	rec := record(t, "d1", ctx, attrs)
	rec.Request.Action = types.NewEntityUID("Ns::Action", "read_file")
	rec.Request.Entities = types.EntityMap{
		group: {UID: group, Parents: types.NewEntityUIDSet(types.NewEntityUID("Group", "all")),
			Attributes: types.NewRecord(types.RecordMap{"level": types.Long(3)}),
			Tags:       types.NewRecord(types.RecordMap{"t": types.String("v")})},
	}
	rec.Decision.WouldHave = []string{"lo1"}
	shadow := rec
	shadow.Shadow = &policystore.Decision{Revision: "r2", Reasons: []policystore.Reason{{PolicyID: "f1"}}}

	got := logged(t, []decisionlog.Record{rec, shadow})
	req, err := got[0].Request()
	if err != nil {
		t.Fatal(err)
	}
	want := rec.Request
	if req.Principal != want.Principal || req.Action != want.Action || req.Resource != want.Resource ||
		!req.Now.Equal(want.Now) || req.Intent.Purpose != want.Intent.Purpose || req.Intent.TaskID != want.Intent.TaskID ||
		req.Intent.Tool != want.Intent.Tool {
		t.Fatalf("request read back = %+v, want %+v", req, want)
	}
	if !types.NewRecord(req.Context).Equal(types.NewRecord(want.Context)) {
		t.Errorf("context = %v, want %v", req.Context, want.Context)
	}
	if !types.NewRecord(req.Intent.Attributes).Equal(types.NewRecord(want.Intent.Attributes)) {
		t.Errorf("intent attributes = %v, want %v", req.Intent.Attributes, want.Intent.Attributes)
	}
	if len(req.Entities) != 1 || !req.Entities[group].Equal(want.Entities[group]) {
		t.Errorf("entities = %v, want %v", req.Entities, want.Entities)
	}
	if !slices.Equal(got[0].WouldHave, []string{"lo1"}) || got[0].Kind != "" || got[0].Shadow != nil {
		t.Errorf("decision line: kind %q would_have %v shadow %v", got[0].Kind, got[0].WouldHave, got[0].Shadow)
	}
	s := got[1]
	if s.Kind != decisionlog.KindShadow || s.Shadow == nil || s.Shadow.Revision != "r2" || s.Shadow.Allow() ||
		!slices.Equal(s.Shadow.PolicyIDs(), []string{"f1"}) || !s.Allow() || s.Revision != "r1" || s.DecisionID != "d1" {
		t.Errorf("shadow line = %+v, shadow %+v", s, s.Shadow)
	}
}

// TestRedactedRecordsAreUnreplayable: a record that lost a field to
// redaction says so, and reading its request back fails rather than
// guesses.
func TestRedactedRecordsAreUnreplayable(t *testing.T) {
	t.Parallel()
	plain := record(t, "plain", types.RecordMap{"body": types.String("x")}, nil)
	e := types.NewEntityUID("User", "bob")
	withEntity := record(t, "entity", nil, nil)
	withEntity.Request.Entities = types.EntityMap{e: {UID: e, Attributes: types.NewRecord(types.RecordMap{"ssn": types.String("1")})}}
	for name, tc := range map[string]struct {
		opts []decisionlog.Option
		rec  decisionlog.Record
		want bool
	}{
		"no redaction":      {nil, plain, false},
		"path not present":  {[]decisionlog.Option{decisionlog.WithRedact([]string{"other"})}, plain, false},
		"context field":     {[]decisionlog.Option{decisionlog.WithRedact([]string{"body"})}, plain, true},
		"intent field":      {[]decisionlog.Option{decisionlog.WithRedact([]string{"intent.purpose"})}, plain, true},
		"entity attributes": {[]decisionlog.Option{decisionlog.WithRedactEntities(true)}, withEntity, true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := logged(t, []decisionlog.Record{tc.rec}, tc.opts...)[0]
			_, err := l.Request()
			if l.Redacted != tc.want || errors.Is(err, decisionlog.ErrUnreplayable) != tc.want {
				t.Fatalf("redacted=%v err=%v, want redacted %v", l.Redacted, err, tc.want)
			}
		})
	}
}
