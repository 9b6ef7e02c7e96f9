package echo_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/intentpdp/intentpdp/bench/echo"
)

func TestEchoOverLoopback(t *testing.T) {
	t.Parallel()
	cc := serveEcho(t, 0)
	var out []byte
	if err := cc.Invoke(context.Background(), echo.Method, ptr([]byte("request")), &out, grpc.ForceCodec(echo.Codec{})); err != nil {
		t.Fatal(err)
	}
	if string(out) != "reply" {
		t.Fatalf("reply %q", out)
	}
	if err := echo.Call(context.Background(), cc, make([]byte, 1<<16)); err != nil {
		t.Fatal(err)
	}
}

// TestWorkingEchoWorks checks that a working echo replies no sooner than
// its work takes: a lower bound, which a slow machine cannot break.
func TestWorkingEchoWorks(t *testing.T) {
	t.Parallel()
	const work = 20 * time.Millisecond
	cc := serveEcho(t, work)
	start := time.Now()
	if err := echo.Call(context.Background(), cc, []byte("request")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < work {
		t.Fatalf("replied after %v, before its %v of work", took, work)
	}
}

// serveEcho serves an echo working work per call on loopback and returns
// a client of it.
func serveEcho(t *testing.T, work time.Duration) *grpc.ClientConn {
	s := grpc.NewServer(echo.ServerOption())
	echo.RegisterWorking(s, []byte("reply"), work)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Error(err)
		}
	})
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func ptr[T any](v T) *T { return &v }
