// Package ociregistry runs a real OCI registry (the CNCF distribution
// registry, Debian's docker-registry, installed by
// scripts/install-registry.sh) for tests: on a loopback port, with its
// storage in a temporary directory, optionally behind htpasswd auth and
// TLS.
package ociregistry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is where scripts/install-registry.sh installs the registry.
const Binary = "/usr/bin/docker-registry"

// Options choose the registry's security.
type Options struct {
	// Auth puts the registry behind htpasswd basic auth with a generated
	// user; Registry.ConfigFile then holds a docker config for it.
	Auth bool
	// TLS serves HTTPS with a certificate from a generated CA in
	// Registry.CAFile.
	TLS bool
}

// Registry is a running registry.
type Registry struct {
	// Host is HOST:PORT, on 127.0.0.1.
	Host string
	// CAFile is the PEM CA of its certificate, with TLS.
	CAFile string
	// ConfigFile is a docker config.json with its credentials, with Auth.
	ConfigFile         string
	Username, Password string
}

// Find returns the registry binary. Without it the test fails under CI
// (CI installs it through scripts/test.sh) and is skipped elsewhere.
func Find(t testing.TB) string {
	t.Helper()
	if path, err := exec.LookPath("docker-registry"); err == nil {
		return path
	}
	if _, err := os.Stat(Binary); err == nil {
		return Binary
	}
	if os.Getenv("CI") != "" {
		t.Fatal("docker-registry is not installed; scripts/install-registry.sh installs it")
	}
	t.Skip("docker-registry is not installed; run scripts/install-registry.sh")
	return ""
}

// Start runs a registry until the test ends and waits, within a bound,
// until it answers.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	bin := Find(t)
	dir := t.TempDir()
	r := &Registry{}
	var conf strings.Builder
	fmt.Fprintf(&conf, "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", filepath.Join(dir, "data"))
	var tlsConf *tls.Config
	if opts.TLS {
		certFile, keyFile, pool := writeCert(t, dir)
		r.CAFile = filepath.Join(dir, "ca.pem")
		fmt.Fprintf(&conf, "http:\n  addr: %%s\n  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
		tlsConf = &tls.Config{RootCAs: pool}
	} else {
		conf.WriteString("http:\n  addr: %s\n")
	}
	if opts.Auth {
		r.Username, r.Password = "pdp", "secret-"+randomHex(t)
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		writeFile(t, htpasswd, r.Username+":"+string(hash)+"\n")
		fmt.Fprintf(&conf, "auth:\n  htpasswd:\n    realm: intentpdp-test\n    path: %s\n", htpasswd)
	}
	// The registry cannot report the port it bound, so reserve one; a lost
	// race shows as a start failure and is retried.
	for attempt := 0; ; attempt++ {
		r.Host = freeAddr(t)
		confPath := filepath.Join(dir, "config.yml")
		writeFile(t, confPath, strings.Replace(conf.String(), "%s", r.Host, 1))
		cmd := exec.Command(bin, "serve", confPath)
		var logBuf strings.Builder
		cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		if err := waitReady(r.Host, tlsConf, exited); err == nil {
			break
		} else if attempt == 2 {
			t.Fatalf("registry did not start: %v\n%s", err, logBuf.String())
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	if opts.Auth {
		auth := base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))
		cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{r.Host: map[string]string{"auth": auth}}})
		r.ConfigFile = filepath.Join(dir, "docker-config.json")
		writeFile(t, r.ConfigFile, string(cfg))
	}
	return r
}

// waitReady polls /v2/ until the registry answers (401 counts: it is up).
func waitReady(host string, tlsConf *tls.Config, exited <-chan struct{}) error {
	scheme := "http"
	tr := &http.Transport{}
	if tlsConf != nil {
		scheme, tr.TLSClientConfig = "https", tlsConf
	}
	client := &http.Client{Transport: tr, Timeout: time.Second}
	defer tr.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		select {
		case <-exited:
			return fmt.Errorf("registry exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeCert writes a CA (ca.pem) and a certificate for 127.0.0.1 signed by
// it, returning the certificate and key files and the CA pool.
func writeCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "intentpdp test registry CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, filepath.Join(dir, "ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, pool
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}
