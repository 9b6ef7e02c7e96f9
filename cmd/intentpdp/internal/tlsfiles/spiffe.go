package tlsfiles

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// BundleFile is the X.509 trust bundle of one SPIFFE trust domain, read
// from a file of PEM CA certificates or a SPIFFE bundle (JSON). It checks
// the file at every use (one stat per TLS handshake) and rereads it when
// its identity, size or modification time changed, so a rotated bundle
// applies to the next handshake without a restart; connections already
// established keep the bundle they were verified with. A reread that
// fails keeps the last good bundle. BundleFile is safe for concurrent use.
type BundleFile struct {
	td     spiffeid.TrustDomain
	path   string
	report func(error)

	mu     sync.Mutex
	stat   os.FileInfo
	bundle *x509bundle.Bundle
}

// LoadBundleFile reads the bundle of td at path; the first read must
// succeed. report, when not nil, is told of each later reread: nil when
// it succeeded, why when it failed.
func LoadBundleFile(td spiffeid.TrustDomain, path string, report func(error)) (*BundleFile, error) {
	b := &BundleFile{td: td, path: path, report: report}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("SPIFFE bundle: %w", err)
	}
	if b.bundle, err = readBundle(td, path); err != nil {
		return nil, err
	}
	b.stat = st
	return b, nil
}

// readBundle parses a SPIFFE bundle (JSON, as SPIRE serves it) or PEM CA
// certificates; a file without a single X.509 authority is an error.
func readBundle(td spiffeid.TrustDomain, path string) (*x509bundle.Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("SPIFFE bundle: %w", err)
	}
	var b *x509bundle.Bundle
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		sb, err := spiffebundle.Parse(td, data)
		if err != nil {
			return nil, fmt.Errorf("SPIFFE bundle %s: %w", path, err)
		}
		b = sb.X509Bundle()
	} else if b, err = x509bundle.Parse(td, data); err != nil {
		return nil, fmt.Errorf("SPIFFE bundle %s: %w", path, err)
	}
	if b.Empty() {
		return nil, fmt.Errorf("SPIFFE bundle %s: no X.509 authority found", path)
	}
	return b, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (b *BundleFile) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b.refresh()
	b.mu.Lock()
	bundle := b.bundle
	b.mu.Unlock()
	return bundle.GetX509BundleForTrustDomain(td)
}

// refresh rereads the file when it changed since the last read.
func (b *BundleFile) refresh() {
	st, err := os.Stat(b.path)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil && os.SameFile(st, b.stat) && st.Size() == b.stat.Size() && st.ModTime().Equal(b.stat.ModTime()) {
		return
	}
	if err == nil {
		var bundle *x509bundle.Bundle
		if bundle, err = readBundle(b.td, b.path); err == nil {
			b.bundle = bundle
		}
	}
	// A failed stat or read is retried at the next handshake: the stamp
	// only moves on success.
	if err == nil {
		b.stat = st
	}
	if b.report != nil {
		b.report(err)
	}
}

// Server describes the TLS of one listener, from files and SPIFFE
// sources. The serving certificate is CertFile with KeyFile, else the
// X.509-SVID of SVID. Clients must present a certificate issued by a CA
// of ClientCAFile, else an X.509-SVID that Bundle verifies and Authorizer
// accepts (mutual TLS); with neither, any client is served.
type Server struct {
	CertFile, KeyFile string
	ClientCAFile      string
	SVID              x509svid.Source
	Bundle            x509bundle.Source
	// Authorizer checks a verified client SVID at the handshake; nil
	// accepts every SVID Bundle verifies.
	Authorizer tlsconfig.Authorizer
	// NextProtos are the ALPN protocols offered (HTTP listeners: h2 and
	// http/1.1; gRPC adds its own).
	NextProtos []string
}

// ErrNoServingCertificate is the error of a Server that would verify
// clients without a certificate of its own to serve.
var ErrNoServingCertificate = errors.New("mutual TLS needs a serving certificate")

// Config returns the listener's configuration, or nil for plaintext.
func (s Server) Config() (*tls.Config, error) {
	var cfg *tls.Config
	switch {
	case s.CertFile != "":
		var err error
		if cfg, err = ServerConfig(s.CertFile, s.KeyFile, s.ClientCAFile); err != nil {
			return nil, err
		}
	case s.SVID != nil:
		if s.ClientCAFile != "" {
			return nil, errors.New("a client CA file needs a certificate file to serve")
		}
		cfg = &tls.Config{MinVersion: MinVersion, GetCertificate: tlsconfig.GetCertificate(s.SVID)}
	case s.ClientCAFile != "" || s.Bundle != nil:
		return nil, ErrNoServingCertificate
	default:
		return nil, nil
	}
	if s.ClientCAFile == "" && s.Bundle != nil {
		authorizer := s.Authorizer
		if authorizer == nil {
			authorizer = tlsconfig.AuthorizeAny()
		}
		// go-spiffe verifies the chain against the bundle of the SVID's
		// trust domain; the standard verification (a CA pool, DNS names)
		// does not apply to SVIDs.
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyPeerCertificate = tlsconfig.VerifyPeerCertificate(s.Bundle, authorizer)
	}
	cfg.NextProtos = s.NextProtos
	return cfg, nil
}
