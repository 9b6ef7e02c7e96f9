// Command roll measures a rolling restart behind a real load balancer: it
// runs three `intentpdp serve` replicas behind HAProxy (gRPC over HTTP/2
// cleartext to the backends, health checked with GET /healthz), drives
// Authorize calls through HAProxy with a closed-loop load, restarts the
// replicas one at a time with SIGTERM, and reports the calls sent, the
// calls failed and the latency percentiles during the roll.
//
//	go build -o /tmp/intentpdp ./cmd/intentpdp
//	./scripts/install-haproxy.sh
//	go run ./bench/cmd/roll -intentpdp /tmp/intentpdp
//
// Everything listens on loopback. It is a script to run by hand (it takes
// tens of seconds), not a test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "roll:", err)
		os.Exit(1)
	}
}

type replica struct {
	name, grpcAddr, httpAddr string
	cmd                      *exec.Cmd
	exited                   chan error
}

func run() error {
	bin := flag.String("intentpdp", "intentpdp", "intentpdp binary")
	haproxy := flag.String("haproxy", "/usr/sbin/haproxy", "HAProxy binary")
	workers := flag.Int("concurrency", 32, "calls in flight")
	delay := flag.Duration("shutdown-delay", time.Second, "--shutdown-delay of the replicas")
	inter := flag.Duration("check-interval", 200*time.Millisecond, "HAProxy health-check interval (fall 2, rise 2)")
	settle := flag.Duration("settle", 2*time.Second, "load before the first restart and after each replica is back")
	flag.Parse()

	dir, err := os.MkdirTemp("", "intentpdp-roll-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	replicas := make([]*replica, 3)
	for i := range replicas {
		replicas[i] = &replica{name: fmt.Sprintf("r%d", i+1), grpcAddr: freeAddr(), httpAddr: freeAddr()}
		if err := replicas[i].start(*bin, *delay); err != nil {
			return err
		}
		defer replicas[i].kill()
	}
	front := freeAddr()
	conf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(conf, []byte(haproxyConfig(front, replicas, *inter)), 0o600); err != nil {
		return err
	}
	hp := exec.Command(*haproxy, "-db", "-f", conf)
	hp.Stdout, hp.Stderr = os.Stderr, os.Stderr
	if err := hp.Start(); err != nil {
		return err
	}
	defer func() { _ = hp.Process.Kill(); _ = hp.Wait() }()

	conn, err := grpc.NewClient(front, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pdpv1.NewAuthorizationServiceClient(conn)
	if err := until(10*time.Second, func() bool {
		_, err := client.Authorize(context.Background(), request())
		return err == nil
	}); err != nil {
		return fmt.Errorf("HAProxy does not forward: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	codes := map[string]int{}
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil {
				start := time.Now()
				cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
				r, err := client.Authorize(cctx, request())
				ccancel()
				sent.Add(1)
				mine = append(mine, time.Since(start))
				if err != nil || r.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
					failed.Add(1)
					mu.Lock()
					codes[status.Code(err).String()+": "+status.Convert(err).Message()]++
					mu.Unlock()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	began := time.Now()
	time.Sleep(*settle) // let the load reach a steady state: measurement, not synchronisation
	for _, r := range replicas {
		t0 := time.Now()
		if err := r.restart(*bin, *delay); err != nil {
			cancel()
			return err
		}
		fmt.Printf("%s restarted in %v\n", r.name, time.Since(t0).Round(time.Millisecond))
		time.Sleep(*settle) // HAProxy's rise count, then load on all three again
	}
	cancel()
	wg.Wait()
	elapsed := time.Since(began)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("roll of %d replicas behind HAProxy, %d calls in flight, shutdown delay %v, check interval %v\n",
		len(replicas), *workers, *delay, *inter)
	fmt.Printf("sent %d, failed %d, in %v (%.0f/s); p50 %v, p99 %v, max %v\n",
		sent.Load(), failed.Load(), elapsed.Round(time.Millisecond), float64(sent.Load())/elapsed.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	for c, n := range codes {
		fmt.Printf("  %d × %s\n", n, c)
	}
	if failed.Load() > 0 {
		return errors.New("calls failed during the roll")
	}
	return nil
}

func request() *pdpv1.AuthorizeRequest {
	return &pdpv1.AuthorizeRequest{
		Principal: &pdpv1.EntityRef{Type: "Agent", Id: "code-reviewer"},
		Intent:    &pdpv1.Intent{Action: proto.String("search_code"), Purpose: "code-review"},
		Resource:  &pdpv1.EntityRef{Type: "Repository", Id: "payments-api"},
	}
}

// haproxyConfig balances gRPC calls (HTTP/2 streams) over the replicas,
// checking each replica's GET /healthz on its HTTP listener.
func haproxyConfig(front string, rs []*replica, inter time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend pdp
  bind %s proto h2
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  retry-on conn-failure empty-response
`, front)
	for _, r := range rs {
		_, port, _ := net.SplitHostPort(r.httpAddr)
		fmt.Fprintf(&b, "  server %s %s proto h2 check port %s check-proto h1 inter %dms fall 2 rise 2\n", r.name, r.grpcAddr, port, inter.Milliseconds())
	}
	return b.String()
}

func (r *replica) start(bin string, delay time.Duration) error {
	r.cmd = exec.Command(bin, "serve", "--listen", r.grpcAddr, "--http-listen", r.httpAddr,
		"--admin-listen", "", "--metrics-listen", "", "--shutdown-delay", delay.String(), "--log-level", "warn")
	r.cmd.Stderr = os.Stderr
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.exited = make(chan error, 1)
	go func() { r.exited <- r.cmd.Wait() }()
	return until(30*time.Second, func() bool {
		resp, err := http.Get("http://" + r.httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// restart stops the replica with SIGTERM, waits for it to exit, and starts
// it again on the same addresses.
func (r *replica) restart(bin string, delay time.Duration) error {
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-r.exited:
		if err != nil {
			return fmt.Errorf("%s exited with %v", r.name, err)
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not exit", r.name)
	}
	return r.start(bin, delay)
}

func (r *replica) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
	}
}

func until(bound time.Duration, cond func() bool) error {
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
