package forwardauth_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"text/template"
	"time"
)

// nginxConf puts nginx in front of a backend with auth_request asking
// intentpdp's forward-auth endpoint, with the headers of one of the
// nginxHeaders variants, the first of which is examples/nginx/nginx.conf's.
var nginxConf = template.Must(template.New("nginx").Parse(`
daemon off;
master_process off;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  server {
    listen {{.Listen}};
    location = /_intentpdp {
      internal;
      proxy_pass http://{{.PDP}}/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
{{.Auth}}
      proxy_set_header X-Real-IP $remote_addr;
    }
    location / {
      auth_request /_intentpdp;
      auth_request_set $decision_id $upstream_http_x_intentpdp_decision_id;
      proxy_set_header X-Intentpdp-Decision-Id $decision_id;
{{.Upstream}}
      proxy_pass http://{{.Backend}};
    }
  }
}
`))

// nginxHeaders are ways to describe the original request to intentpdp.
type nginxHeaders struct {
	name           string
	auth, upstream string // header lines of the subrequest and of the proxied request
}

var (
	// exampleHeaders is what examples/nginx/nginx.conf sets: X-Forwarded-*
	// for intentpdp, the client's X-Original-* cleared on both requests.
	exampleHeaders = nginxHeaders{
		name: "example",
		auth: `
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Original-Method "";
      proxy_set_header X-Original-URI "";
      proxy_set_header X-Original-Url "";
      proxy_set_header X-Rewrite-Url "";
      proxy_set_header X-Original-Host "";`,
		upstream: `
      proxy_set_header X-Original-Method "";
      proxy_set_header X-Original-URI "";
      proxy_set_header X-Original-Url "";
      proxy_set_header X-Rewrite-Url "";
      proxy_set_header X-Original-Host "";`,
	}
	// uncleared sets the configured headers but passes the client's
	// others along.
	unclearedHeaders = nginxHeaders{
		name: "X-Forwarded-* not clearing X-Original-*",
		auth: `
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Host $host;`,
	}
	// originalSet sets X-Original-* for a PDP configured to read them,
	// passing the client's X-Forwarded-* along.
	originalSet = nginxHeaders{
		name: "X-Original-*",
		auth: `
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Host $host;`,
	}
)

// findNginx returns the nginx binary that scripts/install-nginx.sh
// installs. Without it the test fails under CI and is skipped elsewhere.
func findNginx(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx is not installed; scripts/install-nginx.sh installs it")
	}
	t.Skip("nginx is not installed; run scripts/install-nginx.sh")
	return ""
}

// freeAddr reserves a loopback port for nginx, which cannot report the
// port it bound.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// startNginx runs nginx in the foreground and waits, within a bound, until
// it answers.
func startNginx(t *testing.T, bin, pdp, backend string, headers nginxHeaders) string {
	t.Helper()
	dir := t.TempDir()
	listen := freeAddr(t)
	var conf bytes.Buffer
	vars := map[string]string{"Dir": dir, "Listen": listen, "PDP": pdp, "Backend": backend, "Auth": headers.auth, "Upstream": headers.upstream}
	if err := nginxConf.Execute(&conf, vars); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath}
	if out, err := exec.Command(bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if conn, err := net.Dial("tcp", listen); err == nil {
			_ = conn.Close()
			return "http://" + listen
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s%s", err, stderr.String(), log)
		case <-ctx.Done():
			t.Fatal("nginx did not start listening")
		case <-tick.C:
		}
	}
}

// TestNginxAuthRequest runs a real nginx with auth_request in front of a
// backend: allowed requests reach the backend with the decision id; denied
// ones and, once the PDP is down, every request stop at nginx.
func TestNginxAuthRequest(t *testing.T) {
	bin := findNginx(t)
	var hits atomic.Int64
	var lastDecision atomic.Value
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		lastDecision.Store(r.Header.Get("X-Intentpdp-Decision-Id"))
		fmt.Fprintln(w, "backend reached")
	}))
	t.Cleanup(backend.Close)
	pdp := startPDP(t, true)
	front := startNginx(t, bin, host(t, pdp.URL), host(t, backend.URL), exampleHeaders)

	get := func(agent string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, front+"/repos/payments-api/issues?state=open", nil)
		if err != nil {
			t.Fatal(err)
		}
		if agent != "" {
			req.Header.Set("X-Agent-Id", agent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		name      string
		agent     string
		want      int
		reachable bool
	}{
		{"allow", "code-reviewer", http.StatusOK, true},
		{"deny", "intern-bot", http.StatusForbidden, false},
		{"no identity", "", http.StatusUnauthorized, false},
	}
	for _, s := range steps {
		before := hits.Load()
		if got := get(s.agent); got != s.want {
			t.Errorf("%s: nginx answered %d, want %d", s.name, got, s.want)
		}
		if reached := hits.Load() > before; reached != s.reachable {
			t.Errorf("%s: backend reached: %v, want %v", s.name, reached, s.reachable)
		}
	}
	if id, _ := lastDecision.Load().(string); id == "" {
		t.Error("the backend did not receive the decision id")
	}

	pdp.Close()
	before := hits.Load()
	if got := get("code-reviewer"); got != http.StatusInternalServerError && got != http.StatusForbidden {
		t.Errorf("PDP down: nginx answered %d, want 500 or 403", got)
	}
	if hits.Load() != before {
		t.Error("PDP down: the backend was reached")
	}
}

