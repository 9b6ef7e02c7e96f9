package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/intentpdp/intentpdp/examples"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// logBuffer collects a server's log for the test to read while it runs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pollUntil polls cond until it holds or a generous bound passes.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reloadPDP is a running `intentpdp serve` with clients for both listeners.
type reloadPDP struct {
	authz pdpv1.AuthorizationServiceClient
	admin pdpv1.PolicyAdminServiceClient
	log   *logBuffer
}

var listenAddrRE = regexp.MustCompile(`msg="serving (gRPC|admin API)" addr=(\S+)`)

// serveForReload runs `intentpdp serve` in process on loopback ports chosen by
// the kernel, learning them from its log, and stops it at cleanup.
func serveForReload(t *testing.T, args ...string) *reloadPDP {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := &logBuffer{}
	done := make(chan int, 1)
	args = slices.Concat([]string{"serve"}, loopbackFlags, args)
	go func() { done <- run(ctx, args, log, log) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, log)
		}
	})
	addrs := map[string]string{}
	pollUntil(t, "both listeners", func() bool {
		for _, m := range listenAddrRE.FindAllStringSubmatch(log.String(), -1) {
			addrs[m[1]] = m[2]
		}
		return len(addrs) == 2
	})
	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	return &reloadPDP{
		authz: pdpv1.NewAuthorizationServiceClient(dial(addrs["gRPC"])),
		admin: pdpv1.NewPolicyAdminServiceClient(dial(addrs["admin API"])),
		log:   log,
	}
}

