package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/intentpdp/intentpdp/internal/heapfloor"
	"github.com/intentpdp/intentpdp/server/engine"
)

// Config is the configuration of `intentpdp serve`. Flags and INTENTPDP_*
// environment variables map onto it; flags win.
type Config struct {
	// Bundle is the bundle directory; empty serves the embedded example.
	Bundle string
	// Listen is the gRPC listen address; it is required.
	Listen string
	// TLS secures the gRPC listener; empty means plaintext.
	TLS TLSConfig
	// Limits bound each request.
	Limits engine.Limits
	// EntityOverrides is what to do with request entity data that the
	// bundle contradicts: "ignore" (default: ignore and report) or "reject".
	EntityOverrides string
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string
	LogFormat string
	// HTTPListen is the HTTP listen address of the AuthZEN API and the
	// forward-auth endpoint; empty turns the HTTP listener off.
	HTTPListen string
	// AuthZENBaseURL is the absolute URL the AuthZEN discovery metadata
	// names; empty names the address each request arrived on.
	AuthZENBaseURL string
	// HTTPLimits bound the connections of every HTTP listener.
	HTTPLimits HTTPLimits
	// GRPCLimits bound the connections of the gRPC listeners.
	GRPCLimits GRPCLimits
	// GatewayConfig is the JSON file mapping gateway requests (Envoy
	// ext_authz, forward-auth) to decisions; empty uses the defaults.
	GatewayConfig string
	// ShutdownTimeout bounds the graceful drain of in-flight requests.
	ShutdownTimeout time.Duration
	// ShutdownDelay is how long shutdown keeps serving after health turned
	// NOT_SERVING (gRPC health and GET /healthz), so that a load balancer
	// notices and stops sending new work before the listeners stop
	// accepting. Zero: drain at once.
	ShutdownDelay time.Duration
	// Observability configures traces, metrics and the decision log.
	Observability ObservabilityConfig
	// Reload configures bundle sources, hot reload and the admin API.
	Reload ReloadConfig
	// Callers configures mutual TLS on every listener and the callers each
	// service admits.
	Callers CallersConfig
	// Identity configures principal-token verification.
	Identity IdentityConfig
	// Shadow configures the shadow bundle, a candidate decided beside the
	// active one.
	Shadow ShadowConfig
	// Grants configures task grants.
	Grants GrantConfig
	MCP    MCPConfig
	// GCMinHeapMiB is the floor of the garbage collector's heap goal, in
	// MiB (see heapfloor); 0 leaves the collector to GOGC alone, and so
	// does a GOGC set in the environment.
	GCMinHeapMiB int
}

// defaultConfig holds the defaults of Config's own fields; the nested
// configurations have theirs (engine.DefaultLimits, defaultHTTPLimits,
// defaultGRPCLimits, defaultObservability, defaultReload). The flags show
// them and SetDefaults fills unset fields from them, so each default is
// written once.
var defaultConfig = Config{
	Listen:          "127.0.0.1:50051",
	EntityOverrides: "ignore",
	LogLevel:        "info",
	LogFormat:       "text",
	HTTPListen:      "127.0.0.1:8181",
	ShutdownTimeout: 15 * time.Second,
	GCMinHeapMiB:    heapfloor.DefaultMiB,
}

// SetDefaults fills every unset field whose zero value has no meaning of
// its own: an empty listen address turns its listener off (and an empty
// Listen is invalid), so listen addresses are left as they are.
func (c *Config) SetDefaults() {
	d := defaultConfig
	c.Limits.SetDefaults()
	c.HTTPLimits.SetDefaults()
	c.GRPCLimits.SetDefaults()
	setDefault(&c.EntityOverrides, d.EntityOverrides)
	setDefault(&c.LogLevel, d.LogLevel)
	setDefault(&c.LogFormat, d.LogFormat)
	setPositive(&c.ShutdownTimeout, d.ShutdownTimeout)
	c.Observability.SetDefaults()
	c.Reload.SetDefaults()
	c.Identity.SetDefaults()
	c.Shadow.SetDefaults()
	c.Grants.SetDefaults()
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: the gRPC listen address is required"))
	}
	if c.AuthZENBaseURL != "" {
		if err := validateBaseURL(c.AuthZENBaseURL); err != nil {
			errs = append(errs, fmt.Errorf("authzen-base-url %q: %w", c.AuthZENBaseURL, err))
		}
	}
	if err := c.GRPCLimits.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.TLS.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.GCMinHeapMiB < 0 {
		errs = append(errs, fmt.Errorf("gc-min-heap-mib must not be negative, not %d", c.GCMinHeapMiB))
	}
	if c.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("shutdown-delay must not be negative, not %v", c.ShutdownDelay))
	}
	if c.EntityOverrides != "ignore" && c.EntityOverrides != "reject" {
		errs = append(errs, fmt.Errorf("entity-overrides must be ignore or reject, not %q", c.EntityOverrides))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log-level: %w", err))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log-format must be text or json, not %q", c.LogFormat))
	}
	errs = append(errs, c.Observability.Validate()...)
	errs = append(errs, c.Reload.validate(c.Bundle)...)
	errs = append(errs, c.validateCallers()...)
	errs = append(errs, c.Identity.Validate()...)
	errs = append(errs, c.Shadow.validate()...)
	errs = append(errs, c.Grants.validate(true)...)
	errs = append(errs, c.MCP.validate(&c.Identity)...)
	return errors.Join(errs...)
}

