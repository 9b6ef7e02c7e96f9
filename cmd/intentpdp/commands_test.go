package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCommand(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(context.Background(), args, &out, &out)
	return code, out.String()
}

func TestCheck(t *testing.T) {
	t.Parallel()
	code, out := runCommand(t, "check", "../../examples/agents")
	if code != 0 || !strings.Contains(out, "revision: agents-example-v1") || !strings.Contains(out, "policies: 7") {
		t.Fatalf("check example: exit %d\n%s", code, out)
	}

	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.cedar"), "permit (principal, action, resource);\n@id(\"x\") permit (principal, action, resource);\n")
	write(t, filepath.Join(dir, "b.cedar"), "@id(\"x\") forbid (principal, action, resource);\n")
	write(t, filepath.Join(dir, "c.cedar"), "permit (principal, action, resource);\nforbid (principal action, resource);\n")
	code, out = runCommand(t, "check", dir)
	if code != 1 || !strings.Contains(out, `b.cedar:1:1: duplicate policy id "x"`) || !strings.Contains(out, "c.cedar:2:") {
		t.Fatalf("check broken bundle: exit %d\n%s", code, out)
	}
}

func TestCheckRunsBundleTests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.cedar"), `@id("all") permit (principal, action, resource);`)
	if err := os.Mkdir(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "tests", "cases.json"), `[{"name": "nobody may read", "now": "2026-01-01T00:00:00Z",
  "principal": {"type": "User", "id": "a"}, "action": {"type": "Action", "id": "read"}, "resource": {"type": "Doc", "id": "d"},
  "expect": {"decision": "deny"}}]`)
	code, out := runCommand(t, "check", dir)
	if code != 1 || !strings.Contains(out, `tests/cases.json: case "nobody may read"`) {
		t.Fatalf("check with a failing bundle test: exit %d\n%s", code, out)
	}
}

func TestEval(t *testing.T) {
	t.Parallel()
	code, out := runCommand(t, "eval", "--bundle", "../../examples/agents", "../../examples/agents/requests/secret-without-approved-purpose-denied.json")
	if code != 0 || !strings.Contains(out, `"DECISION_DENY"`) || !strings.Contains(out, "secrets may only be read for incident response") {
		t.Fatalf("eval: exit %d\n%s", code, out)
	}
	code, out = runCommand(t, "eval", "missing.json")
	if code != 1 {
		t.Fatalf("eval of a missing file: exit %d\n%s", code, out)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	if code, out := runCommand(t); code != 2 || !strings.Contains(out, "Usage:") {
		t.Fatalf("no command: exit %d\n%s", code, out)
	}
	if code, _ := runCommand(t, "frobnicate"); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	t.Setenv("INTENTPDP_ENTITY_OVERRIDES", "sometimes")
	code, out := runCommand(t, "serve", "--log-format", "xml")
	if code != 1 || !strings.Contains(out, "entity-overrides") || !strings.Contains(out, "log-format") {
		t.Fatalf("exit %d, want both problems reported:\n%s", code, out)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
