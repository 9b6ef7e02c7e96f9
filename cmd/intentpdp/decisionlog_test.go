package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSIGKILLLosesNoSyncedDecision kills the binary, with a durable
// decision log, while clients keep asking: every decision a client received
// must be in the file. Only a line no client saw may be torn.
func TestSIGKILLLosesNoSyncedDecision(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "decisions.log")
	p := startServe(t, nil, "--decision-log", logPath, "--decision-log-sync")
	reqs := exampleRequests(t)

	const workers = 8
	var acked sync.Map // decision id → struct{}
	var count atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				resp, err := p.client.Authorize(context.Background(), reqs[(g+i)%len(reqs)])
				if err != nil {
					return // the process is gone
				}
				acked.Store(resp.GetDecisionId(), struct{}{})
				if count.Add(1) >= 2000 {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	select {
	case <-enough:
	case <-clientsDone:
		t.Fatal("clients stopped before the load was up")
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	<-clientsDone

	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.DecisionID == "" {
			if !bytes.HasSuffix(data, sc.Bytes()) {
				t.Fatalf("torn line before the end of the log: %s", sc.Bytes())
			}
			continue // the write the kill interrupted: no client saw it
		}
		if logged[l.DecisionID] {
			t.Errorf("decision %s logged twice", l.DecisionID)
		}
		logged[l.DecisionID] = true
	}
	missing := 0
	acked.Range(func(id, _ any) bool {
		if !logged[id.(string)] {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged decisions missing from the log", missing, count.Load())
	}
	t.Logf("%d acknowledged decisions, %d logged", count.Load(), len(logged))
}

// TestServeWithADecisionLogOnAFIFO: a FIFO nobody reads must not hang
// start-up (where SIGTERM would go unheard); serve fails at once, saying why.
func TestServeWithADecisionLogOnAFIFO(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "decisions.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, append(slices.Clone(loopbackFlags), "--decision-log", fifo), io.Discard)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "FIFO") {
			t.Fatalf("serve = %v, want an error naming the FIFO", err)
		}
	case <-time.After(startupDeadline):
		if f, err := os.OpenFile(fifo, os.O_RDONLY, 0); err == nil { // unblock the open
			defer f.Close()
		}
		t.Fatal("serve hung opening a decision log on a FIFO with no reader")
	}
}

func TestDecisionLogSyncNeedsAFile(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--decision-log-sync"}, {"--decision-log-sync", "--decision-log", "-"}} {
		var cfg Config
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.bindFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg.SetDefaults()
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "decision-log-sync") {
			t.Errorf("%v: Validate = %v, want a decision-log-sync error", args, err)
		}
	}
}
