// Package otlplogs is a minimal OTLP logs receiver for tests: the gRPC
// LogsService and the HTTP /v1/logs protobuf endpoint, on loopback, that
// keep what they receive and can refuse the first exports.
package otlplogs

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Receiver keeps the log records of accepted exports. It is safe for
// concurrent use.
type Receiver struct {
	collogspb.UnimplementedLogsServiceServer
	// Addr is HOST:PORT on 127.0.0.1.
	Addr string

	mu       sync.Mutex
	failNext int // exports still to refuse
	calls    int // exports received, refused ones included
	refused  int
	got      []*logspb.ResourceLogs
}

// StartGRPC runs a gRPC receiver until the test ends; it refuses the first
// failFirst exports with Unavailable.
func StartGRPC(t testing.TB, failFirst int) *Receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Addr: lis.Addr().String(), failNext: failFirst}
	gs := grpc.NewServer()
	collogspb.RegisterLogsServiceServer(gs, r)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return r
}

// StartHTTP runs an HTTP receiver (POST /v1/logs, protobuf) until the test
// ends; it refuses the first failFirst exports with 503.
func StartHTTP(t testing.TB, failFirst int) *Receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Addr: lis.Addr().String(), failNext: failFirst}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/logs", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var msg collogspb.ExportLogsServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !r.accept(&msg) {
			http.Error(w, "refused", http.StatusServiceUnavailable)
			return
		}
		out, _ := proto.Marshal(&collogspb.ExportLogsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

// Export is the gRPC LogsService.
func (r *Receiver) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	if !r.accept(req) {
		return nil, status.Error(codes.Unavailable, "refused")
	}
	return &collogspb.ExportLogsServiceResponse{}, nil
}

func (r *Receiver) accept(req *collogspb.ExportLogsServiceRequest) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.failNext > 0 {
		r.failNext--
		r.refused++
		return false
	}
	r.got = append(r.got, req.GetResourceLogs()...)
	return true
}

// Refused counts the exports refused.
func (r *Receiver) Refused() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// Record is a received log record with its resource's service.name.
type Record struct {
	Service string
	*logspb.LogRecord
}

// Attr is the string attribute key of the record, or "".
func (r Record) Attr(key string) string {
	for _, kv := range r.GetAttributes() {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// Records returns every record of the accepted exports, in order.
func (r *Receiver) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for _, rl := range r.got {
		var service string
		for _, kv := range rl.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, sl := range rl.GetScopeLogs() {
			for _, lr := range sl.GetLogRecords() {
				out = append(out, Record{service, lr})
			}
		}
	}
	return out
}
