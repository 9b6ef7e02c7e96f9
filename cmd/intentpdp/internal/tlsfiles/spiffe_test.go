package tlsfiles_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/intentpdp/intentpdp/cmd/intentpdp/internal/tlsfiles"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func authorities(t *testing.T, b *tlsfiles.BundleFile) []*x509.Certificate {
	t.Helper()
	got, err := b.GetX509BundleForTrustDomain(td)
	if err != nil {
		t.Fatal(err)
	}
	return got.X509Authorities()
}

// TestBundleFile reads PEM and SPIFFE bundle JSON, rereads a replaced
// file at the next use, and keeps the last good bundle when a reread
// fails.
func TestBundleFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca1, _ := selfSigned(t, filepath.Join(mkdir(t, dir, "1")))
	ca2, _ := selfSigned(t, filepath.Join(mkdir(t, dir, "2")))
	cert1, cert2 := readCert(t, ca1), readCert(t, ca2)
	path := filepath.Join(dir, "bundle")
	copyFile(t, ca1, path)

	var reports []error
	b, err := tlsfiles.LoadBundleFile(td, path, func(err error) { reports = append(reports, err) })
	if err != nil {
		t.Fatal(err)
	}
	if got := authorities(t, b); len(got) != 1 || !got[0].Equal(cert1) {
		t.Fatalf("authorities = %v, want the first CA", got)
	}
	if _, err := b.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.org")); err == nil {
		t.Error("a bundle for another trust domain")
	}

	// A SPIFFE bundle (JSON) with both CAs replaces the file.
	doc, err := spiffebundle.FromX509Authorities(td, []*x509.Certificate{cert1, cert2}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	replace(t, path, doc)
	if got := authorities(t, b); len(got) != 2 {
		t.Errorf("after rotation: %d authorities, want 2", len(got))
	}
	if len(reports) != 1 || reports[0] != nil {
		t.Errorf("reports = %v, want one successful reload", reports)
	}

	// A broken file keeps the last good bundle and is reported.
	replace(t, path, []byte("garbage"))
	if got := authorities(t, b); len(got) != 2 {
		t.Errorf("after a broken file: %d authorities, want the last good 2", len(got))
	}
	if len(reports) != 2 || reports[1] == nil {
		t.Errorf("reports = %v, want the failure reported", reports)
	}
	for name, data := range map[string][]byte{"empty": nil, "not PEM": []byte("garbage"), "empty JSON bundle": []byte(`{"keys": []}`)} {
		f := filepath.Join(dir, name)
		write(t, f, data)
		if _, err := tlsfiles.LoadBundleFile(td, f, nil); err == nil {
			t.Errorf("%s: LoadBundleFile accepted it", name)
		}
	}
}

func mkdir(t *testing.T, parent, name string) string {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, data)
}

// replace swaps in a new file at path, as bundle publishers do.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	write(t, path+".tmp", data)
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func TestServerSPIFFE(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	b, err := tlsfiles.LoadBundleFile(td, certFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsfiles.Server{CertFile: certFile, KeyFile: keyFile, Bundle: b}.Config()
	if err != nil || cfg.ClientAuth != tls.RequireAnyClientCert || cfg.VerifyPeerCertificate == nil {
		t.Errorf("bundle as client verification: %+v, %v", cfg, err)
	}
	cfg, err = tlsfiles.Server{CertFile: certFile, KeyFile: keyFile, ClientCAFile: certFile, Bundle: b}.Config()
	if err != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.VerifyPeerCertificate != nil {
		t.Errorf("a client CA file wins over the bundle: %+v, %v", cfg, err)
	}
	if _, err := (tlsfiles.Server{Bundle: b}).Config(); !errors.Is(err, tlsfiles.ErrNoServingCertificate) {
		t.Errorf("a bundle without a serving certificate: %v", err)
	}
	if cfg, err := (tlsfiles.Server{}).Config(); cfg != nil || err != nil {
		t.Errorf("nothing configured: %v, %v", cfg, err)
	}
}
