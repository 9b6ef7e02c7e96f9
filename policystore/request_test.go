package policystore

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// TestCachedIntentRecordsEqualFreshOnes checks that the context Decide
// builds with cached intent records equals CedarContext's, for intents
// with and without attributes, on first use and on reuse, and that the
// cache stays bounded, in entries and in what each holds.
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
		{Purpose: strings.Repeat("p", maxKeptBytes), Tool: "editor"},
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
		t.Errorf("%d cached intent records, want 4 (the intents with attributes or long strings are not cached)", n)
	}
	for i := range maxIntentRecords + 10 {
		cache.entry(Intent{TaskID: fmt.Sprint(i)})
	}
	if n := len(cache.m); n > maxIntentRecords {
		t.Errorf("%d cached intent records, want at most %d", n, maxIntentRecords)
	}
}

// TestReusedContextsEqualFreshOnes checks that a context is reused
// exactly when its intent, millisecond, identity, task and caller fields
// repeat (caller fields compared as values, however deep), else a new one
// is made and kept for reuse (the last without caller fields and the last
// with some), that large caller fields and a caller field the PDP
// overrides are never kept, and that each context equals CedarContext's.
func TestReusedContextsEqualFreshOnes(t *testing.T) {
	var cache intentRecords
	now := time.UnixMilli(1_800_000_000_000)
	id := &Identity{Issuer: "https://issuer", Subject: "agent-a", ExpiresAt: now.Add(time.Hour)}
	task := &types.Entity{UID: types.NewEntityUID("Task", "T-1")}
	base := Request{Principal: types.NewEntityUID("Agent", "a"), Intent: Intent{Purpose: "review"}, Now: now}
	withTask := func(r *Request) { r.Now, r.Identity, r.Task, r.TaskType = now.Add(time.Millisecond), id, task, "Task" }
	// nested is a caller context with a record in a set in a record; each
	// call makes new maps and sets, in another order, of equal values.
	nested := func(zone types.Value) types.RecordMap {
		return types.RecordMap{
			"risk": types.Long(3),
			"limits": types.NewRecord(types.RecordMap{
				"zones": types.NewSet(types.String("b"), types.NewRecord(types.RecordMap{"zone": zone, "n": types.Long(1)}), types.String("a")),
			}),
		}
	}
	large := types.RecordMap{}
	for i := range maxKeptBytes / valueBytes {
		large[types.String(fmt.Sprint("f", i))] = types.Long(i)
	}
	steps := []struct {
		name   string
		change func(*Request)
		kept   bool // a new context was kept for the intent
	}{
		{"first", func(*Request) {}, true},
		{"same millisecond", func(r *Request) { r.Now = now.Add(999 * time.Microsecond) }, false},
		{"next millisecond", func(r *Request) { r.Now = now.Add(time.Millisecond) }, true},
		{"with identity", func(r *Request) { r.Now, r.Identity = now.Add(time.Millisecond), id }, true},
		{"same identity", func(r *Request) { r.Now, r.Identity = now.Add(time.Millisecond), id }, false},
		{"with task", withTask, true},
		{"caller fields", func(r *Request) { withTask(r); r.Context = nested(types.String("eu")) }, true},
		{"equal caller fields", func(r *Request) { withTask(r); r.Context = nested(types.String("eu")) }, false},
		{"no caller fields, kept beside them", withTask, false},
		{"equal caller fields again", func(r *Request) { withTask(r); r.Context = nested(types.String("eu")) }, false},
		{"a string deep inside differs", func(r *Request) { withTask(r); r.Context = nested(types.String("us")) }, true},
		{"only the type deep inside differs", func(r *Request) { withTask(r); r.Context = nested(types.Long(0)) }, true},
		{"one field fewer", func(r *Request) { withTask(r); r.Context = nested(types.Long(0)); delete(r.Context, "risk") }, true},
		{"one field more", func(r *Request) { withTask(r); r.Context = nested(types.Long(0)); r.Context["x"] = types.True }, true},
		{"large caller fields", func(r *Request) { withTask(r); r.Context = large }, false},
		{"large caller fields again", func(r *Request) { withTask(r); r.Context = large }, false},
		{"another field", func(r *Request) { withTask(r); r.TaskType = ""; r.Context = types.RecordMap{"other": task.UID} }, true},
		// Without TaskType a caller may send context.task, which the PDP's
		// task overrides: the context is then made afresh and not kept
		// (it would otherwise match the one before, the same length with
		// an equal "task").
		{"caller task overridden", func(r *Request) { withTask(r); r.TaskType = ""; r.Context = types.RecordMap{"task": task.UID} }, false},
		{"other intent", func(r *Request) { r.Intent.Tool = "shell" }, true},
	}
	kept := func(in Intent) [2]*contextRecord {
		e := cache.entry(in)
		return [2]*contextRecord{e.bare.Load(), e.withCallers.Load()}
	}
	for _, step := range steps {
		req := base
		step.change(&req)
		before := kept(req.Intent)
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
		if k := kept(req.Intent) != before; k != step.kept {
			t.Errorf("%s: kept=%v, want %v", step.name, k, step.kept)
		}
	}
}

// TestSharedContextsRace decides contexts from several goroutines through
// one cache, each request's caller fields one of a few that differ deep
// inside, and checks that every context equals CedarContext's.
func TestSharedContextsRace(t *testing.T) {
	var cache intentRecords
	now := time.UnixMilli(1_800_000_000_000)
	var reqs []Request
	for _, purpose := range []string{"review", "deploy"} {
		for ms := range 2 {
			for _, zone := range []string{"", "eu", "us"} {
				req := Request{Principal: types.NewEntityUID("Agent", "a"), Intent: Intent{Purpose: purpose}, Now: now.Add(time.Duration(ms) * time.Millisecond)}
				if zone != "" {
					req.Context = types.RecordMap{"limits": types.NewSet(types.NewRecord(types.RecordMap{"zone": types.String(zone)}))}
				}
				reqs = append(reqs, req)
			}
		}
	}
	want := make([]types.Record, len(reqs))
	for i := range reqs {
		var err error
		if want[i], err = reqs[i].CedarContext(); err != nil {
			t.Fatal(err)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			<-start
			for n := range 2000 {
				i := (n*(g+1) + g) % len(reqs)
				got, err := reqs[i].cedarContext(&cache)
				if err != nil || !got.Equal(want[i]) {
					errs <- fmt.Sprintf("request %d: context %v (%v), want %v", i, got, err, want[i])
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
