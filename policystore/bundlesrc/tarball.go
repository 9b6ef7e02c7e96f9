// Package bundlesrc fetches policy bundles from where operators publish
// them (a directory, a local or remote .tar.gz) and keeps the store current
// as they change. It only produces bundles: policystore.Store.Activate is
// the one path that validates and swaps them in.
package bundlesrc

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
)

// ErrTooLarge marks a bundle archive over the configured size limit.
var ErrTooLarge = errors.New("bundle archive exceeds the size limit")

// DefaultMaxBytes bounds a bundle archive, compressed and uncompressed.
const DefaultMaxBytes = 64 << 20

// ReadTarGz reads a bundle from a gzip-compressed tar stream. Paths are
// relative to the bundle root; a leading "./" is dropped. Absolute paths,
// ".." and links are refused, hidden files are skipped (as in a directory),
// and more than maxBytes of uncompressed content is ErrTooLarge.
func ReadTarGz(r io.Reader, maxBytes int64) (*policystore.Bundle, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read bundle archive: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	b := &policystore.Bundle{Files: map[string][]byte{}}
	budget := maxBytes
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read bundle archive: %w", err)
		}
		name, ok, err := entryName(hdr)
		if err != nil {
			return nil, fmt.Errorf("read bundle archive: %w", err)
		}
		if !ok {
			continue
		}
		if hdr.Size > budget {
			return nil, fmt.Errorf("read bundle archive: %w (%d bytes)", ErrTooLarge, maxBytes)
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
		if err != nil {
			return nil, fmt.Errorf("read bundle archive: %s: %w", name, err)
		}
		budget -= int64(len(data))
		if _, dup := b.Files[name]; dup {
			return nil, fmt.Errorf("read bundle archive: %s appears twice", name)
		}
		b.Files[name] = data
	}
}

// entryName returns the bundle path of a tar entry, or ok=false for entries
// that carry no bundle file (directories, hidden files).
func entryName(hdr *tar.Header) (name string, ok bool, err error) {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return "", false, nil
	case tar.TypeReg:
	default:
		return "", false, fmt.Errorf("%s: only regular files and directories are allowed", hdr.Name)
	}
	name = strings.TrimPrefix(hdr.Name, "./")
	if name == "" || path.IsAbs(name) || strings.Contains(name, "\\") || path.Clean(name) != name ||
		slices.Contains(strings.Split(name, "/"), "..") {
		return "", false, fmt.Errorf("%q: not a clean relative path", hdr.Name)
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return "", false, nil
		}
	}
	return name, true, nil
}

// WriteTarGz writes b as a gzip-compressed tar stream, files in sorted
// order with fixed metadata, so the same bundle always gives the same bytes.
func WriteTarGz(w io.Writer, b *policystore.Bundle) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(b.Files))
	for p := range b.Files {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, name := range names {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Mode:     0o644,
			Size:     int64(len(b.Files[name])),
			ModTime:  time.Unix(0, 0),
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write bundle archive: %w", err)
		}
		if _, err := tw.Write(b.Files[name]); err != nil {
			return fmt.Errorf("write bundle archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write bundle archive: %w", err)
	}
	return zw.Close()
}
