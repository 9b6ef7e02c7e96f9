package bundlesrc_test

import (
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

// TestOpenChoosesFetcherByScheme: every known kind of location yields a
// fetcher that reads that bundle; an unknown scheme is refused with the
// known ones listed.
func TestOpenChoosesFetcherByScheme(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archive := tarGz(t, example(t, "r1"))
	path := filepath.Join(dir, "bundle.tar.gz")
	colon := filepath.Join(dir, "rev:1.tar.gz") // a colon without "://" is still a path
	for _, p := range []string{path, colon} {
		if err := os.WriteFile(p, archive, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := &bundleServer{}
	srv.publish(archive, 0)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)

	for _, tt := range []struct{ name, location, source string }{
		{"plain path", path, path},
		{"path with a colon", colon, colon},
		{"file URL", "file://" + filepath.ToSlash(path), path},
		{"file URL on localhost", "file://localhost" + filepath.ToSlash(path), path},
		{"http URL", ts.URL + "/bundle.tar.gz", ts.URL + "/bundle.tar.gz"},
		{"scheme in capitals", strings.Replace(ts.URL, "http://", "HTTP://", 1) + "/b.tar.gz", ts.URL + "/b.tar.gz"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := bundlesrc.Open(tt.location, bundlesrc.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if f.Source() != tt.source {
				t.Errorf("Source() = %q, want %q", f.Source(), tt.source)
			}
			b, err := f.Fetch(bg)
			if err != nil {
				t.Fatal(err)
			}
			if b.ContentHash() != example(t, "r1").ContentHash() {
				t.Error("fetched a different bundle")
			}
		})
	}

	for _, tt := range []struct{ name, location, want string }{
		{"unknown scheme", "s3://bucket/bundles/agents.tar.gz", `unknown scheme "s3" (known: file://, http://, https://, oci://)`},
		{"oci URL without a tag or digest", "oci://registry.example.org/bundles/agents", "name a tag"},
		{"file URL with a host", "file://fileserver/bundle.tar.gz", "not host"},
		{"file URL without a path", "file://", "no path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := bundlesrc.Open(tt.location, bundlesrc.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) = %v, want an error containing %q", tt.location, err, tt.want)
			}
		})
	}
}

func TestOpenAppliesMaxBytes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(path, tarGz(t, example(t, "r1")), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := bundlesrc.Open(path, bundlesrc.Options{MaxBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(bg); !errors.Is(err, bundlesrc.ErrTooLarge) {
		t.Fatalf("Fetch = %v, want ErrTooLarge", err)
	}
}
