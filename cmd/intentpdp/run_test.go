package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder notes the order in which components are told to stop.
type recorder struct {
	mu      sync.Mutex
	stopped []string
}

func (r *recorder) note(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = append(r.stopped, name)
}

func (r *recorder) order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stopped)
}

// slowStop is a component that notes its stop and then takes a moment, so
// that a later stage starting early would be noted before it.
func (r *recorder) slowStop(name string) component {
	return component{name: name, run: func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond)
		r.note(name)
		return nil
	}}
}

// TestRunnerStopsStagesInOrder: when ctx ends, every stage stops only once
// the stages before it have stopped, whatever order they were added in.
func TestRunnerStopsStagesInOrder(t *testing.T) {
	t.Parallel()
	var rec recorder
	rn := &runner{log: slog.New(slog.DiscardHandler)}
	rn.add(stageTelemetry, rec.slowStop("telemetry"))
	rn.add(stageDecisionLog, rec.slowStop("decision log"))
	rn.add(stageReload, rec.slowStop("reload"))
	rn.add(stageServe, rec.slowStop("serve"))
	rn.add(stageHealth, rec.slowStop("health"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run = %v after ctx ended, want nil", err)
	}
	want := []string{"health", "serve", "reload", "decision log", "telemetry"}
	if got := rec.order(); !slices.Equal(got, want) {
		t.Errorf("stopped in order %v, want %v", got, want)
	}
}

// TestRunnerFailureStopsEverything: a component that fails stops every
// other one, in stage order, and run returns its error named.
func TestRunnerFailureStopsEverything(t *testing.T) {
	t.Parallel()
	var rec recorder
	boom := errors.New("boom")
	rn := &runner{log: slog.New(slog.DiscardHandler)}
	rn.add(stageHealth, rec.slowStop("health"))
	rn.add(stageServe, rec.slowStop("serve"))
	rn.add(stageTelemetry, component{name: "metrics listener", run: func(context.Context) error { return boom }})
	rn.add(stageDecisionLog, rec.slowStop("decision log"))
	err := rn.run(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "metrics listener") {
		t.Fatalf("run = %v, want boom, named", err)
	}
	want := []string{"health", "serve", "decision log"}
	if got := rec.order(); !slices.Equal(got, want) {
		t.Errorf("stopped in order %v, want %v", got, want)
	}
}

// failingListener accepts nothing: Accept fails for good once fail is
// closed, as a listener whose socket broke would.
type failingListener struct {
	net.Listener
	fail <-chan struct{}
}

var errListenerBroke = errors.New("listener broke")

func (l failingListener) Accept() (net.Conn, error) {
	<-l.fail
	return nil, errListenerBroke
}

// TestServeStopsWhenASideListenerFails: a side listener (/metrics, the
// admin API) that fails once serving stops serve with that error, after an
// orderly shutdown.
func TestServeStopsWhenASideListenerFails(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ flag, component string }{
		{"metrics-listen", "metrics listener"},
		{"admin-listen", "admin API"},
		{"http-listen", "HTTP listener"},
	} {
		t.Run(tt.flag, func(t *testing.T) {
			t.Parallel()
			fail := make(chan struct{})
			listen := func(flagName, addr string) (net.Listener, error) {
				lis, err := listenTCP(flagName, addr)
				if err != nil || flagName != tt.flag {
					return lis, err
				}
				return failingListener{lis, fail}, nil
			}
			log := &logBuffer{}
			done := make(chan error, 1)
			go func() { done <- serveWith(context.Background(), slices.Clone(loopbackFlags), log, listen) }()
			pollUntil(t, "serving gRPC", func() bool { return strings.Contains(log.String(), "serving gRPC") })
			close(fail)
			select {
			case err := <-done:
				if !errors.Is(err, errListenerBroke) || !strings.Contains(err.Error(), tt.component) {
					t.Fatalf("serve = %v, want the %s's failure", err, tt.component)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("serve still running after the %s failed:\n%s", tt.component, log)
			}
			for _, want := range []string{"a component failed; shutting down", "draining in-flight requests", `msg=stopped`} {
				if !strings.Contains(log.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}

// TestServeReleasesWhatItBuiltOnFailure: a serve that cannot start (here
// its gRPC port is taken) releases the side listeners it had opened, so
// their ports are free again.
func TestServeReleasesWhatItBuiltOnFailure(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var mu sync.Mutex
	var opened []net.Listener
	listen := func(flagName, addr string) (net.Listener, error) {
		lis, err := listenTCP(flagName, addr)
		if err == nil {
			mu.Lock()
			opened = append(opened, lis)
			mu.Unlock()
		}
		return lis, err
	}
	args := append(slices.Clone(loopbackFlags), "--listen", taken.Addr().String())
	if err := serveWith(context.Background(), args, io.Discard, listen); err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("serve = %v, want the --listen failure", err)
	}
	if len(opened) == 0 {
		t.Fatal("no side listener was opened before the gRPC one")
	}
	for _, lis := range opened {
		if _, err := lis.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("listener on %s still open after serve failed (Accept: %v)", lis.Addr(), err)
		}
	}
}
