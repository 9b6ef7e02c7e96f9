package main

import "errors"

// TLSConfig configures TLS, and mutual TLS when ClientCA is set, on one
// listener (Config.TLS: the gRPC listener; CallersConfig: the others);
// newTransportSecurity loads it.
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
