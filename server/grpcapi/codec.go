package grpcapi

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
)

// requestCodec is grpc's proto codec, except that a request it cannot
// unmarshal (invalid UTF-8 in a string, nesting beyond protobuf's
// recursion limit, truncated bytes) is refused as InvalidArgument: grpc
// itself reports every codec failure as Internal, the code kept for bugs.
//
// grpc offers no hook between decoding and the handler, so Unmarshal
// records the failure against the message and reports success; the
// interceptors installed by NewServer, which see every decoded
// message before any handler, turn the record into the status. It is safe
// for concurrent use.
type requestCodec struct {
	encoding.CodecV2
	malformed sync.Map // the message (a pointer) → its unmarshal error
}

func newRequestCodec() *requestCodec {
	return &requestCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if err := c.CodecV2.Unmarshal(data, v); err != nil {
		c.malformed.Store(v, err)
	}
	return nil
}

// check returns the InvalidArgument status of a message that failed to
// unmarshal, forgetting it, or nil.
func (c *requestCodec) check(v any) error {
	if err, ok := c.malformed.LoadAndDelete(v); ok {
		f := engine.Classify(policystore.ErrInvalidRequest) // classified as any malformed request
		f.Message = "malformed request message: " + err.(error).Error()
		return statusOf(f)
	}
	return nil
}

func (c *requestCodec) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := c.check(req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func (c *requestCodec) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, checkedStream{ss, c})
	}
}

// checkedStream refuses a streamed message that failed to unmarshal.
type checkedStream struct {
	grpc.ServerStream
	codec *requestCodec
}

func (s checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.codec.check(m)
}
