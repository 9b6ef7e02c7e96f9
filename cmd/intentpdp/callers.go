package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/intentpdp/intentpdp/cmd/intentpdp/internal/tlsfiles"
	"github.com/intentpdp/intentpdp/server/caller"
)

// CallersConfig configures how the callers of every listener are
// authenticated (mutual TLS with X.509-SVIDs) and which callers each
// service admits. The gRPC listener's own TLS files are Config.TLS.
type CallersConfig struct {
	// HTTPTLS, AdminTLS and MetricsTLS secure the HTTP (AuthZEN and
	// forward-auth), admin and /metrics listeners; empty means plaintext,
	// or the SPIFFE source when SPIFFESocket is set.
	HTTPTLS, AdminTLS, MetricsTLS TLSConfig
	// SPIFFEBundle is the trust bundle of SPIFFETrustDomain (PEM CAs or a
	// SPIFFE bundle in JSON), reread when it changes. It verifies the
	// client SVIDs of every listener that serves a certificate of its own
	// and has no client CA file.
	SPIFFEBundle string
	// SPIFFETrustDomain is the trust domain of SPIFFEBundle; with
	// SPIFFESocket it restricts callers to that trust domain (default: any
	// trust domain the Workload API gives a bundle for).
	SPIFFETrustDomain string
	// SPIFFESocket is the SPIFFE Workload API address (unix:///path or
	// tcp://host:port). Its X.509-SVID serves every listener without
	// certificate files of its own, and its bundles verify the callers of
	// every listener without a client CA file; both rotate live.
	SPIFFESocket string
	// DecisionCallers admits callers to the decision services: the gRPC
	// AuthorizationService, Envoy ext_authz and reflection on the gRPC
	// listener, and AuthZEN and forward-auth on the HTTP listener.
	// AdminCallers admits callers to the admin listener, MetricsCallers to
	// /metrics. Each is a comma-separated list of SPIFFE ID patterns (see
	// caller.Allowlist); empty admits every caller the TLS layer accepts.
	DecisionCallers, AdminCallers, MetricsCallers string
}

// spiffeStartTimeout bounds waiting for the first X.509-SVID from the
// Workload API at start.
const spiffeStartTimeout = 30 * time.Second

func (c *CallersConfig) bindFlags(fs *flag.FlagSet) {
	for _, l := range []struct {
		prefix, name string
		tls          *TLSConfig
	}{{"http", "HTTP (AuthZEN, forward-auth)", &c.HTTPTLS}, {"admin", "admin", &c.AdminTLS}, {"metrics", "/metrics", &c.MetricsTLS}} {
		fs.StringVar(&l.tls.Cert, l.prefix+"-tls-cert", "", "PEM server certificate for the "+l.name+" listener (enables TLS)")
		fs.StringVar(&l.tls.Key, l.prefix+"-tls-key", "", "PEM private key of --"+l.prefix+"-tls-cert")
		fs.StringVar(&l.tls.ClientCA, l.prefix+"-tls-client-ca", "", "PEM CAs whose client certificates the "+l.name+" listener requires (mutual TLS)")
	}
	fs.StringVar(&c.SPIFFEBundle, "spiffe-bundle", "", "SPIFFE trust bundle (PEM CAs or SPIFFE bundle JSON) verifying client X.509-SVIDs on every listener with a certificate and no client CA; reread when it changes")
	fs.StringVar(&c.SPIFFETrustDomain, "spiffe-trust-domain", "", "trust domain of --spiffe-bundle, e.g. example.org; with --spiffe-socket, the only trust domain callers may come from")
	fs.StringVar(&c.SPIFFESocket, "spiffe-socket", "", "SPIFFE Workload API address, e.g. unix:///run/spire/agent.sock: its X.509-SVID and bundles secure every listener (mutual TLS), rotating live")
	fs.StringVar(&c.DecisionCallers, "decision-callers", "", "SPIFFE IDs allowed to ask for decisions (gRPC, ext_authz, AuthZEN, forward-auth), comma-separated: exact IDs, spiffe://td/* or spiffe://td/path/* (empty: any caller TLS accepts)")
	fs.StringVar(&c.AdminCallers, "admin-callers", "", "SPIFFE IDs allowed on the admin API, comma-separated patterns as --decision-callers (needed for a non-loopback --admin-listen)")
	fs.StringVar(&c.MetricsCallers, "metrics-callers", "", "SPIFFE IDs allowed to scrape /metrics, comma-separated patterns as --decision-callers")
}

