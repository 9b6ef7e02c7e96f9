// Package echo is a bare gRPC echo service, the transport floor the
// benchmarks compare intentpdp against: the same framing, HTTP/2 and
// message sizes as an Authorize call, with no decoding and no decision.
package echo

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// Method is the echo method's full name.
const Method = "/intentpdp.bench.Echo/Echo"

// Codec passes messages through as raw bytes, so the echo measures the
// transport only.
type Codec struct{}

// Name implements encoding.CodecV2's naming; "proto" lets the server and
// client use it without a content-subtype of their own.
func (Codec) Name() string { return "proto" }

// Marshal expects *[]byte.
func (Codec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }

// Unmarshal copies data into *[]byte.
func (Codec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}

var _ encoding.Codec = Codec{}

// Register adds the echo service to s, which must use Codec (see
// ServerOption). It replies with reply, a message the size of a typical
// response, to every request.
func Register(s *grpc.Server, reply []byte) { RegisterWorking(s, reply, 0) }

// RegisterWorking is Register with an echo that keeps its CPU busy for
// work before each reply: a floor that does a known amount of work per
// call, to see what a microsecond of server work costs a caller's latency.
func RegisterWorking(s *grpc.Server, reply []byte, work time.Duration) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "intentpdp.bench.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Echo",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in []byte
				if err := dec(&in); err != nil {
					return nil, err
				}
				spin(work)
				out := reply
				return &out, nil
			},
		}},
	}, struct{}{})
}

// ServerOption makes a server exchange raw bytes.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodec(Codec{}) }

// Call sends req and waits for the reply.
func Call(ctx context.Context, cc *grpc.ClientConn, req []byte) error {
	var out []byte
	return cc.Invoke(ctx, Method, &req, &out, grpc.ForceCodec(Codec{}))
}

// spin keeps the calling goroutine running for d, without yielding its
// thread: the work of a handler, not a wait.
func spin(d time.Duration) {
	if d <= 0 {
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}
