package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.bindFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.logger(stderr)
	obs, err := startObservability(ctx, &cfg.Observability, cfg.HTTPLimits, log)
	if err != nil {
		return err
	}
	// Runs once the gRPC server has drained, so every answered decision is
	// in the decision log before it is flushed.
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		obs.close(sctx)
	}()

	store, reloader, err := newReloader(&cfg, log, policystore.WithActivationObserver(obs.observeActivation))
	if err != nil {
		return err
	}
	// The first activation must succeed: the PDP never serves without a
	// bundle. Later failures keep the last good one.
	if _, err := reloader.Reload(ctx); err != nil {
		return err
	}

	eng := engine.New(store,
		engine.WithLogger(log),
		engine.WithRejectEntityOverrides(cfg.EntityOverrides == "reject"),
		obs.serviceOption())
	svcOpts := []grpcapi.Option{grpcapi.WithLimits(cfg.Limits), grpcapi.WithLogger(log)}
	if obs.decisionLog != nil {
		svcOpts = append(svcOpts, grpcapi.WithDecisionLogHealth(obs.decisionLog))
	}
	grpcOpts := obs.grpcOptions()
	creds, err := cfg.TLS.serverOption()
	if err != nil {
		return err
	}
	if creds != nil {
		grpcOpts = append(grpcOpts, creds)
	}
	grpcOpts = append(grpcOpts, cfg.GRPCLimits.serverOptions()...)
	gs, health := grpcapi.NewServer(grpcapi.New(eng, svcOpts...), grpcOpts...)
	stopGateways, httpFailed, err := startGateways(cfg, eng, gs, log, obs.httpHandler)
	if err != nil {
		return err
	}
	defer stopGateways(cfg.ShutdownTimeout)
	obs.metrics.InitializeGRPC(gs)
	lis, err := listen("listen", cfg.Listen, false)
	if err != nil {
		return err
	}
	reloadCtx, stopReloading := context.WithCancel(ctx)
	defer stopReloading()
	waitReloading, err := startReloading(reloadCtx, &cfg, log, reloader)
	if err != nil {
		lis.Close()
		return err
	}
	defer func() {
		stopReloading()
		waitReloading()
	}()
	grpcapi.SetServing(health, true)
	log.Info("serving gRPC", "addr", lis.Addr().String(), "tls", cfg.TLS.Cert != "", "mtls", cfg.TLS.ClientCA != "")
	return runUntilDone(ctx, log, gs, lis, httpFailed, cfg.ShutdownTimeout, func() { grpcapi.SetServing(health, false) })
}

// runUntilDone serves until ctx ends or another listener fails, then marks
// the server not serving and drains in-flight requests, forcing a stop
// after timeout. A listener's failure is returned, so the process exits
// rather than serve half its front ends.
func runUntilDone(ctx context.Context, log *slog.Logger, gs *grpc.Server, lis net.Listener, failed <-chan error, timeout time.Duration, notServing func()) error {
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	var fault error
	select {
	case err := <-errc:
		return err
	case fault = <-failed:
		log.Error("a listener failed; shutting down", "err", fault)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "timeout", timeout)
	notServing()
	drained := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(timeout):
		log.Warn("graceful shutdown timed out; stopping")
		gs.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	log.Info("stopped")
	return fault
}

// embeddedSource names the example bundle built into the binary.
const embeddedSource = "embedded:examples/agents"

// loadBundle reads the bundle directory, or the embedded example when dir
// is empty.
func loadBundle(dir string) (*policystore.Bundle, error) {
	if dir != "" {
		return policystore.LoadDir(dir)
	}
	b, err := policystore.LoadFS(examples.Agents())
	if err != nil {
		return nil, fmt.Errorf("load embedded example bundle: %w", err)
	}
	b.Source = embeddedSource
	return b, nil
}
