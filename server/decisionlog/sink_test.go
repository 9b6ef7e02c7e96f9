package decisionlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/server/decisionlog"
)

// faultySink is a sink that, while failing, takes half of each write and
// returns ENOSPC, as a full disk does.
type faultySink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	failing bool
	calls   int // failed writes
}

func (s *faultySink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		s.calls++
		half := len(p) / 2
		s.buf.Write(p[:half])
		return half, syscall.ENOSPC
	}
	return s.buf.Write(p)
}

func (s *faultySink) setFailing(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = on
}

func (s *faultySink) failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *faultySink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}

// ids are the decision ids of every line, in order; a torn or duplicated
// partial line fails lines' JSON decoding.
func ids(t *testing.T, data []byte) string {
	t.Helper()
	var out []string
	for _, l := range lines(t, data) {
		out = append(out, l["decision_id"].(string))
	}
	return strings.Join(out, ",")
}

// failedSink returns a writer in mode over a failing sink that has already
// failed to write the record "before".
func failedSink(t *testing.T, mode decisionlog.Mode, opts ...decisionlog.Option) (*decisionlog.Writer, *faultySink) {
	t.Helper()
	sink := &faultySink{failing: true}
	w, err := decisionlog.New(sink, append([]decisionlog.Option{decisionlog.WithMode(mode), decisionlog.WithFlushInterval(time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Log(t.Context(), record(t, "before", nil, nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return !w.SinkHealthy() })
	return w, sink
}

func TestFailingSink(t *testing.T) {
	t.Parallel()
	t.Run("block holds decisions until the sink recovers", func(t *testing.T) {
		t.Parallel()
		w, sink := failedSink(t, decisionlog.Block)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		err := w.Log(ctx, record(t, "timed-out", nil, nil))
		if !errors.Is(err, decisionlog.ErrNotLogged) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Log while the sink fails = %v, want ErrNotLogged wrapping the deadline", err)
		}
		logged := make(chan error, 1)
		go func() { logged <- w.Log(t.Context(), record(t, "waited", nil, nil)) }()
		sink.setFailing(false)
		if err := <-logged; err != nil {
			t.Fatal(err)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, sink.bytes()); got != "before,waited" {
			t.Fatalf("logged %s, want before,waited", got)
		}
		if w.Failed() != 0 {
			t.Fatalf("Failed = %d, want 0", w.Failed())
		}
	})
	t.Run("deny denies while the sink fails", func(t *testing.T) {
		t.Parallel()
		w, sink := failedSink(t, decisionlog.Deny)
		err := w.Log(t.Context(), record(t, "denied", nil, nil))
		if !errors.Is(err, decisionlog.ErrSinkFailing) || !errors.Is(err, decisionlog.ErrNotAccepted) {
			t.Fatalf("Log while the sink fails = %v, want ErrSinkFailing", err)
		}
		if w.Denied() != 1 {
			t.Fatalf("Denied = %d, want 1", w.Denied())
		}
		sink.setFailing(false)
		eventually(t, w.SinkHealthy)
		if err := w.Log(t.Context(), record(t, "after", nil, nil)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, sink.bytes()); got != "before,after" {
			t.Fatalf("logged %s, want before,after", got)
		}
	})
	t.Run("drop drops and counts while the sink fails", func(t *testing.T) {
		t.Parallel()
		w, sink := failedSink(t, decisionlog.Drop)
		if err := w.Log(t.Context(), record(t, "dropped", nil, nil)); err != nil {
			t.Fatalf("Log in drop mode = %v, want nil", err)
		}
		if w.Dropped() != 1 {
			t.Fatalf("Dropped = %d, want 1", w.Dropped())
		}
		sink.setFailing(false)
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, sink.bytes()); got != "before" {
			t.Fatalf("logged %s, want before", got)
		}
	})
	t.Run("close gives up on a sink that never recovers", func(t *testing.T) {
		t.Parallel()
		w, _ := failedSink(t, decisionlog.Block)
		waiting := make(chan error, 1)
		go func() { waiting <- w.Log(context.Background(), record(t, "waiting", nil, nil)) }()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want the deadline", err)
		}
		if err := <-waiting; !errors.Is(err, decisionlog.ErrClosed) {
			t.Fatalf("waiting Log = %v, want ErrClosed", err)
		}
		eventually(t, func() bool { return w.Failed() == 1 })
	})
}

func TestWriteFailuresRateLimited(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	w, sink := failedSink(t, decisionlog.Block, decisionlog.WithWarnInterval(time.Hour), decisionlog.WithLogger(slogTo(logs)))
	eventually(t, func() bool { return sink.failures() >= 5 }) // five retries, backoff 5+10+20+40ms
	if n := strings.Count(logs.String(), "write failed"); n != 1 {
		t.Fatalf("%d write-failure lines for %d failures, want 1:\n%s", n, sink.failures(), logs)
	}
	sink.setFailing(false)
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Close reports what was suppressed.
	if out := logs.String(); !strings.Contains(out, "write failures") || !strings.Contains(out, "recoveries=1") {
		t.Fatalf("no summary of the suppressed failures:\n%s", out)
	}
}

// syncSink counts syncs and can hold the writer inside one.
type syncSink struct {
	syncBuffer
	mu      sync.Mutex
	syncs   int
	entered chan struct{} // receives when a Sync starts, if non-nil
	release chan struct{} // a Sync waits for it, if non-nil
}

func (s *syncSink) Sync() error {
	if s.entered != nil {
		s.entered <- struct{}{}
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	return nil
}

func (s *syncSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}

func TestSync(t *testing.T) {
	t.Parallel()
	t.Run("needs a syncer", func(t *testing.T) {
		t.Parallel()
		if _, err := decisionlog.New(&bytes.Buffer{}, decisionlog.WithSync(true)); err == nil {
			t.Fatal("sync over a sink that cannot sync accepted")
		}
	})
	t.Run("acknowledges after the sync, one sync per batch", func(t *testing.T) {
		t.Parallel()
		sink := &syncSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
		w, err := decisionlog.New(sink, decisionlog.WithSync(true))
		if err != nil {
			t.Fatal(err)
		}
		first := make(chan error, 1)
		go func() { first <- w.Log(t.Context(), record(t, "first", nil, nil)) }()
		<-sink.entered // "first" is written, its sync not done
		select {
		case err := <-first:
			t.Fatalf("Log returned %v before its record was synced", err)
		default:
		}
		const waiters = 50
		var wg sync.WaitGroup
		for i := range waiters {
			wg.Go(func() {
				if err := w.Log(t.Context(), record(t, fmt.Sprint(i), nil, nil)); err != nil {
					t.Error(err)
				}
			})
		}
		eventually(t, func() bool { return w.QueueDepth() == waiters })
		close(sink.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if n := sink.count(); n != 2 {
			t.Fatalf("%d syncs for 1+%d records queued behind one sync, want 2", n, waiters)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := len(lines(t, []byte(sink.String()))); n != waiters+1 {
			t.Fatalf("%d lines, want %d", n, waiters+1)
		}
	})
	t.Run("bounded by the context", func(t *testing.T) {
		t.Parallel()
		sink := &syncSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
		w, err := decisionlog.New(sink, decisionlog.WithSync(true))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		logged := make(chan error, 1)
		go func() { logged <- w.Log(ctx, record(t, "unsynced", nil, nil)) }()
		<-sink.entered
		cancel()
		if err := <-logged; !errors.Is(err, decisionlog.ErrNotLogged) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Log = %v, want ErrNotLogged wrapping context.Canceled", err)
		}
		close(sink.release)
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenSinkFIFODoesNotHang(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	opened := make(chan error, 1)
	go func() {
		sink, err := decisionlog.OpenSink(path, 1, 1)
		if err == nil {
			err = errors.New("a FIFO accepted as the decision log")
			if c, ok := sink.(interface{ Close() error }); ok {
				c.Close()
			}
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if !strings.Contains(err.Error(), "FIFO") {
			t.Fatalf("OpenSink on a FIFO = %v, want an error naming the FIFO", err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open so the goroutine ends.
		if f, err := os.OpenFile(path, os.O_RDONLY, 0); err == nil {
			defer f.Close()
		}
		t.Fatal("OpenSink blocked on a FIFO with no reader")
	}
}

func TestOpenSinkRefusesNonRegularFile(t *testing.T) {
	t.Parallel()
	if _, err := decisionlog.OpenSink(t.TempDir(), 1, 1); err == nil {
		t.Fatal("a directory accepted as the decision log")
	}
}
