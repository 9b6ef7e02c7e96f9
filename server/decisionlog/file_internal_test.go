package decisionlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// faultFile is a real file that, when armed, writes half of the next write
// and fails with ENOSPC, or fails the next Sync with EIO.
type faultFile struct {
	*os.File
	mu                  sync.Mutex
	failWrite, failSync bool
}

func (f *faultFile) arm(write, sync bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWrite, f.failSync = write, sync
}

func (f *faultFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	fail := f.failWrite
	f.failWrite = false
	f.mu.Unlock()
	if !fail {
		return f.File.Write(p)
	}
	n, err := f.File.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	return n, syscall.ENOSPC
}

func (f *faultFile) Sync() error {
	f.mu.Lock()
	fail := f.failSync
	f.failSync = false
	f.mu.Unlock()
	if fail {
		return syscall.EIO
	}
	return f.File.Sync()
}

func faultSink(t *testing.T) (*fileSink, *faultFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "decisions.log")
	ff := &faultFile{}
	s := &fileSink{path: path, maxSize: 1 << 20, file: func(p string) (file, error) {
		f, err := osFile(p)
		if err != nil {
			return nil, err
		}
		ff.File = f.(*os.File)
		return ff, nil
	}}
	if err := s.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ff, path
}

func fileIs(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte(want)) {
		t.Fatalf("file holds %q, want %q", got, want)
	}
}

func TestFileSinkCutsATornWrite(t *testing.T) {
	t.Parallel()
	s, ff, path := faultSink(t)
	if _, err := s.Write([]byte("{\"a\":1}\n")); err != nil {
		t.Fatal(err)
	}
	ff.arm(true, false)
	n, err := s.Write([]byte("{\"b\":2}\n{\"c\":3}\n"))
	if !errors.Is(err, syscall.ENOSPC) || n != 0 {
		t.Fatalf("torn Write = %d, %v; want 0, ENOSPC", n, err)
	}
	fileIs(t, path, "{\"a\":1}\n") // the half line is gone
	if _, err := s.Write([]byte("{\"b\":2}\n{\"c\":3}\n")); err != nil {
		t.Fatal(err)
	}
	fileIs(t, path, "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n")
}

func TestFileSinkFailedSyncDiscardsTheUnsynced(t *testing.T) {
	t.Parallel()
	s, ff, path := faultSink(t)
	if _, err := s.Write([]byte("{\"a\":1}\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("{\"b\":2}\n")); err != nil {
		t.Fatal(err)
	}
	ff.arm(false, true)
	if err := s.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync = %v, want EIO", err)
	}
	fileIs(t, path, "{\"a\":1}\n")
}

// TestWriterOverATornFile runs the writer over a file whose writes and
// syncs fail once each: every record is in the file, whole, exactly once.
func TestWriterOverATornFile(t *testing.T) {
	t.Parallel()
	for _, sync := range []bool{false, true} {
		s, ff, path := faultSink(t)
		w, err := New(s, WithSync(sync))
		if err != nil {
			t.Fatal(err)
		}
		ff.arm(true, sync)
		for _, id := range []string{"1", "2", "3"} {
			if err := w.Log(t.Context(), Record{DecisionID: id}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Count(data, []byte(`"decision_id":`)); got != 3 || bytes.Count(data, []byte("\n")) != 3 {
			t.Fatalf("sync=%v: %d records in %q, want 3 whole lines", sync, got, data)
		}
	}
}