func (p *reloadPDP) status(t *testing.T) *pdpv1.PolicyStatus {
	t.Helper()
	resp, err := p.admin.GetStatus(t.Context(), &pdpv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetStatus()
}

// searchCode asks whether code-reviewer may search the payments repository;
// the example bundle allows it, noSearchPolicy forbids it.
func (p *reloadPDP) searchCode(t *testing.T) *pdpv1.AuthorizeResponse {
	t.Helper()
	resp, err := p.authz.Authorize(t.Context(), &pdpv1.AuthorizeRequest{
		Principal: &pdpv1.EntityRef{Type: "Agent", Id: "code-reviewer"},
		Intent:    &pdpv1.Intent{Action: proto.String("search_code"), Purpose: "code-review"},
		Resource:  &pdpv1.EntityRef{Type: "Repository", Id: "payments-api"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

const noSearchPolicy = `@id("no-search") forbid (principal, action == Action::"search_code", resource);`

// copyExampleBundle writes the example bundle into a new directory.
func copyExampleBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(examples.Agents(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(examples.Agents(), p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o700); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, p), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeBundleFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func runIntentpdp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out logBuffer
	if code := run(t.Context(), args, &out, &out); code != 0 {
		return out.String(), &cmdError{code: code, out: out.String()}
	}
	return out.String(), nil
}

type cmdError struct {
	code int
	out  string
}

func (e *cmdError) Error() string { return e.out }

// TestServeReloadsDirectoryOnSIGHUP serves a directory without watching,
// edits it, and reloads with SIGHUP and with the admin Reload RPC. It
// sends a real signal to the test process, so it does not run in parallel.
func TestServeReloadsDirectoryOnSIGHUP(t *testing.T) {
	dir := copyExampleBundle(t)
	p := serveForReload(t, "--bundle", dir, "--watch=false")
	if r := p.searchCode(t); r.GetDecision() != pdpv1.Decision_DECISION_ALLOW || r.GetPolicyRevision() != "agents-example-v1" {
		t.Fatalf("before the edit: %v", r)
	}

	writeBundleFile(t, filepath.Join(dir, "no-search.cedar"), noSearchPolicy)
	writeBundleFile(t, filepath.Join(dir, "manifest.json"), `{"revision": "agents-example-v2"}`)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "SIGHUP to activate v2", func() bool { return p.status(t).GetActive().GetRevision() == "agents-example-v2" })
	if r := p.searchCode(t); r.GetDecision() != pdpv1.Decision_DECISION_DENY || r.GetPolicyRevision() != "agents-example-v2" {
		t.Fatalf("after the edit: %v", r)
	}

	// A broken edit, reloaded through the admin API, is refused with its
	// location; v2 keeps serving.
	writeBundleFile(t, filepath.Join(dir, "no-search.cedar"), "forbid (principal,\n  action == Action::\"nope\", resource);")
	resp, err := p.admin.Reload(t.Context(), &pdpv1.ReloadRequest{})
	if err != nil || resp.GetOutcome() != pdpv1.ReloadOutcome_RELOAD_OUTCOME_FAILED || !strings.Contains(resp.GetError(), "no-search.cedar") {
		t.Fatalf("broken reload: %v %v", resp, err)
	}
	if r := p.searchCode(t); r.GetPolicyRevision() != "agents-example-v2" {
		t.Fatalf("revision after a refused bundle: %v", r)
	}
}

// TestServePollsSignedArchive serves a signed archive with verification
// keys: a newer signed archive goes live, while an unsigned one and an
// older signed one are refused and only show in the status.
func TestServePollsSignedArchive(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	keyPrefix := filepath.Join(tmp, "signer")
	if out, err := runIntentpdp(t, "bundle", "keygen", "-o", keyPrefix); err != nil {
		t.Fatal(out)
	}
	dir := copyExampleBundle(t)
	archive := filepath.Join(tmp, "bundle.tar.gz")
	publish := func(args ...string) {
		t.Helper()
		next := filepath.Join(tmp, "next.tar.gz")
		if out, err := runIntentpdp(t, append([]string{"bundle", "build", dir, "-o", next}, args...)...); err != nil {
			t.Fatal(out)
		}
		if err := os.Rename(next, archive); err != nil {
			t.Fatal(err)
		}
	}
	publish("--sign", keyPrefix+".key", "--sequence", "5")
	if out, err := runIntentpdp(t, "bundle", "verify", "--verify-key", keyPrefix+".pub", archive); err != nil || !strings.Contains(out, "signature: verified") {
		t.Fatalf("verify: %s", out)
	}

	p := serveForReload(t, "--bundle-url", archive, "--verify-key", keyPrefix+".pub",
		"--poll-interval", "10ms", "--poll-max-backoff", "20ms")
	if st := p.status(t).GetActive(); st.GetSequence() != 5 || st.GetRevision() != "agents-example-v1" {
		t.Fatalf("initial status: %v", st)
	}

	writeBundleFile(t, filepath.Join(dir, "no-search.cedar"), noSearchPolicy)
	writeBundleFile(t, filepath.Join(dir, "manifest.json"), `{"revision": "agents-example-v2"}`)
	publish("--sign", keyPrefix+".key", "--sequence", "6")
	pollUntil(t, "the signed v2 to go live", func() bool { return p.searchCode(t).GetPolicyRevision() == "agents-example-v2" })
	if r := p.searchCode(t); r.GetDecision() != pdpv1.Decision_DECISION_DENY {
		t.Fatalf("v2 decision: %v", r)
	}

	writeBundleFile(t, filepath.Join(dir, "manifest.json"), `{"revision": "agents-example-v3"}`)
	publish("--sequence", "7")
	if out, err := runIntentpdp(t, "bundle", "verify", "--verify-key", keyPrefix+".pub", archive); err == nil {
		t.Fatalf("verify accepted an unsigned bundle: %s", out)
	}
	pollUntil(t, "the unsigned bundle to be refused", func() bool {
		return strings.Contains(p.status(t).GetLastAttempt().GetError(), "not signed")
	})

	publish("--sign", keyPrefix+".key", "--sequence", "4")
	pollUntil(t, "the older bundle to be refused", func() bool {
		return strings.Contains(p.status(t).GetLastAttempt().GetError(), "sequence 4 is lower than the active 6")
	})
	if r := p.searchCode(t); r.GetPolicyRevision() != "agents-example-v2" {
		t.Fatalf("revision after refused bundles: %v", r)
	}
}

// TestServeWatchesDirectory is the operator's view of hot reload: edit a
// policy file in the served directory, without touching the manifest, and
// decisions change under a new revision, in responses and in GetStatus.
func TestServeWatchesDirectory(t *testing.T) {
	t.Parallel()
	dir := copyExampleBundle(t)
	p := serveForReload(t, "--bundle", dir, "--watch-cooldown", "20ms")
	before := p.searchCode(t)
	if before.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
		t.Fatalf("before the edit: %v", before)
	}
	writeBundleFile(t, filepath.Join(dir, "no-search.cedar"), noSearchPolicy)
	var after *pdpv1.AuthorizeResponse
	pollUntil(t, "the edit to go live", func() bool {
		after = p.searchCode(t)
		return after.GetDecision() == pdpv1.Decision_DECISION_DENY
	})
	if after.GetPolicyRevision() == before.GetPolicyRevision() || p.status(t).GetActive().GetRevision() != after.GetPolicyRevision() {
		t.Fatalf("revision %q before, %q after, status %v", before.GetPolicyRevision(), after.GetPolicyRevision(), p.status(t))
	}
}

func TestReloadConfigValidation(t *testing.T) {
	t.Parallel()
	cfg := Config{Bundle: "dir", Reload: ReloadConfig{BundleURL: "https://x", PollInterval: time.Minute, PollMaxBackoff: time.Second}}
	cfg.SetDefaults()
	err := cfg.Validate()
	for _, want := range []string{"not both", "poll-max-backoff"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
