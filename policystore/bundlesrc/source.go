package bundlesrc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
)

// ErrNotModified means the source holds the bundle it returned last time.
var ErrNotModified = errors.New("bundle not modified")

// Fetcher yields the current bundle of a source, or ErrNotModified.
type Fetcher interface {
	Fetch(ctx context.Context) (*policystore.Bundle, error)
	// Source names the source in status and logs.
	Source() string
}

// Dir fetches a bundle directory. Every Fetch reads it afresh, so that a
// SIGHUP or Reload always re-reads what is on disk.
type Dir struct{ path string }

// NewDir returns a Fetcher for the bundle directory at path.
func NewDir(path string) *Dir { return &Dir{path: path} }

// Source is the directory path.
func (d *Dir) Source() string { return d.path }

// Fetch reads the directory.
func (d *Dir) Fetch(context.Context) (*policystore.Bundle, error) {
	return policystore.LoadDir(d.path)
}

// Archive fetches a .tar.gz bundle from a local path or an http(s) URL. It
// remembers the last ETag, so an unchanged remote archive costs a 304 and
// is ErrNotModified. Archive is safe for concurrent use.
type Archive struct {
	location string // a path, or an http(s) URL
	source   string // location with any password redacted
	remote   bool
	client   *http.Client
	maxBytes int64

	mu   sync.Mutex
	etag string
}

// ArchiveOption configures an Archive.
type ArchiveOption func(*Archive)

// WithHTTPClient sets the client for remote archives (see NewHTTPClient).
func WithHTTPClient(c *http.Client) ArchiveOption { return func(a *Archive) { a.client = c } }

// WithMaxBytes bounds the archive, compressed and uncompressed.
func WithMaxBytes(n int64) ArchiveOption { return func(a *Archive) { a.maxBytes = n } }

// NewArchive returns a Fetcher for the archive at location: an http:// or
// https:// URL, or a local path. Open chooses among every kind of source
// by the location's scheme.
func NewArchive(location string, opts ...ArchiveOption) (*Archive, error) {
	a := &Archive{location: location, source: location, client: http.DefaultClient, maxBytes: DefaultMaxBytes}
	if s := scheme(location); s == "http" || s == "https" {
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("bundle url: %w", err)
		}
		a.remote, a.source = true, u.Redacted()
	}
	for _, opt := range opts {
		opt(a)
	}
	return a, nil
}

// NewHTTPClient returns a client for remote archives that trusts roots
// (the system roots when nil) and gives up on a fetch after timeout (zero:
// never).
func NewHTTPClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Source is the archive's path or URL, password redacted.
func (a *Archive) Source() string { return a.source }

// Fetch reads the archive, or returns ErrNotModified.
func (a *Archive) Fetch(ctx context.Context) (*policystore.Bundle, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var data []byte
	var etag string
	var err error
	if a.remote {
		data, etag, err = a.download(ctx)
	} else {
		data, err = a.readFile()
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", a.source, err)
	}
	b, err := ReadTarGz(bytes.NewReader(data), a.maxBytes)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", a.source, err)
	}
	b.Source = a.source
	a.etag = etag
	return b, nil
}

func (a *Archive) readFile() ([]byte, error) {
	f, err := os.Open(a.location)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, a.maxBytes)
}

// download GETs the archive, sending the last ETag so that an unchanged
// archive costs a 304 and no body.
func (a *Archive) download(ctx context.Context) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.location, nil)
	if err != nil {
		return nil, "", err
	}
	if a.etag != "" {
		req.Header.Set("If-None-Match", a.etag)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && a.etag != "":
		return nil, "", ErrNotModified
	case resp.StatusCode != http.StatusOK:
		return nil, "", fmt.Errorf("HTTP status %s", resp.Status)
	case resp.ContentLength > a.maxBytes:
		return nil, "", fmt.Errorf("%w: Content-Length %d > %d", ErrTooLarge, resp.ContentLength, a.maxBytes)
	}
	data, err := readLimited(resp.Body, a.maxBytes)
	return data, resp.Header.Get("ETag"), err
}

func readLimited(r io.Reader, maxBytes int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, maxBytes)
	}
	return data, nil
}
