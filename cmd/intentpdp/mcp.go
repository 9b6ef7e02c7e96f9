package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/mcpgw"
)

// MCPConfig configures the MCP gateway listener of `intentpdp serve`.
type MCPConfig struct {
	// Listen is the address of the Streamable HTTP MCP gateway; empty:
	// off.
	Listen string
	// Config is the gateway's configuration file (upstreams, resource
	// mappings; see mcpgw.Config).
	Config string
	// ResourceURL is the gateway's canonical URL, the `resource` of its
	// protected resource metadata (the audience agents' tokens are for).
	ResourceURL string
	// WriteTimeout bounds an MCP response like --http-write-timeout bounds
	// the HTTP listener's; zero, the default, is none: a Streamable HTTP
	// response may be a long-lived SSE stream (the agent's GET stream of
	// server messages, a long tool call), which a write timeout would cut.
	// The HTTP listener's read and idle limits still apply.
	WriteTimeout time.Duration
}

func (c *MCPConfig) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "mcp-listen", "", "listen address of the MCP gateway over Streamable HTTP (empty: off; needs --mcp-config and --token-issuer)")
	fs.StringVar(&c.Config, "mcp-config", "", "MCP gateway configuration file: upstream MCP servers and resource mappings (JSON)")
	fs.StringVar(&c.ResourceURL, "mcp-resource-url", "", "canonical URL of the MCP gateway, announced as the protected resource (default: http://ADDR of --mcp-listen)")
	fs.DurationVar(&c.WriteTimeout, "mcp-write-timeout", 0, "longest time from an MCP request's headers to the end of its response (0: none, so SSE streams stay open; --http-write-timeout does not apply to the MCP listener)")
}

func (c *MCPConfig) validate(id *IdentityConfig) []error {
	if c.Listen == "" {
		return nil
	}
	var errs []error
	if c.WriteTimeout < 0 {
		errs = append(errs, errors.New("mcp-write-timeout must not be negative"))
	}
	if c.Config == "" {
		errs = append(errs, errors.New("mcp-listen needs --mcp-config"))
	}
	if len(id.TokenIssuers) == 0 {
		// Over HTTP the principal is the one a verified token proves; a
		// gateway that believed whoever called it would be no gate.
		errs = append(errs, errors.New("mcp-listen needs principal-token verification (--token-issuer)"))
	}
	return errs
}

