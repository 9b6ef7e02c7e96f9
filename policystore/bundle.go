package policystore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Bundle is the raw content of a policy bundle: file paths (slash-separated,
// relative to the bundle root) mapped to their bytes. Sources produce
// bundles; only Store.Activate turns one into a serving Snapshot.
type Bundle struct {
	// Source says where the bundle came from, for status and logs.
	Source string
	// Files holds every file of the bundle by relative path.
	Files map[string][]byte
}

// maxBundleFileSize bounds each file read from a bundle directory.
const maxBundleFileSize = 64 << 20

// LoadDir reads a bundle from a directory on disk. A symlinked directory is
// resolved once, before anything is read, so that one load reads one
// directory even while the link is being switched to another: publishing a
// new bundle directory and swapping a symlink to it in one rename is the
// atomic way to change a watched bundle.
func LoadDir(dir string) (*Bundle, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", dir, err)
	}
	b, err := LoadFS(os.DirFS(root))
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", dir, err)
	}
	b.Source = dir
	return b, nil
}

// LoadFS reads a bundle from a file system, skipping hidden files and
// directories (editors' swap files, .git). Symlinks to regular files are
// followed, as a Kubernetes ConfigMap mount needs (each file links into a
// hidden ..data directory); symlinked directories are not.
func LoadFS(fsys fs.FS) (*Bundle, error) {
	b := &Bundle{Files: map[string][]byte{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := fs.Stat(fsys, p) // follows a symlink
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		if info.Size() > maxBundleFileSize {
			return fmt.Errorf("%s: file larger than %d bytes", p, maxBundleFileSize)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		b.Files[p] = data
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ContentHash is a digest of every file's path and content, used as the
// revision of a bundle whose manifest names none.
func (b *Bundle) ContentHash() string {
	h := sha256.New()
	for _, p := range b.paths() {
		fmt.Fprintf(h, "%d:%s\x00%d:", len(p), p, len(b.Files[p]))
		h.Write(b.Files[p])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// paths returns the bundle's file paths in sorted order, so that everything
// derived from a bundle is deterministic.
func (b *Bundle) paths() []string {
	ps := make([]string, 0, len(b.Files))
	for p := range b.Files {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// pathsWithSuffix returns the sorted paths ending in suffix, outside tests/.
func (b *Bundle) pathsWithSuffix(suffix string) []string {
	var out []string
	for _, p := range b.paths() {
		if strings.HasSuffix(p, suffix) && !strings.HasPrefix(p, TestsDir) {
			out = append(out, p)
		}
	}
	return out
}
