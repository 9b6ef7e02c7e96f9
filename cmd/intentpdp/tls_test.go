package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// testPKI is a throwaway CA with a server and a client certificate.
type testPKI struct {
	dir        string
	ca         *x509.Certificate
	caKey      *ecdsa.PrivateKey
	pool       *x509.CertPool
	clientCert tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	p.caKey = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "intentpdp test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.pool.AddCert(p.ca)
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)

	p.issue(t, "server", &x509.Certificate{IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	spiffe, _ := url.Parse("spiffe://example.org/agent/planner")
	p.clientCert = p.issue(t, "client", &x509.Certificate{URIs: []*url.URL{spiffe}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return p
}

func (p *testPKI) issue(t *testing.T, name string, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(p.dir, name+"-key.pem"), "EC PRIVATE KEY", keyDER)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServeMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	p := startServe(t, nil, "--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server-key.pem"),
		"--tls-client-ca", pki.path("ca.pem"))

	authorize := func(certs ...tls.Certificate) error {
		creds := credentials.NewTLS(&tls.Config{RootCAs: pki.pool, Certificates: certs, MinVersion: tls.VersionTLS12})
		conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = pdpv1.NewAuthorizationServiceClient(conn).Authorize(ctx, readFile("code-reviewer"))
		return err
	}
	if err := authorize(pki.clientCert); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := authorize(); err == nil {
		t.Fatal("without a client certificate the call succeeded")
	}
}

// TestServeCallerAllowlist runs the real binary with SPIFFE mutual TLS:
// the allowlisted orchestrator gets decisions, another workload of the
// trust domain is refused without one.
func TestServeCallerAllowlist(t *testing.T) {
	f := newCallerFixture(t)
	p := startServe(t, nil, append(f.flags(), "--decision-callers", "spiffe://example.org/orchestrator")...)
	resp, err := authorize(t, p.grpcAddr, f.pki.clientTLS(f.orchestrator))
	if err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
		t.Fatalf("Authorize by the orchestrator = %v, %v", resp.GetDecision(), err)
	}
	_, err = authorize(t, p.grpcAddr, f.pki.clientTLS(f.agent))
	wantRefusedCaller(t, "Authorize by a workload off the allowlist", err)
	_, err = authorize(t, p.grpcAddr, f.pki.clientTLS())
	wantHandshakeRefused(t, "Authorize without a client certificate", err)
	p.stop(t)
}
