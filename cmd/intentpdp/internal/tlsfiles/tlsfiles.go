// Package tlsfiles turns the PEM files that intentpdp's flags name into TLS
// configurations: one loader of CA bundles and one builder each of server
// and client configurations, so that every listener and client of the
// command reads certificates the same way.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// MinVersion is the oldest TLS version any listener or client accepts.
const MinVersion = tls.VersionTLS12

// LoadCAPool reads a PEM bundle of CA certificates. A file without a
// single certificate is an error naming it, so that a key or a truncated
// file given as a CA fails at start rather than at every handshake.
func LoadCAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificate found", file)
	}
	return pool, nil
}

// ServerConfig returns the configuration of a listener serving the
// certificate in certFile with its key in keyFile. When clientCAFile is
// set, clients must present a certificate issued by one of its CAs
// (mutual TLS). It returns nil when certFile is empty: plaintext.
func ServerConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: MinVersion}
	if clientCAFile != "" {
		pool, err := LoadCAPool(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig returns the configuration of a client that trusts the CAs
// in caFile, or nil when caFile is empty (the system roots).
func ClientConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := LoadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, MinVersion: MinVersion}, nil
}
