// Command intentpdp is a low-latency policy decision point for AI agents
// and other workloads: Cedar policies in memory, decisions over gRPC.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `intentpdp: a Cedar policy decision point for agents' tool calls.

Usage:
  intentpdp serve [flags]                  serve decisions over gRPC
  intentpdp check DIR                      run a bundle's activation offline (parse, schema, ids, tests/)
  intentpdp eval --bundle DIR REQUEST.json decide one request offline
  intentpdp bundle build|verify|keygen     build, sign and verify bundle archives
  intentpdp replay --bundle DIR --log F    re-decide logged decisions with a candidate bundle; report what changes
  intentpdp diff OLD NEW                   decide two bundles' tests/ cases and example requests; report differences
  intentpdp grant create|revoke|show|list  create and revoke task grants through the admin API
  intentpdp mcp proxy [flags] -- CMD...    MCP gateway over stdio: every tools/call of CMD's tools decided
  intentpdp mcp schema --url URL | -- CMD  print a Cedar schema for what an MCP server offers

Run 'intentpdp COMMAND -h' for a command's flags. Every flag can also be set
through the environment as INTENTPDP_<FLAG>, e.g. INTENTPDP_LISTEN.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "check":
		err = check(ctx, args[1:], stdout)
	case "eval":
		err = eval(args[1:], stdout)
	case "bundle":
		err = bundleCmd(ctx, args[1:], stdout)
	case "replay":
		err = replay(ctx, args[1:], stdout)
	case "diff":
		err = diff(ctx, args[1:], stdout)
	case "grant":
		err = grantCmd(ctx, args[1:], stdout)
	case "mcp":
		err = mcpCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "intentpdp %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
