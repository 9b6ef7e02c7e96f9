package bundlesrc_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

func rawTarGz(t testing.TB, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = 1
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestTarGzRoundTrip(t *testing.T) {
	t.Parallel()
	b := example(t, "r1")
	got, err := bundlesrc.ReadTarGz(bytes.NewReader(tarGz(t, b)), bundlesrc.DefaultMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(got.Files, b.Files, bytes.Equal) {
		t.Fatalf("files differ: got %v", maps.Keys(got.Files))
	}
	if !bytes.Equal(tarGz(t, b), tarGz(t, got)) {
		t.Fatal("archive bytes are not deterministic")
	}
}

func TestReadTarGzRefuses(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		data []byte
		max  int64
		want string
	}{
		"not gzip":  {data: []byte("plain"), want: "read bundle archive"},
		"traversal": {data: rawTarGz(t, &tar.Header{Typeflag: tar.TypeReg, Name: "../etc/passwd"}), want: "not a clean relative path"},
		"absolute":  {data: rawTarGz(t, &tar.Header{Typeflag: tar.TypeReg, Name: "/etc/passwd"}), want: "not a clean relative path"},
		"symlink":   {data: rawTarGz(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "p.cedar", Linkname: "/etc/passwd"}), want: "only regular files"},
		"duplicate": {data: rawTarGz(t, &tar.Header{Typeflag: tar.TypeReg, Name: "p.cedar"}, &tar.Header{Typeflag: tar.TypeReg, Name: "./p.cedar"}), want: "twice"},
		"too large": {data: rawTarGz(t, &tar.Header{Typeflag: tar.TypeReg, Name: "a", Size: 600}, &tar.Header{Typeflag: tar.TypeReg, Name: "b", Size: 600}), max: 1000, want: "size limit"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tc.max == 0 {
				tc.max = bundlesrc.DefaultMaxBytes
			}
			b, err := bundlesrc.ReadTarGz(bytes.NewReader(tc.data), tc.max)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got (%v, %v), want error containing %q", b, err, tc.want)
			}
			if name == "too large" && !errors.Is(err, bundlesrc.ErrTooLarge) {
				t.Fatalf("%v is not ErrTooLarge", err)
			}
		})
	}
}

func TestReadTarGzSkipsHiddenAndDirectories(t *testing.T) {
	t.Parallel()
	b, err := bundlesrc.ReadTarGz(bytes.NewReader(rawTarGz(t,
		&tar.Header{Typeflag: tar.TypeDir, Name: "tests/"},
		&tar.Header{Typeflag: tar.TypeReg, Name: "tests/c.json"},
		&tar.Header{Typeflag: tar.TypeReg, Name: ".git/config"},
		&tar.Header{Typeflag: tar.TypeReg, Name: ".p.cedar.swp"},
	)), bundlesrc.DefaultMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 1 || b.Files["tests/c.json"] == nil {
		t.Fatalf("files: %v", maps.Keys(b.Files))
	}
}

// FuzzReadTarGz feeds arbitrary archives to the reader, which parses bytes
// downloaded from a bundle server: it must never panic, never exceed its
// limit, and only ever yield clean relative paths.
func FuzzReadTarGz(f *testing.F) {
	f.Add(rawTarGz(f, &tar.Header{Typeflag: tar.TypeReg, Name: "p.cedar"}))
	f.Add(rawTarGz(f, &tar.Header{Typeflag: tar.TypeReg, Name: "../x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		b, err := bundlesrc.ReadTarGz(bytes.NewReader(data), limit)
		if err != nil {
			return
		}
		total := 0
		for p, content := range b.Files {
			total += len(content)
			if strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
				t.Fatalf("unsafe path %q", p)
			}
		}
		if total > limit {
			t.Fatalf("%d bytes read past the %d limit", total, limit)
		}
	})
}
