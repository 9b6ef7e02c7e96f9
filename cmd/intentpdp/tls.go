package main

import (
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/intentpdp/intentpdp/cmd/intentpdp/internal/tlsfiles"
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
	cfg, err := tlsfiles.ServerConfig(c.Cert, c.Key, c.ClientCA)
	if err != nil || cfg == nil {
		return nil, err
	}
	return grpc.Creds(credentials.NewTLS(cfg)), nil
}
