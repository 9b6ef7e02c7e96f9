package telemetry_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/intentpdp/intentpdp/server/telemetry"
)

// TestGRPCMetricsMatchTheMiddleware serves real calls (unary OK and
// NotFound, a server stream cancelled by the client) through intentpdp's
// gRPC server metrics and, on the same server, go-grpc-middleware's
// Prometheus provider they replace, and requires the same series with the
// same values from both (histograms: the same observation counts).
func TestGRPCMetricsMatchTheMiddleware(t *testing.T) {
	ours := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(ours)
	if err != nil {
		t.Fatal(err)
	}
	theirs := prometheus.NewRegistry()
	mw := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	theirs.MustRegister(mw)
	gs := grpc.NewServer(append(m.GRPCServerOptions(),
		grpc.ChainUnaryInterceptor(mw.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(mw.StreamServerInterceptor()))...)
	hs := health.NewServer()
	hs.SetServingStatus("known", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	m.InitializeGRPC(gs)
	mw.InitializeMetrics(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	client := healthpb.NewHealthClient(cc)
	for range 3 {
		if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "known"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "unknown"}); err == nil {
		t.Fatal("unknown service: no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "known"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, _ = watch.Recv()
	gs.GracefulStop() // every handler has returned and recorded its call
	got, want := grpcSeries(t, ours), grpcSeries(t, theirs)
	if !slices.Equal(got, want) {
		t.Errorf("series differ:\nours:\n%s\nmiddleware:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(want) < 20 {
		t.Errorf("only %d series: the calls were not recorded", len(want))
	}
}

// grpcSeries are the grpc_server_* series of reg as "name{labels} value",
// sorted; a histogram's value is its count, with its help and buckets.
func grpcSeries(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "grpc_server_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			value := fmt.Sprint(m.GetCounter().GetValue())
			if f.GetType() == dto.MetricType_HISTOGRAM {
				var bounds []float64
				for _, b := range m.GetHistogram().GetBucket() {
					bounds = append(bounds, b.GetUpperBound())
				}
				value = fmt.Sprint(m.GetHistogram().GetSampleCount(), bounds)
			}
			out = append(out, fmt.Sprintf("%s %q {%s} %s", f.GetName(), f.GetHelp(), strings.Join(labels, ","), value))
		}
	}
	slices.Sort(out)
	return out
}
