package decisionlog_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/decisionlog"
)

func record(t testing.TB, id string, ctx types.RecordMap, attrs types.RecordMap) decisionlog.Record {
	t.Helper()
	intent := policystore.Intent{Purpose: "incident", TaskID: "T-1", Tool: "shell", Attributes: attrs}
	return decisionlog.Record{
		DecisionID: id,
		Time:       time.Unix(1700000000, 5).UTC(),
		FrontEnd:   "grpc",
		Request: policystore.Request{
			Principal: types.NewEntityUID("Agent", "a1"),
			Action:    types.NewEntityUID("Action", "read_file"),
			Resource:  types.NewEntityUID("File", "README.md"),
			Intent:    intent,
			Context:   ctx,
			Now:       time.Unix(1700000000, 0),
		},
		Decision: policystore.Decision{
			Allow:    true,
			Revision: "r1",
			Reasons:  []policystore.Reason{{PolicyID: "p1", Annotations: map[string]string{"id": "p1"}}},
			Errors:   []policystore.EvalError{{PolicyID: "p2", Message: "boom"}},
		},
		Latency: 1500 * time.Microsecond,
		TraceID: "0af7651916cd43dd8448eb211c80319c",
	}
}

// lines decodes every JSON line in data.
func lines(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", len(out)+1, err, sc.Bytes())
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConcurrentRecordsWrittenExactlyOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer // only the writer's goroutine touches it until Close returns
	w, err := decisionlog.New(&buf, decisionlog.WithQueueSize(16))
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 250
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				if err := w.Log(t.Context(), record(t, fmt.Sprintf("%d-%d", g, i), nil, nil)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range lines(t, buf.Bytes()) {
		id := l["decision_id"].(string)
		if seen[id] {
			t.Errorf("decision %s logged twice", id)
		}
		seen[id] = true
	}
	if len(seen) != workers*each || w.Written() != workers*each {
		t.Fatalf("logged %d distinct decisions (Written %d), want %d", len(seen), w.Written(), workers*each)
	}
}

func TestLineShape(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := decisionlog.New(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Log(t.Context(), record(t, "d1", types.RecordMap{"env": types.String("prod")}, nil)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := lines(t, buf.Bytes())
	if len(got) != 1 {
		t.Fatalf("got %d lines", len(got))
	}
	want := `{"action":{"id":"read_file","type":"Action"},"context":{"env":"prod"},"decision":"ALLOW","decision_id":"d1","errors":[{"message":"boom","policy_id":"p2"}],` +
		`"front_end":"grpc","intent":{"action":"read_file","attributes":{},"purpose":"incident","task_id":"T-1","tool":"shell"},` +
		`"latency_ms":1.5,"now":"2023-11-14T22:13:20Z","policy_revision":"r1","principal":{"id":"a1","type":"Agent"},"reasons":[{"annotations":{"id":"p1"},"policy_id":"p1"}],` +
		`"resource":{"id":"README.md","type":"File"},"time":"2023-11-14T22:13:20.000000005Z","trace_id":"0af7651916cd43dd8448eb211c80319c"}`
	norm, _ := json.Marshal(got[0])
	if string(norm) != want {
		t.Fatalf("line:\n got %s\nwant %s", norm, want)
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := decisionlog.New(&buf, decisionlog.WithRedact([]string{"ticket.body", "token", "intent.attributes.prompt", "absent.x"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := types.RecordMap{
		"ticket": types.NewRecord(types.RecordMap{"body": types.String("secret"), "id": types.Long(7)}),
		"token":  types.String("hunter2"),
		"keep":   types.True,
	}
	r := record(t, "d1", ctx, types.RecordMap{"prompt": types.String("p"), "model": types.String("m")})
	if err := w.Log(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	l := lines(t, buf.Bytes())[0]
	gotCtx, _ := json.Marshal(l["context"])
	if want := `{"keep":true,"ticket":{"body":"[REDACTED]","id":7},"token":"[REDACTED]"}`; string(gotCtx) != want {
		t.Errorf("context = %s, want %s", gotCtx, want)
	}
	gotAttrs, _ := json.Marshal(l["intent"].(map[string]any)["attributes"])
	if want := `{"model":"m","prompt":"[REDACTED]"}`; string(gotAttrs) != want {
		t.Errorf("intent attributes = %s, want %s", gotAttrs, want)
	}
	// The decision's own context is shared and must be left alone.
	if v := r.Request.Context["token"]; v != types.String("hunter2") {
		t.Errorf("redaction modified the request context: token = %v", v)
	}
}

// TestRedactionPathShapes covers each shape of path: the whole intent, one
// of its fields, all its attributes, and a field inside a set's records.
func TestRedactionPathShapes(t *testing.T) {
	t.Parallel()
	list := types.NewSet(types.NewRecord(types.RecordMap{"secret": types.String("s1"), "id": types.Long(1)}))
	cases := []struct {
		path, field, want string
	}{
		{"intent", "intent", `{"action":"read_file","attributes":"[REDACTED]","purpose":"[REDACTED]","task_id":"[REDACTED]","tool":"[REDACTED]"}`},
		{"intent.purpose", "intent", `{"action":"read_file","attributes":{"prompt":"p"},"purpose":"[REDACTED]","task_id":"T-1","tool":"shell"}`},
		{"intent.attributes", "intent", `{"action":"read_file","attributes":"[REDACTED]","purpose":"incident","task_id":"T-1","tool":"shell"}`},
		{"list.secret", "context", `{"list":[{"id":1,"secret":"[REDACTED]"}]}`},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w, err := decisionlog.New(&buf, decisionlog.WithRedact([]string{c.path}))
			if err != nil {
				t.Fatal(err)
			}
			r := record(t, "d1", types.RecordMap{"list": list}, types.RecordMap{"prompt": types.String("p")})
			if err := w.Log(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(lines(t, buf.Bytes())[0][c.field])
			if string(got) != c.want {
				t.Errorf("%s = %s, want %s", c.field, got, c.want)
			}
		})
	}
}

func TestBadRedactPath(t *testing.T) {
	t.Parallel()
	if _, err := decisionlog.New(&bytes.Buffer{}, decisionlog.WithRedact([]string{"a..b"})); err == nil {
		t.Fatal("empty path segment accepted")
	}
}

// gatedSink blocks every Write until the test releases it, so the queue
// can be filled deterministically.
type gatedSink struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func newGatedSink() *gatedSink {
	return &gatedSink{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (s *gatedSink) Write(p []byte) (int, error) {
	s.entered <- struct{}{}
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// fill makes w's consumer block in the sink with one record and fills the
// one-slot queue with a second.
func fill(t *testing.T, w *decisionlog.Writer, sink *gatedSink) {
	t.Helper()
	if err := w.Log(t.Context(), record(t, "in-sink", nil, nil)); err != nil {
		t.Fatal(err)
	}
	<-sink.entered
	if err := w.Log(t.Context(), record(t, "queued", nil, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestFullQueue(t *testing.T) {
	t.Parallel()
	t.Run("block waits and loses nothing", func(t *testing.T) {
		t.Parallel()
		sink := newGatedSink()
		w, err := decisionlog.New(sink, decisionlog.WithQueueSize(1))
		if err != nil {
			t.Fatal(err)
		}
		fill(t, w, sink)
		canceled, cancel := context.WithCancel(t.Context())
		cancel()
		if err := w.Log(canceled, record(t, "given-up", nil, nil)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Log on a full queue with a canceled context = %v, want context.Canceled", err)
		}
		logged := make(chan error)
		go func() { logged <- w.Log(t.Context(), record(t, "waited", nil, nil)) }()
		close(sink.release)
		if err := <-logged; err != nil {
			t.Fatal(err)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range lines(t, sink.buf.Bytes()) {
			ids = append(ids, l["decision_id"].(string))
		}
		if got := strings.Join(ids, ","); got != "in-sink,queued,waited" {
			t.Fatalf("logged %s", got)
		}
	})
	t.Run("drop counts and warns", func(t *testing.T) {
		t.Parallel()
		sink := newGatedSink()
		logs := &syncBuffer{}
		w, err := decisionlog.New(sink, decisionlog.WithQueueSize(1), decisionlog.WithMode(decisionlog.Drop),
			decisionlog.WithWarnInterval(time.Millisecond), decisionlog.WithLogger(slogTo(logs)))
		if err != nil {
			t.Fatal(err)
		}
		fill(t, w, sink)
		if err := w.Log(t.Context(), record(t, "dropped", nil, nil)); err != nil {
			t.Fatalf("Log in drop mode = %v, want nil", err)
		}
		if w.Dropped() != 1 {
			t.Fatalf("Dropped = %d, want 1", w.Dropped())
		}
		eventually(t, func() bool { return strings.Contains(logs.String(), "records dropped") })
		close(sink.release)
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := len(lines(t, sink.buf.Bytes())); n != 2 {
			t.Fatalf("%d lines, want 2", n)
		}
	})
	t.Run("deny refuses", func(t *testing.T) {
		t.Parallel()
		sink := newGatedSink()
		w, err := decisionlog.New(sink, decisionlog.WithQueueSize(1), decisionlog.WithMode(decisionlog.Deny))
		if err != nil {
			t.Fatal(err)
		}
		fill(t, w, sink)
		if err := w.Log(t.Context(), record(t, "denied", nil, nil)); !errors.Is(err, decisionlog.ErrQueueFull) {
			t.Fatalf("Log in deny mode = %v, want ErrQueueFull", err)
		}
		if w.Denied() != 1 {
			t.Fatalf("Denied = %d, want 1", w.Denied())
		}
		close(sink.release)
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLogAfterClose(t *testing.T) {
	t.Parallel()
	w, err := decisionlog.New(&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Log(t.Context(), record(t, "late", nil, nil)); !errors.Is(err, decisionlog.ErrClosed) {
		t.Fatalf("Log after Close = %v, want ErrClosed", err)
	}
}

func TestFileRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "decisions.log")
	sink, err := decisionlog.OpenSink(path, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	w, err := decisionlog.New(sink)
	if err != nil {
		t.Fatal(err)
	}
	blob := types.String(strings.Repeat("x", 8<<10))
	const n = 200 // about 1.6 MB: more than one 1 MB file
	for i := range n {
		if err := w.Log(t.Context(), record(t, fmt.Sprint(i), types.RecordMap{"blob": blob}, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(filepath.Dir(path), "decisions*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("files %v: want the log rotated", files)
	}
	total := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		total += len(lines(t, data))
	}
	if total != n {
		t.Fatalf("%d lines across %d files, want %d", total, len(files), n)
	}
}

func TestOpenSinkBadPath(t *testing.T) {
	t.Parallel()
	if _, err := decisionlog.OpenSink(filepath.Join(t.TempDir(), "missing-dir", "x", "\x00"), 1, 1); err == nil {
		t.Fatal("bad path accepted")
	}
}

func TestCloseGivesUpOnAStuckSink(t *testing.T) {
	t.Parallel()
	sink := newGatedSink()
	w, err := decisionlog.New(sink, decisionlog.WithQueueSize(1))
	if err != nil {
		t.Fatal(err)
	}
	fill(t, w, sink)
	blocked := make(chan error)
	go func() { blocked <- w.Log(context.Background(), record(t, "blocked", nil, nil)) }()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a stuck sink = %v, want context.Canceled", err)
	}
	close(sink.release) // unstick: the blocked Log and the writer finish
	if err := <-blocked; err != nil && !errors.Is(err, decisionlog.ErrClosed) {
		t.Fatalf("blocked Log = %v", err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
