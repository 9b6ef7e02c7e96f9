package bundlesrc

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Options configure the fetcher Open returns. The zero value is usable.
type Options struct {
	// RootCAs verifies the servers of remote sources; nil means the system
	// roots.
	RootCAs *x509.CertPool
	// Timeout bounds one fetch from a remote source; zero means no bound.
	Timeout time.Duration
	// MaxBytes bounds an archive, compressed and uncompressed; zero means
	// DefaultMaxBytes.
	MaxBytes int64
	// RegistryConfig is, for oci:// locations, a docker-style config.json
	// with the registry's credentials (auths, credential helpers). Empty
	// means ~/.docker/config.json when it exists, else anonymous access.
	RegistryConfig string
	// PlainHTTP talks to an oci:// registry over HTTP rather than HTTPS.
	// It is never implied, not even for a loopback registry.
	PlainHTTP bool
}

// opener makes the fetcher of one kind of location.
type opener func(location string, opts Options) (Fetcher, error)

// openers maps a location's scheme to its fetcher; "" is a plain path. A
// new kind of source is one entry here.
var openers = map[string]opener{
	"":      openLocalArchive,
	"file":  openFileURL,
	"http":  openRemoteArchive,
	"https": openRemoteArchive,
	"oci":   openOCI,
}

// schemeRE matches a location that names a scheme ("https://…"). Anything
// else is a path, even one with a colon in it.
var schemeRE = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*)://`)

// scheme is the lowercased scheme of location, or "" for a path.
func scheme(location string) string {
	if m := schemeRE.FindStringSubmatch(location); m != nil {
		return strings.ToLower(m[1])
	}
	return ""
}

// Open returns the fetcher for a bundle archive at location, chosen by its
// scheme: an http:// or https:// URL is downloaded (with ETags), a file://
// URL or a plain path is read from the local file system, an oci:// URL
// is an OCI artifact in a registry (see OCI). An unknown
// scheme is an error that lists the known ones.
func Open(location string, opts Options) (Fetcher, error) {
	open, ok := openers[scheme(location)]
	if !ok {
		return nil, fmt.Errorf("bundle location %q: unknown scheme %q (known: %s)", location, scheme(location), strings.Join(Schemes(), ", "))
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	return open(location, opts)
}

// Schemes lists the URL schemes Open knows, sorted; a location without a
// scheme is a local path.
func Schemes() []string {
	var out []string
	for s := range openers {
		if s != "" {
			out = append(out, s+"://")
		}
	}
	slices.Sort(out)
	return out
}

func openLocalArchive(path string, opts Options) (Fetcher, error) {
	return NewArchive(path, WithMaxBytes(opts.MaxBytes))
}

func openFileURL(location string, opts Options) (Fetcher, error) {
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("bundle location: %w", err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("bundle location %q: a file URL names a local path (file:///path), not host %q", location, u.Host)
	}
	if u.Path == "" {
		return nil, fmt.Errorf("bundle location %q: no path", location)
	}
	return openLocalArchive(u.Path, opts)
}

func openRemoteArchive(location string, opts Options) (Fetcher, error) {
	return NewArchive(location, WithHTTPClient(NewHTTPClient(opts.RootCAs, opts.Timeout)), WithMaxBytes(opts.MaxBytes))
}