// listenerPolicy is the configured transport security of one listener.
type listenerPolicy struct {
	name        string // for logs: "gRPC", "HTTP", "admin", "metrics"
	listenFlag  string
	tlsPrefix   string // "tls", "http-tls", ...
	addr        string
	tls         TLSConfig
	callersFlag string
	callers     string
	open        []string // gRPC services any accepted caller may call
}

// listenerPolicies lists every listener, on or off.
func (c *Config) listenerPolicies() []listenerPolicy {
	cc := c.Callers
	return []listenerPolicy{
		{"gRPC", "listen", "tls", c.Listen, c.TLS, "decision-callers", cc.DecisionCallers,
			// Load balancers probe health; with mutual TLS they need an
			// SVID the TLS layer accepts, but none on the allowlist.
			[]string{healthpb.Health_ServiceDesc.ServiceName}},
		{"HTTP", "http-listen", "http-tls", c.HTTPListen, cc.HTTPTLS, "decision-callers", cc.DecisionCallers, nil},
		{"admin", "admin-listen", "admin-tls", c.Reload.AdminListen, cc.AdminTLS, "admin-callers", cc.AdminCallers, nil},
		{"metrics", "metrics-listen", "metrics-tls", c.Observability.MetricsListen, cc.MetricsTLS, "metrics-callers", cc.MetricsCallers, nil},
	}
}

// mutualTLS reports whether the listener will require client certificates.
func (c *Config) mutualTLS(l listenerPolicy) bool {
	if c.Callers.SPIFFESocket != "" {
		return true
	}
	return l.tls.Cert != "" && (l.tls.ClientCA != "" || c.Callers.SPIFFEBundle != "")
}

// validateCallers reports every problem of the listeners' transport
// security.
func (c *Config) validateCallers() []error {
	var errs []error
	cc := c.Callers
	switch {
	case cc.SPIFFESocket != "" && cc.SPIFFEBundle != "":
		errs = append(errs, errors.New("spiffe-socket and spiffe-bundle exclude each other: the Workload API serves the bundles"))
	case cc.SPIFFEBundle != "" && cc.SPIFFETrustDomain == "":
		errs = append(errs, errors.New("spiffe-bundle needs --spiffe-trust-domain"))
	case cc.SPIFFETrustDomain != "" && cc.SPIFFEBundle == "" && cc.SPIFFESocket == "":
		errs = append(errs, errors.New("spiffe-trust-domain needs --spiffe-bundle or --spiffe-socket"))
	}
	if cc.SPIFFETrustDomain != "" {
		if _, err := spiffeid.TrustDomainFromString(cc.SPIFFETrustDomain); err != nil {
			errs = append(errs, fmt.Errorf("spiffe-trust-domain %q: %w", cc.SPIFFETrustDomain, err))
		}
	}
	if cc.SPIFFESocket != "" {
		if err := workloadapi.ValidateAddress(cc.SPIFFESocket); err != nil {
			errs = append(errs, fmt.Errorf("spiffe-socket %q: %w", cc.SPIFFESocket, err))
		}
	}
	for _, l := range c.listenerPolicies() {
		p := l.tlsPrefix
		if p != "tls" { // the gRPC listener's files are checked by TLSConfig.validate
			if (l.tls.Cert == "") != (l.tls.Key == "") {
				errs = append(errs, fmt.Errorf("%s-cert and %s-key go together", p, p))
			}
			if l.tls.ClientCA != "" && l.tls.Cert == "" {
				errs = append(errs, fmt.Errorf("%s-client-ca needs %s-cert and %s-key", p, p, p))
			}
		}
		if l.callers != "" {
			if _, err := caller.ParseAllowlist(splitList(l.callers)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", l.callersFlag, err))
			}
			if l.addr != "" && !c.mutualTLS(l) {
				errs = append(errs, fmt.Errorf("%s needs mutual TLS on the %s listener: --%s-cert and --%s-key with --%s-client-ca or --spiffe-bundle, or --spiffe-socket (or --%s \"\" to turn the listener off)",
					l.callersFlag, l.name, p, p, p, l.listenFlag))
			}
		}
		if l.name == "admin" && l.addr != "" && !isLoopback(l.addr) && (!c.mutualTLS(l) || l.callers == "") {
			errs = append(errs, fmt.Errorf("admin-listen %s is not a loopback address: the admin API there needs mutual TLS and --admin-callers", l.addr))
		}
	}
	return errs
}

// isLoopback reports whether addr (host:port) only listens on loopback.
// An empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listenerSecurity is what serve builds for one listener: its TLS
// configuration (nil: plaintext) and the guard that checks its callers and
// hands them to the engine.
type listenerSecurity struct {
	tls   *tls.Config
	guard *caller.Guard
}

