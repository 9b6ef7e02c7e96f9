package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/intentpdp/intentpdp/server/mcpgw"
)

// mcpSchema prints a Cedar schema for what one upstream MCP server offers
// (tools, resources, prompts): the Streamable HTTP server at --url, the command after "--", or
// the upstream --name of --config (with its resource mappings). It is the
// starting point of a bundle for the MCP gateway.
func mcpSchema(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "Streamable HTTP URL of the upstream MCP server")
	configFile := fs.String("config", "", "gateway configuration file: the upstream --name is read from it, with its resource mappings")
	name := fs.String("name", "upstream", "name of the upstream: the id of its MCPServer entity, and the upstream read from --config")
	principalType := fs.String("principal-type", defaultIdentity.PrincipalType, "entity type of the agents, as serve --principal-type")
	approverType := fs.String("grant-caller-type", defaultGrants.CallerType, "entity type of the people who approve task grants, as serve --grant-caller-type")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := mcpgw.SchemaOptions{Upstream: *name, PrincipalType: *principalType, ApproverType: *approverType}
	up := mcpgw.UpstreamConfig{Name: *name, URL: *url, Command: fs.Args()}
	if *configFile != "" {
		if *url != "" || fs.NArg() > 0 {
			return errors.New("mcp schema: give --config or an upstream (--url, -- COMMAND), not both")
		}
		cfg, err := readMCPConfig(*configFile)
		if err != nil {
			return err
		}
		var named bool
		fs.Visit(func(f *flag.Flag) { named = named || f.Name == "name" })
		var found bool
		for i, u := range cfg.Upstreams {
			if u.Name == *name || (!named && len(cfg.Upstreams) == 1) {
				up, found = cfg.Upstreams[i], true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s has no upstream named %q (--name)", *configFile, *name)
		}
		opts.Upstream, opts.Resources = up.Name, up.Resources
		if len(cfg.Upstreams) > 1 {
			opts.Prefix = up.Name + "." // as the gateway names the tools of several upstreams
		}
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("mcp schema: %w", err)
	}
	if err := (&mcpgw.Config{Upstreams: []mcpgw.UpstreamConfig{up}}).Validate(); err != nil {
		return fmt.Errorf("mcp schema: %w (usage: intentpdp mcp schema [--principal-type T] --url URL | --config FILE [--name N] | -- COMMAND ARGS...)", err)
	}
	offer, err := mcpgw.ReadOffer(ctx, up, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	schema, err := mcpgw.Schema(offer, opts)
	if err != nil {
		return err
	}
	_, err = stdout.Write(schema)
	return err
}
