package bundlesrc_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

// replaceFile saves like an editor: write a hidden temporary file, then
// rename it over the target.
func replaceFile(t *testing.T, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestDirWatcherReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	replaceFile(t, dir, "manifest.json", `{"revision": "r1"}`)
	replaceFile(t, dir, "policy.cedar", `@id("p") permit (principal, action, resource);`)

	store := policystore.NewStore()
	r := bundlesrc.NewReloader(store, bundlesrc.NewDir(dir))
	if changed, err := r.Reload(bg); !changed || err != nil {
		t.Fatalf("initial load: %v %v", changed, err)
	}
	w, err := bundlesrc.NewDirWatcher(dir, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	done := make(chan struct{})
	go func() {
		w.Run(ctx, func() { _, _ = r.Reload(ctx) })
		close(done)
	}()

	// An editor's rename-and-replace of two files goes live.
	replaceFile(t, dir, "policy.cedar", `@id("p") forbid (principal, action, resource);`)
	replaceFile(t, dir, "manifest.json", `{"revision": "r2"}`)
	eventually(t, "r2 to go live", func() bool { return revision(t, store) == "r2" })
	snap, _ := store.Current()
	if d, err := snap.Decide(flipRequest(t)); err != nil || d.Allow {
		t.Fatalf("r2 decision: %+v %v", d, err)
	}

	// A broken policy is refused; r2 keeps serving and the status says why.
	replaceFile(t, dir, "policy.cedar", `@id("p") forbid (principal, action, resource`)
	eventually(t, "the broken bundle to be refused", func() bool {
		st := r.Status()
		return st.LastAttempt != nil && st.LastAttempt.Err != nil
	})
	if got := revision(t, store); got != "r2" {
		t.Fatalf("revision after a broken edit: %s", got)
	}

	// Files appearing one by one in a new tests/ directory are watched and
	// run: a failing case refuses the otherwise valid bundle.
	if err := os.Mkdir(filepath.Join(dir, "tests"), 0o700); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, dir, "tests/p.json", `[{"name": "denies", "principal": {"type": "Agent", "id": "a"},
		"action": {"type": "Action", "id": "read"}, "resource": {"type": "Doc", "id": "d"},
		"now": "2026-11-23T00:00:00Z", "expect": {"decision": "deny"}}]`)
	replaceFile(t, dir, "policy.cedar", `@id("p") permit (principal, action, resource);`)
	replaceFile(t, dir, "manifest.json", `{"revision": "r3"}`)
	eventually(t, "the failing case to refuse r3", func() bool {
		st := r.Status()
		return st.LastAttempt != nil && st.LastAttempt.Err != nil &&
			strings.Contains(st.LastAttempt.Err.Error(), `tests/p.json: case "denies": expected deny, got allow`)
	})
	if got := revision(t, store); got != "r2" {
		t.Fatalf("revision after a failing case: %s", got)
	}
	replaceFile(t, dir, "tests/p.json", `[]`)
	eventually(t, "r3 to go live", func() bool { return revision(t, store) == "r3" })

	cancel()
	<-done // Run returns once ctx ends
}
