package forwardauth_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"text/template"
	"time"
)

// nginxConf puts nginx in front of a backend with auth_request asking
// intentpdp's forward-auth endpoint, as examples/nginx/nginx.conf does.
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
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Real-IP $remote_addr;
    }
    location / {
      auth_request /_intentpdp;
      auth_request_set $decision_id $upstream_http_x_intentpdp_decision_id;
      proxy_set_header X-Intentpdp-Decision-Id $decision_id;
      proxy_pass http://{{.Backend}};
    }
  }
}
`))

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
func startNginx(t *testing.T, bin, pdp, backend string) string {
	t.Helper()
	dir := t.TempDir()
	listen := freeAddr(t)
	var conf bytes.Buffer
	if err := nginxConf.Execute(&conf, map[string]string{"Dir": dir, "Listen": listen, "PDP": pdp, "Backend": backend}); err != nil {
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
	front := startNginx(t, bin, host(t, pdp.URL), host(t, backend.URL))

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

func host(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
