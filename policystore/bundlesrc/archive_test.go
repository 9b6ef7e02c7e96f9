package bundlesrc_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

// bundleServer serves one archive with a strong ETag, honours
// If-None-Match, and can be told to fail.
type bundleServer struct {
	mu          sync.Mutex
	body        []byte
	status      int // 0 serves the body
	notModified atomic.Int64
}

func (s *bundleServer) publish(body []byte, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status = body, status
}

func (s *bundleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body, status := s.body, s.status
	s.mu.Unlock()
	if status != 0 {
		http.Error(w, "bundle store unavailable", status)
		return
	}
	etag := fmt.Sprintf(`"%x"`, sha256.Sum256(body))
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		s.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(body)
}

func signedArchive(t *testing.T, revision string, seq int64, key ed25519.PrivateKey) []byte {
	t.Helper()
	b := example(t, revision)
	if err := policystore.Seal(b, seq, key); err != nil {
		t.Fatal(err)
	}
	return tarGz(t, b)
}

func TestArchiveOverHTTPS(t *testing.T) {
	t.Parallel()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	srv := &bundleServer{}
	srv.publish(signedArchive(t, "r1", 1, key), 0)
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the CA-less fetch fails its handshake on purpose
	ts.StartTLS()
	defer ts.Close()

	// Without the server's CA the fetch fails: TLS is really checked.
	if _, err := mustArchive(t, ts.URL, nil).Fetch(bg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("fetch without the CA: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	fetcher, err := bundlesrc.Open(ts.URL+"/bundle.tar.gz", bundlesrc.Options{RootCAs: roots, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
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
		if st := r.Status(); (wantErr != nil) != (st.LastAttempt.Err != nil) {
			t.Fatalf("%s: status last attempt error %v", name, st.LastAttempt.Err)
		}
	}
	step("first fetch", true, nil, "r1")
	step("unchanged", false, nil, "r1")
	if srv.notModified.Load() != 1 {
		t.Fatalf("server answered %d 304s, want 1", srv.notModified.Load())
	}

	srv.publish(nil, http.StatusServiceUnavailable)
	step("server failing", false, errAny, "r1")
	if st := r.Status(); !strings.Contains(st.LastAttempt.Err.Error(), "503") {
		t.Fatalf("status: %v", st.LastAttempt.Err)
	}

	tampered := example(t, "r2")
	if err := policystore.Seal(tampered, 2, key); err != nil {
		t.Fatal(err)
	}
	tampered.Files["policies.cedar"] = append(tampered.Files["policies.cedar"], "\npermit (principal, action, resource);"...)
	srv.publish(tarGz(t, tampered), 0)
	step("tampered", false, policystore.ErrBadSignature, "r1")

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	srv.publish(signedArchive(t, "r2", 2, otherKey), 0)
	step("wrong key", false, policystore.ErrBadSignature, "r1")

	srv.publish(signedArchive(t, "r0", 0, key), 0)
	step("rollback", false, policystore.ErrRollback, "r1")

	srv.publish(signedArchive(t, "r3", 3, key), 0)
	step("new signed bundle", true, nil, "r3")
}

// errAny matches any non-nil error in step.
var errAny = errors.New("any error")

func mustArchive(t *testing.T, loc string, client *http.Client, opts ...bundlesrc.ArchiveOption) *bundlesrc.Archive {
	t.Helper()
	if client != nil {
		opts = append(opts, bundlesrc.WithHTTPClient(client))
	}
	a, err := bundlesrc.NewArchive(loc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestArchiveSizeLimit(t *testing.T) {
	t.Parallel()
	srv := &bundleServer{}
	body := tarGz(t, example(t, "r1"))
	srv.publish(body, 0)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	a := mustArchive(t, ts.URL, nil, bundlesrc.WithMaxBytes(int64(len(body)-1)))
	if _, err := a.Fetch(bg); !errors.Is(err, bundlesrc.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestLocalArchiveAndPolling(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	publish := func(rev string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, tarGz(t, example(t, rev)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	publish("r1")
	store := policystore.NewStore()
	r := bundlesrc.NewReloader(store, mustArchive(t, path, nil))
	if changed, err := r.Reload(bg); !changed || err != nil {
		t.Fatalf("first load: %v %v", changed, err)
	}
	if changed, err := r.Reload(bg); changed || err != nil {
		t.Fatalf("unchanged archive reloaded: %v %v", changed, err)
	}
	ctx, cancel := contextWithCancel(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Poll(ctx, bundlesrc.PollConfig{Interval: 5 * time.Millisecond, Jitter: 0.5, MaxBackoff: 20 * time.Millisecond})
	}()
	publish("r2")
	eventually(t, "the poller to activate r2", func() bool { return revision(t, store) == "r2" })
	cancel()
	<-done
}
