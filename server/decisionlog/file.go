package decisionlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stdout is the path that sends the log to standard output.
const Stdout = "-"

// OpenSink opens the log's destination: stdout for Stdout, else a regular
// file rotated when it reaches maxSizeMB, keeping maxBackups old files (0:
// all). The file sink is a Syncer. A path that is not a regular file (a
// FIFO, a device) is refused at once rather than waited on.
func OpenSink(path string, maxSizeMB, maxBackups int) (io.Writer, error) {
	if path == Stdout {
		return struct{ io.Writer }{os.Stdout}, nil // Close must not close stdout
	}
	if maxSizeMB < 1 {
		return nil, errors.New("decision log max size must be at least 1 MB")
	}
	s := &fileSink{path: path, maxSize: int64(maxSizeMB) << 20, maxBackups: maxBackups, file: osFile}
	// Open now so a bad path fails at startup rather than on the first
	// decision.
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// file is what fileSink needs of an *os.File; tests inject faults.
type file interface {
	io.WriteCloser
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
}

// osFile opens path for appending without blocking: on a FIFO with no
// reader, a plain open would wait forever (and ignore SIGTERM).
func osFile(path string) (file, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NONBLOCK, 0o644)
	if errors.Is(err, syscall.ENXIO) {
		return nil, fmt.Errorf("decision log %s is a FIFO with no reader; use a regular file or - for stdout", path)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// fileSink appends whole batches to a file, rotating it by size. A write
// that fails part-way is cut off again (the file truncated back to its size
// before the write), so no torn line remains and the writer's retry does
// not duplicate one. A failed Sync likewise discards everything since the
// last successful Sync. It is safe for concurrent use.
type fileSink struct {
	path       string
	maxSize    int64
	maxBackups int
	file       func(path string) (file, error)

	mu     sync.Mutex
	f      file
	size   int64 // bytes known whole in f
	synced int64 // bytes of f known durable
	torn   bool  // f may hold bytes beyond size: cut them before writing
}

func (s *fileSink) open() error {
	f, err := s.file(s.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("decision log %s is not a regular file (%v); use a regular file or - for stdout", s.path, fi.Mode().Type())
	}
	s.f, s.size, s.synced, s.torn = f, fi.Size(), fi.Size(), false
	return nil
}

// Write appends p whole or not at all: on error it returns 0.
func (s *fileSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		if err := s.open(); err != nil {
			return 0, err
		}
	}
	if err := s.cut(); err != nil {
		return 0, err
	}
	if s.size > 0 && s.size+int64(len(p)) > s.maxSize {
		if err := s.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := s.f.Write(p)
	if err != nil || n < len(p) {
		if n > 0 {
			s.torn = true
			if terr := s.cut(); terr != nil {
				err = errors.Join(err, terr)
			}
		}
		if err == nil {
			err = io.ErrShortWrite
		}
		return 0, err
	}
	s.size += int64(n)
	return n, nil
}

// cut truncates a torn write away.
func (s *fileSink) cut() error {
	if !s.torn {
		return nil
	}
	if err := s.f.Truncate(s.size); err != nil {
		return fmt.Errorf("cut a partial write off %s: %w", s.path, err)
	}
	s.torn = false
	return nil
}

// Sync makes what was written durable. When it fails, the bytes written
// since the last successful Sync are cut off, for the writer to write again.
func (s *fileSink) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		s.size, s.torn = s.synced, true
		if cerr := s.cut(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return err
	}
	s.synced = s.size
	return nil
}

// Close closes the file.
func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// backupTime names rotated files: decisions-2006-01-02T15-04-05.000.log.
const backupTime = "2006-01-02T15-04-05.000"

// rotate renames the full file aside, opens a new one and removes backups
// beyond maxBackups. The old file is synced first, so a durable log stays
// durable across the rename.
func (s *fileSink) rotate() error {
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	s.f = nil
	dir, base := filepath.Split(s.path)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	stamp := time.Now().UTC()
	backup := filepath.Join(dir, prefix+stamp.Format(backupTime)+ext)
	for _, err := os.Lstat(backup); err == nil; _, err = os.Lstat(backup) {
		stamp = stamp.Add(time.Millisecond) // never overwrite a backup rotated in the same millisecond
		backup = filepath.Join(dir, prefix+stamp.Format(backupTime)+ext)
	}
	if err := os.Rename(s.path, backup); err != nil {
		return err
	}
	if err := s.open(); err != nil {
		return err
	}
	if s.maxBackups > 0 {
		s.removeBackups(dir, prefix, ext)
	}
	return nil
}

// removeBackups keeps the newest maxBackups rotated files. Failing to
// remove one is not a write failure: the next rotation tries again.
func (s *fileSink) removeBackups(dir, prefix, ext string) {
	entries, err := os.ReadDir(filepath.Clean(dir + "."))
	if err != nil {
		return
	}
	var backups []string
	for _, e := range entries {
		name := e.Name()
		stamp, ok := strings.CutPrefix(name, prefix)
		if !ok || !strings.HasSuffix(stamp, ext) {
			continue
		}
		if _, err := time.Parse(backupTime, strings.TrimSuffix(stamp, ext)); err == nil {
			backups = append(backups, name)
		}
	}
	sort.Strings(backups) // the stamp sorts by time
	for len(backups) > s.maxBackups {
		_ = os.Remove(filepath.Join(dir, backups[0]))
		backups = backups[1:]
	}
}
