package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const mcpExample = "../../examples/mcp"

// buildMCPExample compiles the example's MCP server and agent once per
// test binary run.
var buildMCPExample = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "intentpdp-mcp-example")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("go", "build", "-o", dir, "../../examples/mcp/fakegithub", "../../examples/mcp/agent").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return dir, nil
})

func mcpExampleBinaries(t *testing.T) (fakegithub, agent string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the example's binaries; skipped in -short mode")
	}
	dir, err := buildMCPExample()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return filepath.Join(dir, "fakegithub"), filepath.Join(dir, "agent")
}

// startFakeGitHub runs the example's MCP server over Streamable HTTP on a
// loopback port the kernel chooses and returns its endpoint.
func startFakeGitHub(t *testing.T, bin string) string {
	t.Helper()
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	endpoint := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() { // drains stderr to the end, so the child never blocks on it
			if _, url, ok := strings.Cut(sc.Text(), "serving MCP on "); ok && !sent {
				endpoint <- url
				sent = true
			}
		}
		close(endpoint)
	}()
	select {
	case url, ok := <-endpoint:
		if !ok {
			t.Fatal("fakegithub exited before serving")
		}
		return url
	case <-time.After(startupDeadline):
		t.Fatal("fakegithub did not start serving")
	}
	return ""
}

// exampleConfig is the example's mcp.json with the upstream's URL
// replaced by url.
func exampleConfig(t *testing.T, url string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mcpExample, "mcp.json"))
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte("http://127.0.0.1:8090/mcp"), []byte(url))
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMCPSchemaExampleInStep: the example's committed schema is what
// `intentpdp mcp schema` writes for the example's server, read over stdio
// and over Streamable HTTP through the example's gateway configuration.
func TestMCPSchemaExampleInStep(t *testing.T) {
	fakegithub, _ := mcpExampleBinaries(t)
	want, err := os.ReadFile(filepath.Join(mcpExample, "github.cedarschema"))
	if err != nil {
		t.Fatal(err)
	}
	url := startFakeGitHub(t, fakegithub)
	for name, args := range map[string][]string{
		"stdio":  {"--name", "github", "--", fakegithub, "--stdio"},
		"config": {"--config", exampleConfig(t, url)},
		"url":    {"--name", "github", "--url", url},
	} {
		var out, errs bytes.Buffer
		if err := mcpSchema(t.Context(), args, &out, &errs); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, errs.String())
		}
		if out.String() != string(want) {
			t.Errorf("%s: examples/mcp/github.cedarschema is not what mcp schema writes; regenerate it:\n"+
				"go run ./cmd/intentpdp mcp schema --name github -- go run ./examples/mcp/fakegithub --stdio > examples/mcp/github.cedarschema\ngot:\n%s", name, out.String())
		}
	}
}

