package grpcapi_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
)

// rawCodec sends request bytes as they are, so a test can put on the wire
// what no well-behaved client would marshal.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// message appends a length-delimited field.
func message(b []byte, num protowire.Number, body []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, body)
}

// nestedSets is a context value that is a set of a set of … (depth
// levels, each two protobuf messages deep) around true.
func nestedSets(depth int) []byte {
	v := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1) // Value{bool_value: true}
	for range depth {
		set := message(nil, 1, v) // ValueSet{values: [v]}
		v = message(nil, 5, set)  // Value{set_value: set}
	}
	entry := message(message(nil, 1, []byte("deep")), 2, v) // map entry {key, value}
	return message(nil, 4, message(nil, 1, entry))          // AuthorizeRequest{context: Record{fields: {entry}}}
}

// TestMalformedMessagesAreInvalidArgument sends bytes the protobuf runtime
// refuses to unmarshal: the answer blames the request, not the server.
func TestMalformedMessagesAreInvalidArgument(t *testing.T) {
	t.Parallel()
	valid, err := proto.Marshal(readRequest())
	if err != nil {
		t.Fatal(err)
	}
	principal := message(message(nil, 1, []byte("Agent")), 2, []byte("code-\xff\xfereviewer"))
	for _, tt := range []struct {
		name string
		body []byte
	}{
		{"invalid UTF-8 in a string", message(valid, 1, principal)}, // the later principal wins
		{"nesting beyond the recursion limit", append(valid, nestedSets(6000)...)},
		{"truncated", valid[:len(valid)-1]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := startServer(t, newService(exampleStore(t)))
			var out []byte
			err := conn.Invoke(context.Background(), pdpv1.AuthorizationService_Authorize_FullMethodName, tt.body, &out, grpc.ForceCodecV2(rawCodec{}))
			assertStatus(t, err, codes.InvalidArgument, engine.ReasonInvalidRequest)
		})
	}
	t.Run("shallow nesting still decodes", func(t *testing.T) {
		t.Parallel()
		conn := startServer(t, newService(exampleStore(t)))
		var out pdpv1.AuthorizeResponse
		err := conn.Invoke(context.Background(), pdpv1.AuthorizationService_Authorize_FullMethodName, append(valid, nestedSets(3)...), &out, grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			t.Fatalf("valid bytes: %v", err)
		}
		if out.GetDecision() == pdpv1.Decision_DECISION_UNSPECIFIED {
			t.Fatalf("no decision: %v", &out)
		}
	})
}
