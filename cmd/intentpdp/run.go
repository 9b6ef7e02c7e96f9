package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

// component is one long-running part of serve: a listener, the reloader,
// a flush of buffered records. run blocks until ctx ends, then stops the
// component and returns nil; if the component fails first, run returns
// why, and the whole process shuts down with that error.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// stage is a step of shutdown: the components of a stage are told to stop
// together, once every component of the stages before has stopped.
type stage int

const (
	// stageHealth marks the gRPC health service NOT_SERVING, so that load
	// balancers stop sending work before anything drains.
	stageHealth stage = iota
	// stageServe drains the decision listeners (gRPC, HTTP), bounded by
	// --shutdown-timeout.
	stageServe
	// stageReload stops SIGHUP, the watcher, the poller, the reloader and
	// the admin API: the bundle stays current while requests drain.
	stageReload
	// stageDecisionLog flushes the decision log, which the drained
	// listeners no longer write to: every answered decision is logged.
	stageDecisionLog
	// stageTelemetry stops /metrics and flushes the trace exporter last,
	// so that the flushes above are still observed.
	stageTelemetry
	numStages
)

// runner runs serve's components under one errgroup tied to the signal
// context, and stops them stage by stage. It is not safe for concurrent
// use; components are added before run.
type runner struct {
	log    *slog.Logger
	stages [numStages][]component
}

func (r *runner) add(s stage, c component) { r.stages[s] = append(r.stages[s], c) }

// run runs every component until ctx ends or one of them fails, then
// stops the stages in order and returns the first failure.
func (r *runner) run(ctx context.Context) error {
	g, failed := errgroup.WithContext(ctx)
	// Each stage has its own context, cancelled once the previous stage's
	// context has ended and all its components have returned; the first
	// stage's ends with ctx or the first failure.
	prev, prevDone := failed, func() {}
	for _, comps := range r.stages {
		sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		for _, c := range comps {
			wg.Add(1)
			g.Go(func() error {
				defer wg.Done()
				err := c.run(sctx)
				if err == nil {
					return nil
				}
				err = fmt.Errorf("%s: %w", c.name, err)
				if failed.Err() == nil {
					r.log.Error("a component failed; shutting down", "component", c.name, "err", err)
				} else {
					r.log.Error("stopping", "component", c.name, "err", err)
				}
				return err
			})
		}
		after, wait := prev, prevDone
		g.Go(func() error {
			<-after.Done()
			wait()
			stop()
			return nil
		})
		prev, prevDone = sctx, wg.Wait
	}
	return g.Wait()
}

// abort stops the components added so far without serving, releasing
// their listeners and files, and returns err, which stopped serve from
// starting.
func (r *runner) abort(err error) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.run(ctx)
	return err
}

// onStop is a component that waits for its stage, then runs stop.
func onStop(name string, stop func()) component {
	return component{name: name, run: func(ctx context.Context) error {
		<-ctx.Done()
		stop()
		return nil
	}}
}

// flusher is a component that waits for its stage, then runs flush with
// at most timeout to finish. A failed flush is logged; it never changes
// the exit status, as before there were components.
func flusher(name string, log *slog.Logger, timeout time.Duration, flush func(context.Context) error) component {
	return component{name: name, run: func(ctx context.Context) error {
		<-ctx.Done()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		if err := flush(fctx); err != nil {
			log.Error("shutdown", "component", name, "err", err)
		}
		return nil
	}}
}

// loop is a component that runs f until its stage; f returns when ctx
// ends.
func loop(name string, f func(ctx context.Context)) component {
	return component{name: name, run: func(ctx context.Context) error {
		f(ctx)
		return nil
	}}
}

// grpcListener serves gs on lis. When its stage comes it stops gracefully,
// forcing a stop after timeout.
func grpcListener(name string, gs *grpc.Server, lis net.Listener, timeout time.Duration, log *slog.Logger) component {
	return component{name: name, run: func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- gs.Serve(lis) }()
		select {
		case err := <-errc:
			return stoppedEarly(err)
		case <-ctx.Done():
		}
		drained := make(chan struct{})
		go func() {
			gs.GracefulStop()
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(timeout):
			log.Warn("graceful shutdown timed out; stopping", "listener", name)
			gs.Stop()
		}
		if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	}}
}

// httpListener serves hs on lis. When its stage comes it shuts down
// gracefully, closing the connections still open after timeout.
func httpListener(name string, hs *http.Server, lis net.Listener, timeout time.Duration, log *slog.Logger) component {
	return component{name: name, run: func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- hs.Serve(lis) }()
		select {
		case err := <-errc:
			return stoppedEarly(err)
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			log.Warn("HTTP shutdown timed out; closing", "listener", name, "err", err)
			_ = hs.Close()
		}
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}}
}

// stoppedEarly is the error of a listener that stopped before it was told
// to.
func stoppedEarly(err error) error {
	if err == nil {
		return errors.New("stopped serving")
	}
	return err
}

// listenFunc opens the listener of a listener flag; tests replace it to
// make a listener fail.
type listenFunc func(flagName, addr string) (net.Listener, error)

func listenTCP(_, addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// open listens on the address of a listener flag. A failure names the
// flag, so two PDPs on one host, whose side listeners default to the same
// ports, say which flag to change.
func (l listenFunc) open(flagName, addr string, optional bool) (net.Listener, error) {
	lis, err := l(flagName, addr)
	if err == nil {
		return lis, nil
	}
	if optional {
		return nil, fmt.Errorf("--%s %s: %w (set --%s to a free address, or to \"\" to turn this listener off)", flagName, addr, err, flagName)
	}
	return nil, fmt.Errorf("--%s %s: %w (set --%s to a free address)", flagName, addr, err, flagName)
}
