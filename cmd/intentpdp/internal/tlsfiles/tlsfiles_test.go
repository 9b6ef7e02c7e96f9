package tlsfiles_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/cmd/intentpdp/internal/tlsfiles"
)

// selfSigned writes a self-signed CA certificate and its key as PEM files
// in dir and returns their paths.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsfiles test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCAPool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	empty := filepath.Join(dir, "empty.pem")
	write(t, empty, nil)
	if _, err := tlsfiles.LoadCAPool(certFile); err != nil {
		t.Fatalf("a CA certificate: %v", err)
	}
	for _, tt := range []struct{ name, file, want string }{
		{"missing file", filepath.Join(dir, "absent.pem"), "absent.pem"},
		{"empty file", empty, empty + ": no PEM certificate found"},
		{"a key, not a certificate", keyFile, keyFile + ": no PEM certificate found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tlsfiles.LoadCAPool(tt.file); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadCAPool = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestServerConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	if cfg, err := tlsfiles.ServerConfig("", "", ""); cfg != nil || err != nil {
		t.Fatalf("no certificate: %v, %v; want plaintext (nil, nil)", cfg, err)
	}
	cfg, err := tlsfiles.ServerConfig(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert || len(cfg.Certificates) != 1 {
		t.Errorf("TLS: min version %x, client auth %v, %d certificates", cfg.MinVersion, cfg.ClientAuth, len(cfg.Certificates))
	}
	cfg, err = tlsfiles.ServerConfig(certFile, keyFile, certFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Errorf("mutual TLS: client auth %v, client CAs %v", cfg.ClientAuth, cfg.ClientCAs)
	}
	if _, err := tlsfiles.ServerConfig(certFile, keyFile, keyFile); err == nil || !strings.Contains(err.Error(), keyFile) {
		t.Errorf("a key as client CA: %v, want an error naming it", err)
	}
}

func TestClientConfig(t *testing.T) {
	t.Parallel()
	certFile, _ := selfSigned(t, t.TempDir())
	if cfg, err := tlsfiles.ClientConfig(""); cfg != nil || err != nil {
		t.Fatalf("no CA file: %v, %v; want the system roots (nil, nil)", cfg, err)
	}
	cfg, err := tlsfiles.ClientConfig(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("roots %v, min version %x", cfg.RootCAs, cfg.MinVersion)
	}
}
