package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
)

// buildBinary compiles intentpdp once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "intentpdp-e2e")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "intentpdp")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// process is a running `intentpdp serve`.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs *strings.Builder
	mu   *sync.Mutex
	done chan error
}

// loopbackFlags puts every listener of `intentpdp serve` on a loopback port
// the kernel chooses, so tests running side by side never collide.
var loopbackFlags = []string{
	"--listen", "127.0.0.1:0",
	"--admin-listen", "127.0.0.1:0",
	"--http-listen", "127.0.0.1:0",
	"--metrics-listen", "127.0.0.1:0",
}

var servingLine = regexp.MustCompile(`msg="serving gRPC" addr=(\S+)`)

// startServe runs the real binary on a free loopback port and waits for it
// to log the address it serves on.
func startServe(t *testing.T, args ...string) *process {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	cmd := exec.Command(bin, slices.Concat([]string{"serve"}, loopbackFlags, args)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	select {
	case p.addr = <-addr:
	case err := <-p.done:
		t.Fatalf("intentpdp exited before serving: %v\n%s", err, p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("intentpdp did not start serving\n%s", p.output())
	}
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *process) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func readFile(id string) *pdpv1.AuthorizeRequest {
	return &pdpv1.AuthorizeRequest{
		Principal: &pdpv1.EntityRef{Type: "Agent", Id: id},
		Intent:    &pdpv1.Intent{Action: proto.String("read_file"), Purpose: "code-review"},
		Resource:  &pdpv1.EntityRef{Type: "Document", Id: "payments-api/README.md"},
	}
}

func TestServeEndToEnd(t *testing.T) {
	p := startServe(t)
	conn := p.dial(t)
	ctx := context.Background()

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", health.GetStatus(), err)
	}

	client := pdpv1.NewAuthorizationServiceClient(conn)
	resp, err := client.Authorize(ctx, readFile("code-reviewer"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW || resp.GetReasons()[0].GetPolicyId() != "platform-reads-payments" ||
		resp.GetPolicyRevision() != "agents-example-v1" {
		t.Errorf("Authorize = %v", resp)
	}

	batch, err := client.BatchAuthorize(ctx, &pdpv1.BatchAuthorizeRequest{Requests: []*pdpv1.AuthorizeRequest{
		readFile("code-reviewer"), readFile("intern-bot"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := []pdpv1.Decision{batch.GetResponses()[0].GetDecision(), batch.GetResponses()[1].GetDecision()}
	if got[0] != pdpv1.Decision_DECISION_ALLOW || got[1] != pdpv1.Decision_DECISION_DENY {
		t.Errorf("batch decisions = %v", got)
	}

	services := listServices(t, conn)
	for _, want := range []string{"intentpdp.v1.AuthorizationService", "grpc.health.v1.Health"} {
		if !strings.Contains(services, want) {
			t.Errorf("reflection lists %s; want %s", services, want)
		}
	}
	if !strings.Contains(p.output(), `msg="policy bundle active" revision=agents-example-v1`) {
		t.Errorf("startup log does not name the bundle:\n%s", p.output())
	}
}

func listServices(t *testing.T, conn *grpc.ClientConn) string {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return strings.Join(names, " ")
}

// TestGracefulShutdown sends SIGTERM under load: every request the server
// accepted gets its decision, and the process exits cleanly.
func TestGracefulShutdown(t *testing.T) {
	p := startServe(t)
	client := pdpv1.NewAuthorizationServiceClient(p.dial(t))
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		decided, refused int
		unexpected       []error
		started          = make(chan struct{}, 8)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for {
				_, err := client.Authorize(context.Background(), readFile("code-reviewer"))
				mu.Lock()
				switch {
				case err == nil:
					decided++
				case status.Code(err) == codes.Unavailable:
					refused++ // not accepted: the listener is closed
				default:
					unexpected = append(unexpected, err)
				}
				mu.Unlock()
				if first {
					started <- struct{}{}
					first = false
				}
				if err != nil {
					return
				}
			}
		}()
	}
	for range 8 {
		<-started
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.output())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	wg.Wait()
	if len(unexpected) > 0 || decided == 0 {
		t.Fatalf("decided %d, refused %d, unexpected errors %v", decided, refused, unexpected)
	}
	if !strings.Contains(p.output(), "draining in-flight requests") || !strings.Contains(p.output(), `msg=stopped`) {
		t.Errorf("shutdown not logged:\n%s", p.output())
	}
}