// readsAllButSecrets lets code-reviewer read every file of payments-api
// except secrets.env: a deny list, so that a path naming secrets.env in
// any other spelling would be allowed if it were decided as written.
const readsAllButSecrets = `
@id("reviewer-reads-all-but-secrets")
permit (principal == Agent::"code-reviewer", action == Action::"read_file", resource is Document)
unless { resource == Document::"payments-api/secrets.env" };
`

// recorder is a backend that records what reaches it.
type recorder struct {
	hits    atomic.Int64
	leaked  atomic.Int64 // requests carrying a client's X-Original-* header
	backend *httptest.Server
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	r.backend = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		for _, h := range []string{"X-Original-Method", "X-Original-Uri", "X-Original-Url", "X-Rewrite-Url"} {
			if req.Header.Get(h) != "" {
				r.leaked.Add(1)
			}
		}
		fmt.Fprintln(w, "backend reached")
	}))
	t.Cleanup(r.backend.Close)
	return r
}

// rawRequest sends method and target exactly as given (no client-side
// cleaning or re-escaping) with the headers, and returns the status.
func rawRequest(t *testing.T, front, method, target string, headers ...string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: api.example.org\r\nConnection: close\r\n", method, target)
	for i := 0; i < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestNginxClientCannotChooseTheDecidedRequest: through a real nginx, a
// client's own X-Forwarded-* or X-Original-* headers, describing a request
// that would be allowed, never get the request it really sent decided in
// their place. Whichever set nginx sets and intentpdp reads, a forged
// header is either overwritten or cleared by nginx (the request is decided
// as sent) or reaches intentpdp and is refused with 400; the backend is
// never reached.
func TestNginxClientCannotChooseTheDecidedRequest(t *testing.T) {
	bin := findNginx(t)
	const readme, secrets = "/repos/payments-api/contents/README.md", "/repos/payments-api/contents/secrets.env"
	var forwardedAnswer, originalAnswer atomic.Int64
	forwarded := startPDPWith(t, pdpSetup{activate: true, policies: readsAllButSecrets, answered: &forwardedAnswer})
	original := startPDPWith(t, pdpSetup{activate: true, policies: readsAllButSecrets, forwardAuth: originalHeaders, answered: &originalAnswer})
	type attack struct {
		name    string
		method  string
		target  string
		headers []string
	}
	attacks := []attack{
		{"X-Forwarded-Uri names an allowed file", "GET", secrets, []string{"X-Forwarded-Uri", readme}},
		{"X-Original-URI names an allowed file", "GET", secrets, []string{"X-Original-URI", readme}},
		{"X-Original-Url names an allowed file", "GET", secrets, []string{"X-Original-Url", readme}},
		{"DELETE with X-Forwarded-Method GET", "DELETE", readme, []string{"X-Forwarded-Method", "GET"}},
		{"DELETE with X-Original-Method GET", "DELETE", readme, []string{"X-Original-Method", "GET"}},
		{"both sets forged", "DELETE", secrets, []string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", readme, "X-Original-Method", "GET", "X-Original-URI", readme}},
		{"method override", "GET", readme, []string{"X-HTTP-Method-Override", "DELETE"}},
	}
	// nginx passes on 401 and 403 and turns every other answer of the
	// PDP (400 included) into 500; what the PDP answered is recorded.
	for _, v := range []struct {
		headers  nginxHeaders
		pdp      *httptest.Server
		answered *atomic.Int64
	}{{exampleHeaders, forwarded, &forwardedAnswer}, {unclearedHeaders, forwarded, &forwardedAnswer}, {originalSet, original, &originalAnswer}} {
		t.Run(v.headers.name, func(t *testing.T) {
			rec := newRecorder(t)
			front := startNginx(t, bin, host(t, v.pdp.URL), host(t, rec.backend.URL), v.headers)
			for _, a := range attacks {
				before := rec.hits.Load()
				v.answered.Store(0)
				got := rawRequest(t, front, a.method, a.target, append([]string{"X-Agent-Id", "deployer"}, a.headers...)...)
				pdp := v.answered.Load()
				if pdp != http.StatusForbidden && pdp != http.StatusBadRequest {
					t.Errorf("%s: intentpdp answered %d, want 403 (decided as sent) or 400 (refused)", a.name, pdp)
				}
				if got != http.StatusForbidden && got != http.StatusInternalServerError {
					t.Errorf("%s: nginx answered %d, want 403 or 500", a.name, got)
				}
				if rec.hits.Load() != before {
					t.Errorf("%s: the backend was reached", a.name)
				}
			}
			// The same forgeries on a request that is allowed as sent
			// change nothing either, and none reaches the backend.
			before := rec.hits.Load()
			got := rawRequest(t, front, "GET", readme, "X-Agent-Id", "deployer")
			if got != http.StatusOK || rec.hits.Load() != before+1 {
				t.Fatalf("allowed request: nginx answered %d, backend reached %d times", got, rec.hits.Load()-before)
			}
			if v.headers.name == exampleHeaders.name {
				got := rawRequest(t, front, "GET", readme, "X-Agent-Id", "deployer", "X-Original-URI", secrets, "X-Rewrite-Url", secrets)
				if got != http.StatusOK || rec.leaked.Load() != 0 {
					t.Errorf("example: allowed request with forged X-Original-*: %d, backend saw them %d times", got, rec.leaked.Load())
				}
			}
		})
	}
}

// TestNginxNonCanonicalPaths: paths that nginx or the backend would serve
// as secrets.env, which code-reviewer may not read, are refused with 400
// and never reach the backend; the canonical spelling is denied by policy
// and another file is allowed.
func TestNginxNonCanonicalPaths(t *testing.T) {
	bin := findNginx(t)
	var answered atomic.Int64
	pdp := startPDPWith(t, pdpSetup{activate: true, policies: readsAllButSecrets, answered: &answered})
	rec := newRecorder(t)
	front := startNginx(t, bin, host(t, pdp.URL), host(t, rec.backend.URL), exampleHeaders)
	for _, tt := range []struct {
		target string
		want   int
	}{
		{"/repos/payments-api/contents/x/%2e%2e/secrets.env", http.StatusBadRequest},
		{"/repos/payments-api/contents/x/%2E%2e/secrets.env", http.StatusBadRequest},
		{"/repos/payments-api/contents//secrets.env", http.StatusBadRequest},
		{"/repos/payments-api/contents/x%2F..%2Fsecrets.env", http.StatusBadRequest},
		{"/repos/payments-api/contents/x/../secrets.env", http.StatusBadRequest},
		{"/repos/payments-api/contents/./secrets.env", http.StatusBadRequest},
		{"/repos/payments-api/contents/secrets.env/", http.StatusBadRequest},
		{"/repos/payments-api/contents/secrets.env;.md", http.StatusBadRequest},
		{"/repos/payments-api/contents/%252e%252e/secrets.env", http.StatusBadRequest},
		{"/repos/payments-api/contents/secrets.env", http.StatusForbidden},
	} {
		before := rec.hits.Load()
		answered.Store(0)
		got := rawRequest(t, front, "GET", tt.target, "X-Agent-Id", "code-reviewer")
		if pdp := answered.Load(); pdp != int64(tt.want) {
			t.Errorf("%s: intentpdp answered %d, want %d", tt.target, pdp, tt.want)
		}
		if got != http.StatusForbidden && got != http.StatusInternalServerError {
			t.Errorf("%s: nginx answered %d, want 403 or 500", tt.target, got)
		}
		if rec.hits.Load() != before {
			t.Errorf("%s: the backend was reached", tt.target)
		}
	}
	before := rec.hits.Load()
	if got := rawRequest(t, front, "GET", "/repos/payments-api/contents/docs/a%20b.md", "X-Agent-Id", "code-reviewer"); got != http.StatusOK || rec.hits.Load() != before+1 {
		t.Errorf("canonical path: nginx answered %d, backend reached %d times, want 200 once", got, rec.hits.Load()-before)
	}
}

func host(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestNginxExampleSetsTheTestedHeaders keeps examples/nginx/nginx.conf and
// the configuration the nginx tests run in step: every header line of
// exampleHeaders is in the example.
func TestNginxExampleSetsTheTestedHeaders(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../examples/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	for _, line := range strings.Split(exampleHeaders.auth+exampleHeaders.upstream, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.Contains(example, line) {
			t.Errorf("examples/nginx/nginx.conf lacks %q", line)
		}
	}
	if !strings.Contains(example, "proxy_pass http://127.0.0.1:8080;") {
		t.Error("examples/nginx/nginx.conf proxies with a URI part; the backend would not get $request_uri unchanged")
	}
}