func TestMCPSchemaRefusesBadUse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "set exactly one of url and command"},
		{[]string{"--url", "http://127.0.0.1:1/mcp", "--", "true"}, "set exactly one of url and command"},
		{[]string{"--config", filepath.Join(mcpExample, "mcp.json"), "--url", "http://127.0.0.1:1/mcp"}, "not both"},
		{[]string{"--config", filepath.Join(mcpExample, "mcp.json"), "--name", "gitlab"}, `no upstream named "gitlab"`},
		{[]string{"--principal-type", "not a type", "--url", "http://127.0.0.1:1/mcp"}, "entity type"},
	} {
		err := mcpSchema(t.Context(), c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("mcp schema %q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

// TestMCPExampleWalkthrough runs the README's walk-through with the real
// binaries: the example's MCP server behind `intentpdp serve
// --mcp-listen` with the example bundle, the example agent proving itself
// with a token, a task grant created from the example's grant file.
func TestMCPExampleWalkthrough(t *testing.T) {
	fakegithub, agent := mcpExampleBinaries(t)
	url := startFakeGitHub(t, fakegithub)
	dir := t.TempDir()
	agentRun := func(args ...string) (bool, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), startupDeadline) // bounds a hung agent; not a timing assertion
		defer cancel()
		cmd := exec.CommandContext(ctx, agent, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return err == nil, string(out)
	}
	if ok, out := agentRun("keygen"); !ok {
		t.Fatalf("keygen: %s", out)
	}
	abs, err := filepath.Abs(mcpExample)
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, nil, "--bundle", abs,
		"--mcp-listen", "127.0.0.1:0", "--mcp-config", exampleConfig(t, url),
		"--token-issuer", "https://issuer.example", "--token-audience", "intentpdp", "--jwks-file", filepath.Join(dir, "jwks.json"))
	p.mu.Lock()
	gateway := "--url=http://" + p.mcpAddr + "/mcp"
	p.mu.Unlock()

	_, tools := agentRun(gateway, "list")
	if !strings.Contains(tools, "get_repo") || !strings.Contains(tools, "list_issues") ||
		strings.Contains(tools, "create_issue") || strings.Contains(tools, "delete_repo") {
		t.Errorf("without a grant the agent sees:\n%s\nwant the read tools only", tools)
	}
	if ok, out := agentRun(gateway, "call", "get_repo", `{"owner":"acme","repo":"web"}`); !ok || !strings.Contains(out, `"full_name":"acme/web"`) {
		t.Errorf("get_repo: ok=%v %s", ok, out)
	}
	if ok, out := agentRun(gateway, "read", "github://acme/web/readme"); !ok || !strings.Contains(out, "# acme/web") {
		t.Errorf("read acme's README: ok=%v %s", ok, out)
	}
	if ok, out := agentRun(gateway, "read", "github://globex/site/readme"); ok || !strings.Contains(out, "denied by intentpdp: no policy permits") {
		t.Errorf("read another owner's README: ok=%v %s, want a denial", ok, out)
	}
	issue := `{"owner":"acme","repo":"web","title":"Flaky login test"}`
	if ok, out := agentRun(gateway, "--task", "T-7", "call", "create_issue", issue); ok || !strings.Contains(out, "no live grant for task T-7") {
		t.Errorf("create_issue without a grant: ok=%v %s", ok, out)
	}
	if code, out := runCommand(t, "grant", "create", "--admin", p.adminAddress(), "--file", filepath.Join(mcpExample, "grants", "T-7.json")); code != 0 {
		t.Fatalf("grant create: exit %d\n%s", code, out)
	}
	if _, tools := agentRun(gateway, "--task", "T-7", "list"); !strings.Contains(tools, "create_issue") || !strings.Contains(tools, "merge_pull_request") || strings.Contains(tools, "delete_repo") {
		t.Errorf("under the grant the agent sees:\n%s\nwant the write tools too, and never delete_repo", tools)
	}
	if ok, out := agentRun(gateway, "--task", "T-7", "call", "create_issue", issue); !ok || !strings.Contains(out, `"title":"Flaky login test"`) {
		t.Errorf("create_issue under the grant: ok=%v %s", ok, out)
	}
	if ok, out := agentRun(gateway, "--as", "intern-bot", "--task", "T-7", "call", "create_issue", issue); ok {
		t.Errorf("another agent used triage-bot's grant: %s", out)
	}
	for _, c := range []struct{ tool, args, why string }{
		{"delete_repo", `{"owner":"acme","repo":"web"}`, "deleting a repository is never delegated to agents"},
		{"list_issues", `{"owner":"acme","repo":"web","limit":500}`, "list_issues returns at most 100 issues per call"},
		{"merge_pull_request", `{"owner":"acme","repo":"web","number":4,"merge_method":"rebase"}`, "agents merge pull requests by squashing only"},
	} {
		if ok, out := agentRun(gateway, "--task", "T-7", "call", c.tool, c.args); ok || !strings.Contains(out, c.why) {
			t.Errorf("%s %s: ok=%v %s, want a denial saying %q", c.tool, c.args, ok, out, c.why)
		}
	}
	// delete_repo never reached the server: the repository is still there.
	if ok, out := agentRun(gateway, "call", "get_repo", `{"owner":"acme","repo":"web"}`); !ok {
		t.Errorf("acme/web is gone: %s", out)
	}
	// Over stdio, as a desktop agent launches it: the proxy in front of the
	// server's command, the principal configured.
	proxy := []string{"--", p.cmd.Path, "mcp", "proxy", "--bundle", abs, "--principal", `Agent::"triage-bot"`, "--name", "github", "--", fakegithub, "--stdio"}
	if _, tools := agentRun(append([]string{"list"}, proxy...)...); !strings.Contains(tools, "get_repo") || strings.Contains(tools, "delete_repo") {
		t.Errorf("over stdio the agent sees:\n%s", tools)
	}
	if ok, out := agentRun(append([]string{"call", "delete_repo", `{"owner":"acme","repo":"web"}`}, proxy...)...); ok || !strings.Contains(out, "never delegated") {
		t.Errorf("delete_repo over stdio: ok=%v %s", ok, out)
	}
}
