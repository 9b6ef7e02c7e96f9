package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/internal/testutil/agentrequests"
	"github.com/intentpdp/intentpdp/internal/testutil/candidate"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/decisionlog"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// writeBundle writes the bundle make returns to a directory of its own.
func writeBundle(t testing.TB, make func() (*policystore.Bundle, error)) string {
	t.Helper()
	b, err := make()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range b.Files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func jsonReport(t *testing.T, out string) *report {
	t.Helper()
	var rep *report
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return rep
}

// TestDiffReportsTheFlippedCase: a candidate that flips one known case
// (and the one example request like it) is reported with exactly those
// and the policy that flips them; one identical in effect reports none.
func TestDiffReportsTheFlippedCase(t *testing.T) {
	t.Parallel()
	active := writeBundle(t, candidate.Active)
	code, out := runCommand(t, "diff", "--format", "json", active, writeBundle(t, candidate.Flipped))
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	rep := jsonReport(t, out)
	var ids []string
	for _, e := range rep.Examples {
		ids = append(ids, e.ID)
		if e.From != "allow" || e.To != "deny" || !slices.Equal(e.Cause, []string{candidate.FlippedPolicy}) {
			t.Errorf("example %+v", e)
		}
	}
	if want := []string{"case: " + candidate.FlippedCase, "request: " + candidate.FlippedRequest}; rep.Changed != 2 || rep.AllowToDeny != 2 ||
		!slices.Equal(ids, want) || len(rep.ByPolicy) != 1 || rep.ByPolicy[0].Policy != candidate.FlippedPolicy {
		t.Fatalf("report: changed %d, examples %v (want %v), by policy %+v", rep.Changed, ids, want, rep.ByPolicy)
	}

	code, out = runCommand(t, "diff", "--max-changes", "0", active, writeBundle(t, candidate.Equivalent))
	if code != 0 || !strings.Contains(out, "| changed | 0 |") {
		t.Fatalf("equivalent candidate: exit %d\n%s", code, out)
	}
	code, out = runCommand(t, "diff", "--max-allow-to-deny", "1", active, writeBundle(t, candidate.Flipped))
	if code != 1 || !strings.Contains(out, "2 exceeds --max-allow-to-deny 1") {
		t.Fatalf("limit exceeded: exit %d\n%s", code, out)
	}
}

// recordedLog decides the example requests with the active example bundle
// through an engine with a decision log, rounds times, and returns the
// log's path; redact are the context paths the log redacts.
func recordedLog(t testing.TB, rounds int, gz bool, opts ...decisionlog.Option) string {
	t.Helper()
	b, err := candidate.Active()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policystore.NewStore().Activate(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := decisionlog.New(&buf, append([]decisionlog.Option{decisionlog.WithQueueSize(1 << 16)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := agentrequests.Load()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	eng := engine.New(engine.Fixed(snap), engine.WithDecisionLog(w),
		engine.WithClock(func() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }),
		engine.WithDecisionID(func() string { n++; return fmt.Sprintf("d%d", n) }))
	for range rounds {
		for _, r := range reqs {
			req, err := grpcapi.DecodeRequest(r.Request, engine.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			req.Context = types.RecordMap{"ticket": types.String(r.Name)}
			if _, err := eng.Evaluate(context.Background(), "grpc", req); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	data := buf.Bytes()
	if gz {
		path += ".gz"
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(data)
		zw.Close()
		data = z.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReplay(t *testing.T) {
	t.Parallel()
	reqs, err := agentrequests.Load()
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.IndexFunc(reqs, func(r agentrequests.Request) bool { return r.Name == candidate.FlippedRequest })
	const rounds = 3
	log := recordedLog(t, rounds, true)

	code, out := runCommand(t, "replay", "--bundle", writeBundle(t, candidate.Flipped), "--log", log, "--format", "json", "--examples", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	rep := jsonReport(t, out)
	wantIDs := []string{fmt.Sprintf("d%d", flipped+1), fmt.Sprintf("d%d", len(reqs)+flipped+1)}
	var ids []string
	for _, e := range rep.Examples {
		ids = append(ids, e.ID)
	}
	if rep.Records != rounds*len(reqs) || rep.Decided != rep.Records || rep.Changed != rounds || rep.AllowToDeny != rounds ||
		!slices.Equal(ids, wantIDs) || len(rep.ByPolicy) != 1 || rep.ByPolicy[0].Policy != candidate.FlippedPolicy {
		t.Fatalf("report %+v, example ids %v, want %v", rep, ids, wantIDs)
	}

	// A candidate identical in effect changes nothing and passes the gate.
	code, out = runCommand(t, "replay", "--bundle", writeBundle(t, candidate.Equivalent), "--log", log, "--max-changes", "0")
	if code != 0 || !strings.Contains(out, "| changed | 0 |") || !strings.Contains(out, fmt.Sprintf("| decided | %d |", rounds*len(reqs))) {
		t.Fatalf("equivalent: exit %d\n%s", code, out)
	}
	// The flipped one fails it.
	code, out = runCommand(t, "replay", "--bundle", writeBundle(t, candidate.Flipped), "--log", log, "--max-changes", "0")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("%d exceeds --max-changes 0", rounds)) {
		t.Fatalf("gate: exit %d\n%s", code, out)
	}
}

// TestReplayCountsRedactedRecords: a record with a redacted field is
// counted as unreplayable, never decided on a guess.
func TestReplayCountsRedactedRecords(t *testing.T) {
	t.Parallel()
	log := recordedLog(t, 1, false, decisionlog.WithRedact([]string{"ticket"}))
	code, out := runCommand(t, "replay", "--bundle", writeBundle(t, candidate.Flipped), "--log", log, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if rep := jsonReport(t, out); rep.Unreplayable != rep.Records || rep.Records == 0 || rep.Decided != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// BenchmarkReplay replays a synthetic log: the example requests, logged,
// repeated to INTENTPDP_REPLAY_RECORDS records (default 100,000).
func BenchmarkReplay(b *testing.B) {
	n := 100_000
	if v := os.Getenv("INTENTPDP_REPLAY_RECORDS"); v != "" {
		fmt.Sscan(v, &n)
	}
	src, err := os.ReadFile(recordedLog(b, 1, false))
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(src)), "\n")
	var buf bytes.Buffer
	for i := range n {
		l := lines[i%len(lines)]
		buf.WriteString(strings.Replace(l, `"decision_id":"d`, fmt.Sprintf(`"decision_id":"%d-d`, i), 1))
		if !strings.HasSuffix(l, "\n") {
			buf.WriteByte('\n')
		}
	}
	path := filepath.Join(b.TempDir(), "decisions.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	cand, err := candidate.Flipped()
	if err != nil {
		b.Fatal(err)
	}
	snap, err := policystore.NewStore().Activate(context.Background(), cand)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep := newReport("replay", snap.Revision(), 10)
		start := time.Now()
		if err := replayFile(context.Background(), path, snap, rep, runtime.GOMAXPROCS(0)); err != nil {
			b.Fatal(err)
		}
		rep.finish(time.Since(start))
		if rep.Decided != n {
			b.Fatalf("decided %d of %d", rep.Decided, n)
		}
		b.ReportMetric(rep.PerSecond, "records/s")
	}
}
