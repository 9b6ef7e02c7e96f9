package main

import (
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/intentpdp/intentpdp/internal/testutil/pgtest"
)

// TestMCPProxyFollowsGrants runs a desktop agent's stdio proxy (the real
// binary, the example's server behind it) as a replica of the PostgreSQL
// grant store of an `intentpdp serve`: create_issue, which the example
// allows only inside a live grant, is denied for task T-7 until `intentpdp
// grant create` on serve grants it, allowed then, and denied again after
// `intentpdp grant revoke`.
func TestMCPProxyFollowsGrants(t *testing.T) {
	fakegithub, _ := mcpExampleBinaries(t)
	dsn := pgtest.Start(t).Database(t)
	abs, err := filepath.Abs(mcpExample)
	if err != nil {
		t.Fatal(err)
	}
	// A generous staleness bound: a heartbeat delayed on a busy machine is
	// not what this test is about (server/grants tests the bound).
	p := startServe(t, nil, "--bundle", abs, "--grant-store", dsn, "--grant-max-staleness", "1m")
	admin := p.adminAddress()
	if admin == "" {
		t.Fatal("serve has no admin API")
	}

	ctx, cancel := context.WithTimeout(t.Context(), startupDeadline) // bounds a hung proxy; not a timing assertion
	defer cancel()
	proxy := exec.Command(p.cmd.Path, "mcp", "proxy", "--bundle", abs, "--grant-store", dsn, "--grant-max-staleness", "1m",
		"--principal", `Agent::"triage-bot"`, "--name", "github", "--", fakegithub, "--stdio")
	var stderr logBuffer
	proxy.Stderr = &stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "desktop"}, nil).Connect(ctx, &mcp.CommandTransport{Command: proxy}, nil)
	if err != nil {
		t.Fatalf("connect to the proxy: %v\n%s", err, stderr.String())
	}
	defer cs.Close()

	meta := mcp.Meta{"io.intentpdp/purpose": "triage", "io.intentpdp/task_id": "T-7"}
	createIssue := func() (bool, string) {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: meta, Name: "create_issue",
			Arguments: json.RawMessage(`{"owner":"acme","repo":"web","title":"Flaky login test"}`)})
		if err != nil {
			t.Fatalf("create_issue: %v\n%s", err, stderr.String())
		}
		var text []string
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text = append(text, tc.Text)
			}
		}
		return !res.IsError, strings.Join(text, " ")
	}
	tools := func() []string {
		t.Helper()
		res, err := cs.ListTools(ctx, &mcp.ListToolsParams{Meta: meta})
		if err != nil {
			t.Fatalf("tools/list: %v\n%s", err, stderr.String())
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		return names
	}

	if ok, out := createIssue(); ok || !strings.Contains(out, "no live grant for task T-7") {
		t.Fatalf("create_issue before the grant: allowed=%v %q, want a denial saying there is no live grant", ok, out)
	}
	if slices.Contains(tools(), "create_issue") {
		t.Error("create_issue listed before the grant")
	}

	if code, out := runCommand(t, "grant", "create", "--admin", admin, "--file", filepath.Join(mcpExample, "grants", "T-7.json")); code != 0 {
		t.Fatalf("grant create: exit %d\n%s", code, out)
	}
	pollUntil(t, "the grant to reach the proxy", func() bool { ok, _ := createIssue(); return ok })
	if ok, out := createIssue(); !ok || !strings.Contains(out, `"title":"Flaky login test"`) {
		t.Errorf("create_issue under the grant: allowed=%v %q", ok, out)
	}
	if got := tools(); !slices.Contains(got, "create_issue") || !slices.Contains(got, "merge_pull_request") || slices.Contains(got, "delete_repo") {
		t.Errorf("under the grant the proxy lists %v, want the write tools too, and never delete_repo", got)
	}

	if code, out := runCommand(t, "grant", "revoke", "--admin", admin, "--task", "T-7"); code != 0 {
		t.Fatalf("grant revoke: exit %d\n%s", code, out)
	}
	pollUntil(t, "the revocation to reach the proxy", func() bool {
		ok, out := createIssue()
		return !ok && strings.Contains(out, "no live grant for task T-7 (revoked)")
	})
	if slices.Contains(tools(), "create_issue") {
		t.Error("create_issue listed after the revocation")
	}
}

// TestMCPProxyGrantStore: the stdio proxy serves no GrantService, so a
// memory grant store would stay empty; it is refused, like any store but
// off and PostgreSQL, and a PostgreSQL store it cannot reach stops it.
func TestMCPProxyGrantStore(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ store, want string }{
		{"memory", "nothing could create a grant in this process"},
		{"sqlite:///tmp/grants.db", "grant-store must be off or a postgres:// URL"},
		{"postgres://127.0.0.1:1/intentpdp?connect_timeout=5", "grant store"}, // nothing listens: the proxy does not start without its grants
	} {
		err := mcpProxy(t.Context(), []string{"--grant-store", c.store, "--principal", `Agent::"desktop"`, "--", "true"}, strings.NewReader(""), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--grant-store %q: %v, want an error saying %q", c.store, err, c.want)
		}
	}
}
