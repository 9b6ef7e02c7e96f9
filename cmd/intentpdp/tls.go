package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLSConfig configures TLS, and mutual TLS when ClientCA is set, on the
// gRPC listener.
type TLSConfig struct {
	// Cert and Key are PEM files of the server certificate and its key.
	Cert, Key string
	// ClientCA is a PEM bundle of CAs whose client certificates are
	// required and accepted (mutual TLS).
	ClientCA string
}

// validate reports an incomplete configuration.
func (c TLSConfig) validate() error {
	if (c.Cert == "") != (c.Key == "") {
		return errors.New("tls-cert and tls-key go together")
	}
	if c.ClientCA != "" && c.Cert == "" {
		return errors.New("tls-client-ca needs tls-cert and tls-key")
	}
	return nil
}

// serverOption returns the gRPC credentials option, or nil for plaintext.
func (c TLSConfig) serverOption() (grpc.ServerOption, error) {
	if c.Cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificates", c.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return grpc.Creds(credentials.NewTLS(cfg)), nil
}