// readMCPConfig reads the gateway's configuration file.
func readMCPConfig(path string) (mcpgw.Config, error) {
	var cfg mcpgw.Config
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// addMCP adds the MCP gateway listener to rn when --mcp-listen is set. It
// shares the HTTP listener's transport security (TLS, caller allowlist)
// and observe wraps its handler like the HTTP listener's.
func addMCP(ctx context.Context, rn *runner, cfg *Config, eng *engine.Engine, listen listenFunc, sec listenerSecurity, observe func(http.Handler) http.Handler, log *slog.Logger) error {
	c := cfg.MCP
	if c.Listen == "" {
		return nil
	}
	gcfg, err := readMCPConfig(c.Config)
	if err != nil {
		return err
	}
	g, err := mcpgw.New(ctx, eng, gcfg, cfg.Limits, log)
	if err != nil {
		return err
	}
	lis, err := listen.open("mcp-listen", c.Listen, false)
	if err != nil {
		g.Close()
		return err
	}
	resource := c.ResourceURL
	if resource == "" {
		resource = "http://" + lis.Addr().String()
	}
	h := g.HTTPHandler(mcpgw.HTTPOptions{Resource: resource, AuthorizationServers: cfg.Identity.TokenIssuers})
	limits := cfg.HTTPLimits
	limits.WriteTimeout = c.WriteTimeout
	rn.add(stageServe, httpListener("MCP gateway", limits.server(observe(sec.handler(h)), log), sec.listener(lis), cfg.ShutdownTimeout, log))
	rn.add(stageReload, onStop("MCP upstreams", g.Close))
	log.Info("serving the MCP gateway over Streamable HTTP", "addr", lis.Addr().String(), "path", mcpgw.Path, "upstreams", len(gcfg.Upstreams))
	return nil
}

// mcpCmd dispatches `intentpdp mcp SUBCOMMAND`.
func mcpCmd(ctx context.Context, args []string, stdout io.Writer, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: intentpdp mcp proxy [flags] [-- COMMAND ARGS...]")
	}
	switch args[0] {
	case "proxy":
		return mcpProxy(ctx, args[1:], os.Stdin, stdout, stderr)
	case "schema":
		return mcpSchema(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown mcp command %q (want proxy or schema)", args[0])
}

// mcpProxy runs the MCP gateway over stdio for a desktop agent that
// launches its tools as a command: the agent talks MCP on stdin/stdout,
// every call is decided against the bundle as --principal, and the
// allowed ones reach the upstream command given after "--" (and any in
// --config). With --grant-store postgres://… it is a replica of the grant
// store that serve's GrantService writes, so a task grant created there
// opens the writes it covers here. Logs go to stderr: stdout is the
// protocol.
func mcpProxy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bundleDir := fs.String("bundle", "", "bundle directory (default: the embedded example bundle)")
	configFile := fs.String("config", "", "gateway configuration file (upstreams, resource mappings)")
	principal := fs.String("principal", "", `principal of every call, as a Cedar entity reference (Agent::"desktop")`)
	name := fs.String("name", "upstream", "name of the upstream given after --: the id of its MCPServer entity")
	prompts := fs.String("prompts", mcpgw.PromptsOff, `prompts of the upstream given after --: "off" (not offered) or "decide" (each prompts/get decided as Action::"get_prompt")`)
	var obs ObservabilityConfig
	obs.bindFlags(fs)
	var grantCfg GrantConfig
	grantCfg.bindReplicaFlags(fs, "off", "task grants: off, or the postgres:// URL of the serve replicas that create them (intentpdp grant create), whose grants this proxy then follows")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	obs.SetDefaults()
	grantCfg.SetDefaults()
	if errs := slices.Concat(obs.Validate(), grantCfg.validate(false)); len(errs) > 0 {
		return errors.Join(errs...)
	}
	var gcfg mcpgw.Config
	if *configFile != "" {
		var err error
		if gcfg, err = readMCPConfig(*configFile); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		gcfg.Upstreams = append(gcfg.Upstreams, mcpgw.UpstreamConfig{Name: *name, Command: fs.Args(), Prompts: *prompts})
	}
	if *principal != "" {
		gcfg.Principal = *principal
	}
	if gcfg.Principal == "" {
		return errors.New(`a stdio agent carries no token: set --principal (Agent::"desktop") or "principal" in --config`)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	o, err := newObservability(ctx, &obs, log)
	if err != nil {
		return err
	}
	defer o.release(context.WithoutCancel(ctx))
	grantStore, err := openGrants(ctx, &grantCfg, log, o.registry)
	if err != nil {
		return err
	}
	if grantStore != nil {
		gctx, stop := context.WithCancel(ctx)
		followed := make(chan struct{})
		go func() { followGrants(grantStore)(gctx); close(followed) }()
		defer func() { stop(); <-followed }()
	}
	b, err := loadBundle(*bundleDir)
	if err != nil {
		return err
	}
	store := policystore.NewStore(grantStoreOptions(grantStore)...)
	if _, err := store.Activate(ctx, b); err != nil {
		return err
	}
	eng := engine.New(store, slices.Concat([]engine.Option{engine.WithLogger(log), o.serviceOption()}, grantEngineOptions(grantStore))...)
	g, err := mcpgw.New(ctx, eng, gcfg, engine.DefaultLimits, log)
	if err != nil {
		return err
	}
	defer g.Close()
	log.Info("MCP gateway over stdio", "principal", gcfg.Principal, "upstreams", len(gcfg.Upstreams))
	return g.Server().Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