func (c *Config) bindFlags(fs *flag.FlagSet) {
	d := defaultConfig
	fs.StringVar(&c.Bundle, "bundle", "", "bundle directory (default: the embedded example bundle)")
	fs.StringVar(&c.Listen, "listen", d.Listen, "gRPC listen address (required)")
	fs.StringVar(&c.TLS.Cert, "tls-cert", "", "PEM server certificate for the gRPC listener (enables TLS)")
	fs.StringVar(&c.TLS.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.TLS.ClientCA, "tls-client-ca", "", "PEM CAs whose client certificates are required (mutual TLS)")
	fs.IntVar(&c.Limits.MaxMessageBytes, "max-message-bytes", engine.DefaultLimits.MaxMessageBytes, "largest request message accepted")
	fs.IntVar(&c.Limits.MaxDepth, "max-context-depth", engine.DefaultLimits.MaxDepth, "deepest nesting of records and sets in a request")
	fs.IntVar(&c.Limits.MaxValues, "max-context-values", engine.DefaultLimits.MaxValues, "most values in one request (context, intent attributes, entities)")
	fs.IntVar(&c.Limits.MaxEntities, "max-entities", engine.DefaultLimits.MaxEntities, "most request-scoped entities per request")
	fs.IntVar(&c.Limits.MaxBatch, "max-batch", engine.DefaultLimits.MaxBatch, "most requests in one BatchAuthorize")
	fs.StringVar(&c.EntityOverrides, "entity-overrides", d.EntityOverrides, "request entity data the bundle contradicts: ignore (and report) or reject")
	fs.StringVar(&c.LogLevel, "log-level", d.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", d.LogFormat, "log format: text or json")
	fs.StringVar(&c.HTTPListen, "http-listen", d.HTTPListen, "HTTP listen address of the AuthZEN API and forward-auth (empty: off)")
	fs.StringVar(&c.AuthZENBaseURL, "authzen-base-url", "", "absolute URL the AuthZEN discovery metadata names, e.g. https://pdp.example.org (default: the address each request arrived on, never its Host header)")
	fs.StringVar(&c.GatewayConfig, "gateway-config", "", "JSON file mapping gateway requests (ext_authz, forward-auth) to decisions")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "how long graceful shutdown waits for in-flight requests")
	fs.IntVar(&c.GCMinHeapMiB, "gc-min-heap-mib", d.GCMinHeapMiB, "floor of the garbage collector's heap goal in MiB: a small heap grows to it between collections, a larger one keeps GOGC's proportion (0: GOGC alone; a GOGC in the environment also turns it off)")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", 0, "on shutdown, how long to keep serving after health reports NOT_SERVING, so that load balancers stop sending work first (set it above the balancer's health-check interval × fall count)")
	c.HTTPLimits.bindFlags(fs)
	c.GRPCLimits.bindFlags(fs)
	c.Observability.bindFlags(fs)
	c.Reload.bindFlags(fs)
	c.Callers.bindFlags(fs)
	c.Identity.bindFlags(fs)
	c.Shadow.bindFlags(fs)
	c.Grants.bindFlags(fs)
	c.MCP.bindFlags(fs)
}

// parseFlags applies INTENTPDP_* environment variables, then the flags.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := "INTENTPDP_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return fs.Parse(args)
}

func (c *Config) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel)) // checked by Validate
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
