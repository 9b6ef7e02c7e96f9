package bundlesrc_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/internal/testutil/ociregistry"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

// TestOCIRegistry pushes bundles to a real registry and reloads them
// through Open's oci:// source: the manifest digest detects changes, and a
// bundle from a registry is checked (signature, anti-rollback) exactly as
// an archive is, since it goes through the same Store.Activate.
func TestOCIRegistry(t *testing.T) {
	t.Parallel()
	reg := ociregistry.Start(t, ociregistry.Options{})
	opts := bundlesrc.Options{PlainHTTP: true, Timeout: 10 * time.Second, RegistryConfig: emptyRegistryConfig(t)}
	loc := "oci://" + reg.Host + "/policies/agents:prod"
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	push := func(archive []byte) string {
		t.Helper()
		d, err := bundlesrc.Push(bg, loc, archive, map[string]string{bundlesrc.AnnotationRevision: "x"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := push(signedArchive(t, "r1", 1, key))
	fetcher, err := bundlesrc.Open(loc, opts)
	if err != nil {
		t.Fatal(err)
	}
	if fetcher.Source() != loc {
		t.Fatalf("source %q", fetcher.Source())
	}
	store := policystore.NewStore(policystore.WithVerificationKeys(pub))
	r := bundlesrc.NewReloader(store, fetcher)
	step := func(name string, wantChanged bool, wantErr error, wantRev string) {
		t.Helper()
		changed, err := r.Reload(bg)
		errOK := errors.Is(err, wantErr) || (wantErr == errAny && err != nil)
		if changed != wantChanged || !errOK {
			t.Fatalf("%s: Reload = (%v, %v), want (%v, %v)", name, changed, err, wantChanged, wantErr)
		}
		if got := revision(t, store); got != wantRev {
			t.Fatalf("%s: active revision %q, want %q", name, got, wantRev)
		}
	}
	step("first fetch", true, nil, "r1")
	step("unchanged digest", false, nil, "r1")

	tampered := example(t, "r2")
	if err := policystore.Seal(tampered, 2, key); err != nil {
		t.Fatal(err)
	}
	tampered.Files["policies.cedar"] = append(tampered.Files["policies.cedar"], "\npermit (principal, action, resource);"...)
	push(tarGz(t, tampered))
	step("tampered", false, policystore.ErrBadSignature, "r1")

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	push(signedArchive(t, "r2", 2, otherKey))
	step("wrong key", false, policystore.ErrBadSignature, "r1")

	push(signedArchive(t, "r0", 0, key))
	step("rollback", false, policystore.ErrRollback, "r1")

	push(signedArchive(t, "r3", 3, key))
	step("new signed bundle", true, nil, "r3")

	// A digest reference pins a revision: it is what was pushed then.
	pinned, err := bundlesrc.Open("oci://"+reg.Host+"/policies/agents@"+first, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pinned.Fetch(bg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b.Files["manifest.json"]), `"r1"`) {
		t.Fatalf("pinned digest fetched %s", b.Files["manifest.json"])
	}
	if _, err := pinned.Fetch(bg); !errors.Is(err, bundlesrc.ErrNotModified) {
		t.Fatalf("second fetch of a digest: %v, want ErrNotModified", err)
	}

	// A missing tag is an error, not an empty bundle.
	missing, _ := bundlesrc.Open("oci://"+reg.Host+"/policies/agents:nope", opts)
	if _, err := missing.Fetch(bg); err == nil {
		t.Fatal("fetch of a missing tag succeeded")
	}
}

// TestOCIRegistryAuthTLS reaches a registry behind htpasswd auth and TLS:
// without the CA the handshake fails, without credentials the registry
// refuses, with both the bundle is fetched.
func TestOCIRegistryAuthTLS(t *testing.T) {
	t.Parallel()
	reg := ociregistry.Start(t, ociregistry.Options{Auth: true, TLS: true})
	caPEM, err := os.ReadFile(reg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	loc := "oci://" + reg.Host + "/policies/agents:v1"
	good := bundlesrc.Options{RootCAs: roots, RegistryConfig: reg.ConfigFile, Timeout: 10 * time.Second}

	noCA := good
	noCA.RootCAs = nil
	if _, err := bundlesrc.Push(bg, loc, tarGz(t, example(t, "r1")), nil, noCA); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("push without the CA: %v", err)
	}
	anon := good
	anon.RegistryConfig = emptyRegistryConfig(t)
	if _, err := bundlesrc.Push(bg, loc, tarGz(t, example(t, "r1")), nil, anon); err == nil || !strings.Contains(err.Error(), "credential") {
		t.Fatalf("push without credentials: %v", err)
	}
	plain := good
	plain.PlainHTTP = true
	if _, err := bundlesrc.Push(bg, loc, tarGz(t, example(t, "r1")), nil, plain); err == nil {
		t.Fatal("plain HTTP push to a TLS registry succeeded")
	}
	if _, err := bundlesrc.Push(bg, loc, tarGz(t, example(t, "r1")), nil, good); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]bundlesrc.Options{"no CA": noCA, "anonymous": anon} {
		f, err := bundlesrc.Open(loc, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Fetch(bg); err == nil {
			t.Fatalf("fetch %s succeeded", name)
		}
	}
	f, err := bundlesrc.Open(loc, good)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Fetch(bg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b.Files["manifest.json"]), `"r1"`) {
		t.Fatalf("fetched %s", b.Files["manifest.json"])
	}
}

// emptyRegistryConfig is a docker config without credentials, so that the
// test never reads the user's ~/.docker/config.json.
func emptyRegistryConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseOCI(t *testing.T) {
	t.Parallel()
	for loc, ok := range map[string]bool{
		"oci://127.0.0.1:5000/a/b:tag":                          true,
		"oci://reg.example/a@sha256:" + strings.Repeat("0", 64): true,
		"oci://reg.example/a":                                   false, // neither tag nor digest
		"oci://reg.example":                                     false,
		"oci://reg.example/A:tag":                               false, // repository names are lowercase
	} {
		if _, err := bundlesrc.ParseOCI(loc); (err == nil) != ok {
			t.Errorf("ParseOCI(%q) = %v, want ok=%v", loc, err, ok)
		}
	}
}
