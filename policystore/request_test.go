package policystore

import (
	"fmt"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// TestCachedIntentRecordsEqualFreshOnes checks that the context Decide
// builds with cached intent records equals CedarContext's, for intents
// with and without attributes, on first use and on reuse, and that the
// cache stays bounded.
func TestCachedIntentRecordsEqualFreshOnes(t *testing.T) {
	var cache intentRecords
	base := Request{
		Principal: types.NewEntityUID("Agent", "a"),
		Context:   types.RecordMap{"risk": types.Long(3)},
		Now:       time.Unix(1_800_000_000, 0),
	}
	intents := []Intent{
		{Purpose: "review", Tool: "editor"},
		{Purpose: "review", Tool: "editor", TaskID: "T-1"},
		{Purpose: "review", Tool: "shell"},
		{},
		{Purpose: "review", Tool: "editor", Attributes: types.RecordMap{"path": types.String("/a")}},
	}
	for round := range 2 {
		for _, in := range intents {
			req := base
			req.Intent = in
			want, err := req.CedarContext()
			if err != nil {
				t.Fatal(err)
			}
			got, err := req.cedarContext(&cache)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Errorf("round %d, intent %+v: cached context %s, want %s", round, in, got, want)
			}
		}
	}
	if n := len(cache.m); n != 4 {
		t.Errorf("%d cached intent records, want 4 (the intent with attributes is not cached)", n)
	}
	for i := range maxIntentRecords + 10 {
		cache.entry(Intent{TaskID: fmt.Sprint(i)})
	}
	if n := len(cache.m); n > maxIntentRecords {
		t.Errorf("%d cached intent records, want at most %d", n, maxIntentRecords)
	}
}

// TestReusedContextsEqualFreshOnes checks that a context without caller
// fields is reused exactly when its intent, millisecond, identity and task
// repeat (else a new one is made and kept for reuse), that a context with
// caller fields is neither reused nor kept, and that each equals
// CedarContext's.
func TestReusedContextsEqualFreshOnes(t *testing.T) {
	var cache intentRecords
	now := time.UnixMilli(1_800_000_000_000)
	id := &Identity{Issuer: "https://issuer", Subject: "agent-a", ExpiresAt: now.Add(time.Hour)}
	task := &types.Entity{UID: types.NewEntityUID("Task", "T-1")}
	base := Request{Principal: types.NewEntityUID("Agent", "a"), Intent: Intent{Purpose: "review"}, Now: now}
	steps := []struct {
		name   string
		change func(*Request)
		kept   bool // a new context replaced the intent's last one
	}{
		{"first", func(*Request) {}, true},
		{"same millisecond", func(r *Request) { r.Now = now.Add(999 * time.Microsecond) }, false},
		{"next millisecond", func(r *Request) { r.Now = now.Add(time.Millisecond) }, true},
		{"with identity", func(r *Request) { r.Now, r.Identity = now.Add(time.Millisecond), id }, true},
		{"same identity", func(r *Request) { r.Now, r.Identity = now.Add(time.Millisecond), id }, false},
		{"with task", func(r *Request) { r.Now, r.Identity, r.Task, r.TaskType = now.Add(time.Millisecond), id, task, "Task" }, true},
		{"caller fields", func(r *Request) {
			r.Now, r.Identity, r.Task, r.TaskType = now.Add(time.Millisecond), id, task, "Task"
			r.Context = types.RecordMap{"risk": types.Long(3)}
		}, false},
		{"other intent", func(r *Request) { r.Intent.Tool = "shell" }, true},
	}
	for _, step := range steps {
		req := base
		step.change(&req)
		before := cache.entry(req.Intent).last.Load()
		got, err := req.cedarContext(&cache)
		if err != nil {
			t.Fatal(err)
		}
		want, err := req.CedarContext()
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Errorf("%s: context %s, want %s", step.name, got, want)
		}
		after := cache.entry(req.Intent).last.Load()
		if kept := after != before; kept != step.kept {
			t.Errorf("%s: kept=%v, want %v", step.name, kept, step.kept)
		}
	}
}
