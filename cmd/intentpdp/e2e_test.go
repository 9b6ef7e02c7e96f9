package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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

// loopbackFlags puts every listener of `intentpdp serve` on a loopback port
// the kernel chooses, so tests running side by side never collide.
var loopbackFlags = []string{
	"--listen", "127.0.0.1:0",
	"--admin-listen", "127.0.0.1:0",
	"--http-listen", "127.0.0.1:0",
	"--metrics-listen", "127.0.0.1:0",
}

func readFile(id string) *pdpv1.AuthorizeRequest {
	return &pdpv1.AuthorizeRequest{
		Principal: &pdpv1.EntityRef{Type: "Agent", Id: id},
		Intent:    &pdpv1.Intent{Action: proto.String("read_file"), Purpose: "code-review"},
		Resource:  &pdpv1.EntityRef{Type: "Document", Id: "payments-api/README.md"},
	}
}

func TestServeEndToEnd(t *testing.T) {
	p := startServe(t, nil)
	conn := p.conn
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
	if !strings.Contains(p.logs(), `"msg":"policy bundle active","revision":"agents-example-v1"`) {
		t.Errorf("startup log does not name the bundle:\n%s", p.logs())
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
	p := startServe(t, nil)
	client := p.client
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
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.logs())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	wg.Wait()
	if len(unexpected) > 0 || decided == 0 {
		t.Fatalf("decided %d, refused %d, unexpected errors %v", decided, refused, unexpected)
	}
	if !strings.Contains(p.logs(), "draining in-flight requests") || !strings.Contains(p.logs(), `"msg":"stopped"`) {
		t.Errorf("shutdown not logged:\n%s", p.logs())
	}
}
