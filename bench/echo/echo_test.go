package echo_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/intentpdp/intentpdp/bench/echo"
)

func TestEchoOverLoopback(t *testing.T) {
	t.Parallel()
	s := grpc.NewServer(echo.ServerOption())
	echo.Register(s, []byte("reply"))
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
	defer cc.Close()
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

func ptr[T any](v T) *T { return &v }
