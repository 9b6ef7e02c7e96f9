package grpcapi_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/decisionlog"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
	"github.com/intentpdp/intentpdp/server/telemetry"
)

// diskFullSink fails every write with ENOSPC while full.
type diskFullSink struct {
	mu   sync.Mutex
	full bool
	buf  bytes.Buffer
}

func (s *diskFullSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return 0, syscall.ENOSPC
	}
	return s.buf.Write(p)
}

func (s *diskFullSink) setFull(full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.full = full
}

func (s *diskFullSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// failingLogPDP serves the example bundle with a decision log in mode over
// a sink that is already failing.
type failingLogPDP struct {
	client pdpv1.AuthorizationServiceClient
	health healthpb.HealthClient
	sink   *diskFullSink
	log    *decisionlog.Writer
	reg    *prometheus.Registry
}

func startFailingLog(t *testing.T, mode decisionlog.Mode) *failingLogPDP {
	t.Helper()
	p := &failingLogPDP{sink: &diskFullSink{full: true}, reg: prometheus.NewRegistry()}
	var err error
	p.log, err = decisionlog.New(p.sink, decisionlog.WithMode(mode), decisionlog.WithFlushInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.sink.setFull(false)
		if err := p.log.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	metrics, err := telemetry.NewMetrics(p.reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.ObserveDecisionLog(p.log); err != nil {
		t.Fatal(err)
	}
	conn := startServer(t, grpcapi.New(engine.New(exampleStore(t), engine.WithDecisionLog(p.log), engine.WithMetrics(metrics)),
		grpcapi.WithDecisionLogHealth(p.log)))
	p.client, p.health = pdpv1.NewAuthorizationServiceClient(conn), healthpb.NewHealthClient(conn)
	// The first decision meets the full disk; it is held and retried.
	if _, err := p.client.Authorize(t.Context(), readRequest()); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return !p.log.SinkHealthy() })
	return p
}

func (p *failingLogPDP) status(t *testing.T, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := p.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetStatus()
}

func (p *failingLogPDP) gauge(t *testing.T) float64 {
	t.Helper()
	ms := family(t, p.reg, "intentpdp_decision_log_sink_healthy")
	if len(ms) != 1 {
		t.Fatalf("%d sink_healthy series", len(ms))
	}
	return ms[0].GetGauge().GetValue()
}

func TestFailingDecisionLogSink(t *testing.T) {
	t.Parallel()
	t.Run("block answers DECISION_NOT_LOGGED at the deadline, then recovers", func(t *testing.T) {
		t.Parallel()
		p := startFailingLog(t, decisionlog.Block)
		// The sink fails throughout, so the server gives up at the
		// caller's deadline, less the decision log's reply margin (100 ms
		// for a deadline of a second or more), and answers why. A deadline
		// of seconds leaves that margin whole; if a loaded machine still
		// delivers the answer after the client's own timer fires, the
		// client sees only DeadlineExceeded, which says nothing about the
		// server: ask again (each such request was refused, never logged).
		var err error
		for attempt := 1; attempt <= 3; attempt++ {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			_, err = p.client.Authorize(ctx, readRequest())
			cancel()
			if status.Code(err) != codes.DeadlineExceeded {
				break
			}
			t.Logf("attempt %d: the client's deadline passed before the server's answer arrived", attempt)
		}
		if reason := errorReason(err); status.Code(err) != codes.Unavailable || reason != engine.ReasonNotLogged {
			t.Fatalf("Authorize while the log cannot write = %v (reason %q), want Unavailable %s", err, reason, engine.ReasonNotLogged)
		}
		for _, svc := range []string{"", "intentpdp.v1.AuthorizationService", grpcapi.DecisionLogHealthService} {
			if st := p.status(t, svc); st != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Errorf("health %q = %v while the sink fails, want NOT_SERVING", svc, st)
			}
		}
		if g := p.gauge(t); g != 0 {
			t.Errorf("sink_healthy = %v, want 0", g)
		}
		if ms := family(t, p.reg, "intentpdp_decision_log_write_errors_total"); len(ms) != 1 || ms[0].GetCounter().GetValue() < 1 {
			t.Errorf("write_errors_total while the sink fails = %v, want at least 1", ms)
		}
		p.sink.setFull(false)
		eventually(t, p.log.SinkHealthy)
		resp, err := p.client.Authorize(t.Context(), readRequest())
		if err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
			t.Fatalf("Authorize after recovery = %v, %v", resp, err)
		}
		if st := p.status(t, ""); st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health = %v after recovery, want SERVING", st)
		}
		if g := p.gauge(t); g != 1 {
			t.Errorf("sink_healthy = %v after recovery, want 1", g)
		}
		// The first decision, held through the failure, is in the log.
		eventually(t, func() bool { return p.log.Written() == 2 })
		if n := strings.Count(p.sink.String(), "\n"); n != 2 {
			t.Fatalf("%d lines, want 2", n)
		}
	})
	t.Run("deny denies with the reason", func(t *testing.T) {
		t.Parallel()
		p := startFailingLog(t, decisionlog.Deny)
		resp, err := p.client.Authorize(t.Context(), readRequest())
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetDecision() != pdpv1.Decision_DECISION_DENY || len(resp.GetErrors()) == 0 ||
			!strings.Contains(resp.GetErrors()[len(resp.GetErrors())-1].GetMessage(), "cannot write") {
			t.Fatalf("got %v, want a deny saying the log cannot write", resp)
		}
		if st := p.status(t, ""); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health = %v while the sink fails, want NOT_SERVING", st)
		}
	})
	t.Run("drop answers and keeps serving", func(t *testing.T) {
		t.Parallel()
		p := startFailingLog(t, decisionlog.Drop)
		resp, err := p.client.Authorize(t.Context(), readRequest())
		if err != nil || resp.GetDecision() != pdpv1.Decision_DECISION_ALLOW {
			t.Fatalf("Authorize in drop mode = %v, %v", resp, err)
		}
		if p.log.Dropped() != 1 {
			t.Fatalf("Dropped = %d, want 1", p.log.Dropped())
		}
		if st := p.status(t, ""); st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health = %v in drop mode, want SERVING", st)
		}
		if st := p.status(t, grpcapi.DecisionLogHealthService); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("decision log health = %v while the sink fails, want NOT_SERVING", st)
		}
	})
}

func errorReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(time.Millisecond)
	}
}
