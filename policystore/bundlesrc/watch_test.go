package bundlesrc_test

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	if d, err := snap.Decide(context.Background(), flipRequest(t)); err != nil || d.Allow {
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

// writeBundleDir writes a one-policy bundle with the given revision into a
// new directory under parent and returns its path.
func writeBundleDir(t *testing.T, parent, name, revision, effect string) string {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, dir, "manifest.json", `{"revision": "`+revision+`"}`)
	replaceFile(t, dir, "policy.cedar", `@id("p") `+effect+` (principal, action, resource);`)
	return dir
}

// swapSymlink points link at target in one rename, as `ln -sfn` followed
// by `mv -T` does and as Kubernetes updates a ConfigMap mount.
func swapSymlink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// TestDirWatcherFollowsSwappedSymlink publishes bundle versions the atomic
// way: each version is a complete directory and a symlink is switched to it
// in one rename. Every switch goes live, and every snapshot that goes live
// is one version whole: its revision and its decision agree.
func TestDirWatcherFollowsSwappedSymlink(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	versions := map[bool]string{
		true:  writeBundleDir(t, parent, "v-allow", "allow-rev", "permit"),
		false: writeBundleDir(t, parent, "v-deny", "deny-rev", "forbid"),
	}
	link := filepath.Join(parent, "current")
	swapSymlink(t, versions[true], link)

	var mixed []string
	store := policystore.NewStore(policystore.WithActivationObserver(func(res policystore.ActivationResult) {
		if res.Snapshot == nil {
			return
		}
		d, err := res.Snapshot.Decide(context.Background(), flipRequest(t))
		if err != nil || d.Allow != (res.Revision == "allow-rev") {
			mixed = append(mixed, res.Revision) // observers run serialised
		}
	}))
	r := bundlesrc.NewReloader(store, bundlesrc.NewDir(link))
	if _, err := r.Reload(bg); err != nil {
		t.Fatal(err)
	}
	w, err := bundlesrc.NewDirWatcher(link, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	done := make(chan struct{})
	go func() {
		w.Run(ctx, func() { _, _ = r.Reload(ctx) })
		close(done)
	}()
	for i := range 20 {
		allow := i%2 == 1
		swapSymlink(t, versions[allow], link)
		want := map[bool]string{true: "allow-rev", false: "deny-rev"}[allow]
		eventually(t, want+" to go live after switch "+strconv.Itoa(i), func() bool { return revision(t, store) == want })
	}
	cancel()
	<-done
	if len(mixed) > 0 {
		t.Fatalf("snapshots whose decision does not match their revision went live: %v", mixed)
	}
}

// TestLoadDirFollowsConfigMapLinks reads a directory laid out as a
// Kubernetes ConfigMap mount: every file a symlink into a hidden ..data
// directory, itself a symlink to the current version.
func TestLoadDirFollowsConfigMapLinks(t *testing.T) {
	t.Parallel()
	mount := t.TempDir()
	writeBundleDir(t, mount, "..2026_12_02_10_00_00.1", "configmap-rev", "permit")
	swapSymlink(t, "..2026_12_02_10_00_00.1", filepath.Join(mount, "..data"))
	for _, name := range []string{"manifest.json", "policy.cedar"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(mount, name)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := policystore.LoadDir(mount)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(b.Files)); !slices.Equal(got, []string{"manifest.json", "policy.cedar"}) {
		t.Fatalf("files read: %v (the hidden version directories must be skipped)", got)
	}
	store := policystore.NewStore()
	if _, err := store.Activate(bg, b); err != nil {
		t.Fatal(err)
	}
	if got := revision(t, store); got != "configmap-rev" {
		t.Fatalf("revision %q", got)
	}
}
