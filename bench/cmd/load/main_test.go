package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/bench/scenario"
	"github.com/intentpdp/intentpdp/policystore"
)

// TestRunAgainstInProcessServer drives a real server over loopback TCP,
// with the echo floor, for a moment, and checks the report.
func TestRunAgainstInProcessServer(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-scenario", "p10-e1k", "-concurrency", "1,4", "-duration", "100ms", "-rounds", "2"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	report := out.String()
	for _, want := range []string{"scenario p10-e1k", "concurrency 1\n", "concurrency 4\n", "  echo ", "  intentpdp ", "of echo"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "first error") {
		t.Errorf("calls failed:\n%s", report)
	}
}

func TestRunBatch(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-scenario", "p10-e1k", "-concurrency", "2", "-duration", "100ms", "-rounds", "1", "-batch", "10"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(batches of 10)") || strings.Contains(out.String(), "first error") {
		t.Errorf("unexpected report:\n%s", out.String())
	}
}

// TestActivateOnly activates a small scenario in process and checks that
// the report names the activation, the snapshot's heap, RSS and Decide's
// latency.
func TestActivateOnly(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	profile := filepath.Join(t.TempDir(), "heap.prof")
	err := run(context.Background(), []string{"-scenario", "p10-e1k", "-activate-only", "-decide-for", "50ms", "-memprofile", profile, "-cpuprofile", filepath.Join(t.TempDir(), "cpu.prof")}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scenario p10-e1k: 11 policies", "activation ", ", CPU ", "snapshot heap ", "RSS after activation ", "Decide p50 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if st, err := os.Stat(profile); err != nil || st.Size() == 0 {
		t.Errorf("heap profile: %v", err)
	}
}

func TestWriteBundleServesTheScenario(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := run(context.Background(), []string{"-scenario", "p10-e1k", "-write-bundle", dir}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, err := policystore.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := scenario.Find("p10-e1k")
	if got, want := b.ContentHash(), scenario.Build(spec).Bundle.ContentHash(); got != want {
		t.Fatalf("written bundle hashes to %s, the scenario to %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "policies.cedar")); err != nil {
		t.Fatal(err)
	}
}

func TestRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-scenario", "nope"},
		{"-concurrency", "0"},
		{"-concurrency", "x"},
		{"-rounds", "0"},
		{"-opa", "http://127.0.0.1:1"},
		{"-scenario", "p10-e1k", "-serve-rung", "nope", "-addr", "127.0.0.1:0"},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestSeparateEchoProcess runs echo floors as `-serve-echo` would in
// processes of their own, one of them working per call (-echo-work), and
// measures against both with -echo-addr.
func TestSeparateEchoProcess(t *testing.T) {
	t.Parallel()
	addr, stop := serveInBackground(t, []string{"-scenario", "p10-e1k", "-serve-echo", "127.0.0.1:0"}, "serving echo on ")
	working, stopWorking := serveInBackground(t, []string{"-scenario", "p10-e1k", "-serve-echo", "127.0.0.1:0", "-echo-work", "1ms"}, "serving echo on ")
	var report bytes.Buffer
	err := run(context.Background(), []string{"-scenario", "p10-e1k", "-echo-addr", addr + "," + working, "-concurrency", "2", "-duration", "100ms", "-rounds", "1"}, &report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"of echo\n", "  echo " + working + " ", "p50 over echo " + working + " "} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, report.String())
		}
	}
	if strings.Contains(report.String(), "first error") {
		t.Errorf("calls failed:\n%s", report.String())
	}
	stop()
	stopWorking()
}

// TestSeparateRungProcess serves the ladder's rungs as `-serve-rung` would
// in a process of their own and measures each with -addr against the echo
// called with protobuf messages (-echo-proto).
func TestSeparateRungProcess(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"intentpdp", "metrics", "limits", "static-window"} {
		addr, stop := serveInBackground(t, []string{"-scenario", "p10-e1k", "-serve-rung", name, "-addr", "127.0.0.1:0"}, "serving rung "+name+" on ")
		var report bytes.Buffer
		err := run(context.Background(), []string{"-scenario", "p10-e1k", "-addr", addr, "-echo-proto", "-concurrency", "1", "-duration", "100ms", "-rounds", "1"}, &report)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(report.String(), "of echo") || strings.Contains(report.String(), "first error") {
			t.Errorf("%s: unexpected report:\n%s", name, report.String())
		}
		stop()
	}
}

// serveInBackground runs a serving mode of load until stop, and returns
// the address it prints after prefix.
func serveInBackground(t *testing.T, args []string, prefix string) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{written: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, out) }()
	deadline := time.After(time.Minute) // a bound on start-up, not a timing assertion
	for addr == "" {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("%v stopped: %v", args, err)
		case <-deadline:
			cancel()
			t.Fatalf("%v did not start:\n%s", args, out.String())
		case <-out.written:
		}
		if _, a, ok := strings.Cut(out.String(), prefix); ok {
			addr = strings.TrimSpace(a)
		}
	}
	return addr, func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
}

// syncBuffer is a buffer one goroutine writes while another reads, with a
// signal per write.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // buffered, of capacity 1
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.written <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBudgetMeasuresEveryRung runs the latency budget for a moment: every
// rung must answer without error and appear in the report.
func TestBudgetMeasuresEveryRung(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-budget", "-scenario", "p10-e1k", "-concurrency", "1", "-duration", "400ms", "-rounds", "1"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"echo ", "echo+workers ", "proto ", "intentpdp ", "metrics ", "no-workers ", "tracing-unsampled ", "traced ", "gap of intentpdp serve"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