// grpcOptions are the server options of a gRPC listener: its credentials
// and the guard's interceptors.
func (s listenerSecurity) grpcOptions() []grpc.ServerOption {
	opts := s.guard.ServerOptions()
	if s.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	return opts
}

// listener wraps lis in TLS when the listener has it (HTTP listeners).
func (s listenerSecurity) listener(lis net.Listener) net.Listener {
	if s.tls == nil {
		return lis
	}
	return tls.NewListener(lis, s.tls)
}

// handler puts the guard in front of h (HTTP listeners).
func (s listenerSecurity) handler(h http.Handler) http.Handler { return s.guard.Middleware(h) }

// transportSecurity holds the security of every listener and the SPIFFE
// source they share.
type transportSecurity struct {
	grpc, http, admin, metrics listenerSecurity
	source                     *workloadapi.X509Source // nil without --spiffe-socket
}

// close drops the connection to the Workload API.
func (t *transportSecurity) close() {
	if t.source != nil {
		_ = t.source.Close()
	}
}

// newTransportSecurity loads the certificates and bundles of every
// listener and connects to the Workload API; cfg is valid.
func newTransportSecurity(ctx context.Context, cfg *Config, log *slog.Logger) (*transportSecurity, error) {
	t := &transportSecurity{}
	cc := cfg.Callers
	var (
		svid       x509svid.Source
		bundle     x509bundle.Source
		authorizer tlsconfig.Authorizer
		td         spiffeid.TrustDomain
	)
	if cc.SPIFFETrustDomain != "" {
		td, _ = spiffeid.TrustDomainFromString(cc.SPIFFETrustDomain) // checked by Validate
	}
	switch {
	case cc.SPIFFESocket != "":
		sctx, cancel := context.WithTimeout(ctx, spiffeStartTimeout)
		src, err := workloadapi.NewX509Source(sctx, workloadapi.WithClientOptions(workloadapi.WithAddr(cc.SPIFFESocket)))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("spiffe-socket %s: %w", cc.SPIFFESocket, err)
		}
		t.source, svid, bundle = src, src, src
		if !td.IsZero() {
			authorizer = tlsconfig.AuthorizeMemberOf(td)
		}
		if s, err := src.GetX509SVID(); err == nil {
			log.Info("SPIFFE Workload API connected", "socket", cc.SPIFFESocket, "spiffe_id", s.ID.String())
		}
	case cc.SPIFFEBundle != "":
		b, err := tlsfiles.LoadBundleFile(td, cc.SPIFFEBundle, func(err error) {
			if err != nil {
				log.Warn("SPIFFE bundle not reloaded; keeping the last good one", "path", cc.SPIFFEBundle, "err", err)
			} else {
				log.Info("SPIFFE bundle reloaded", "path", cc.SPIFFEBundle)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("spiffe-bundle: %w", err)
		}
		bundle = b
	}
	for _, l := range cfg.listenerPolicies() {
		srv := tlsfiles.Server{CertFile: l.tls.Cert, KeyFile: l.tls.Key, ClientCAFile: l.tls.ClientCA, SVID: svid, Bundle: bundle, Authorizer: authorizer}
		if l.name == "HTTP" || l.name == "metrics" {
			srv.NextProtos = []string{"h2", "http/1.1"}
		}
		var (
			sec listenerSecurity
			err error
		)
		if srv.CertFile == "" && srv.SVID == nil {
			srv.Bundle = nil // plaintext: nothing to verify callers with
		}
		if sec.tls, err = srv.Config(); err != nil {
			t.close()
			return nil, fmt.Errorf("%s listener TLS: %w", l.name, err)
		}
		var allow *caller.Allowlist
		if l.callers != "" {
			allow, _ = caller.ParseAllowlist(splitList(l.callers)) // checked by Validate
		}
		sec.guard = caller.NewGuard(l.name, allow, caller.WithLogger(log), caller.WithOpenServices(l.open...))
		mtls := sec.tls != nil && sec.tls.ClientAuth != tls.NoClientCert
		if l.addr != "" && (sec.tls != nil || allow != nil) {
			log.Info("listener security", "listener", l.name, "tls", sec.tls != nil, "mtls", mtls, "callers", allow.String())
		}
		if l.name == "admin" && l.addr != "" && !mtls {
			log.Warn("admin API without mutual TLS: any local process may reload policies and approve grants as anyone", "addr", l.addr)
		}
		switch l.name {
		case "gRPC":
			t.grpc = sec
		case "HTTP":
			t.http = sec
		case "admin":
			t.admin = sec
		case "metrics":
			t.metrics = sec
		}
	}
	return t, nil
}
