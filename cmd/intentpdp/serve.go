package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/examples"
	"github.com/intentpdp/intentpdp/internal/heapfloor"
	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	return serveWith(ctx, args, stderr, listenTCP)
}

// serveWith is the composition root of `intentpdp serve`: it builds every
// component (observability, store and reloader, service, listeners) in
// one place, then runs them under one errgroup tied to ctx until ctx ends
// or one of them fails. Shutdown goes stage by stage (see stage): health
// NOT_SERVING, the gRPC and HTTP listeners drain, reloading stops, the
// decision log flushes, then /metrics and the trace exporter.
func serveWith(ctx context.Context, args []string, stderr io.Writer, listen listenFunc) error {
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
	if floor := startHeapFloor(cfg.GCMinHeapMiB, log); floor != nil {
		defer floor.Stop()
	}
	obs, err := newObservability(ctx, &cfg.Observability, log)
	if err != nil {
		return err
	}
	// From here on a failure releases what was built through rn.abort.
	rn := &runner{log: log}
	if obs.decisionLog != nil {
		rn.add(stageDecisionLog, flusher("decision log", log, cfg.ShutdownTimeout, obs.decisionLog.Close))
	}
	if obs.otlpLog != nil {
		rn.add(stageDecisionLog, flusher("OTLP decision log", log, cfg.ShutdownTimeout, obs.otlpLog.Close))
	}
	if obs.exporter != nil {
		rn.add(stageTelemetry, flusher("trace exporter", log, cfg.ShutdownTimeout, obs.exporter.Shutdown))
	}
	sec, err := newTransportSecurity(ctx, &cfg, log)
	if err != nil {
		return rn.abort(err)
	}
	rn.add(stageTelemetry, onStop("SPIFFE source", sec.close))
	if cfg.Observability.MetricsListen != "" {
		lis, err := listen.open("metrics-listen", cfg.Observability.MetricsListen, true)
		if err != nil {
			return rn.abort(err)
		}
		rn.add(stageTelemetry, httpListener("metrics listener", cfg.HTTPLimits.server(sec.metrics.handler(obs.metricsHandler()), log), sec.metrics.listener(lis), cfg.ShutdownTimeout, log))
		log.Info("serving metrics", "addr", lis.Addr().String())
	}

	grantStore, err := openGrants(ctx, &cfg.Grants, log, obs.registry)
	if err != nil {
		return rn.abort(err)
	}
	if grantStore != nil {
		rn.add(stageReload, loop("grant store", followGrants(grantStore)))
	}
	storeOpts := append([]policystore.StoreOption{policystore.WithActivationObserver(obs.observeActivation)}, grantStoreOptions(grantStore)...)
	store, reloader, err := newReloader(&cfg, log, storeOpts...)
	if err != nil {
		return rn.abort(err)
	}
	// The first activation must succeed: the PDP never serves without a
	// bundle. Later failures keep the last good one.
	if _, err := reloader.Reload(ctx); err != nil {
		return rn.abort(err)
	}

	authn, err := cfg.Identity.engineOptions(ctx, log)
	if err != nil {
		return rn.abort(err)
	}
	sh, err := newShadow(&cfg, log, store, obs)
	if err != nil {
		return rn.abort(err)
	}
	engOpts := []engine.Option{
		engine.WithLogger(log),
		engine.WithRejectEntityOverrides(cfg.EntityOverrides == "reject"),
		obs.serviceOption(),
		shadowOption(sh)}
	eng := engine.New(store, slices.Concat(engOpts, authn, grantEngineOptions(grantStore))...)
	// Grant calls are decided like any other, without the principal-token
	// step: their principal is the admin caller (see registerGrantAPI).
	grantEng := engine.New(store, slices.Concat(engOpts, grantEngineOptions(grantStore))...)
	svcOpts := []grpcapi.Option{grpcapi.WithLimits(cfg.Limits), grpcapi.WithLogger(log)}
	if obs.decisionLog != nil {
		svcOpts = append(svcOpts, grpcapi.WithDecisionLogHealth(obs.decisionLog))
	}
	grpcOpts := obs.grpcOptions()
	grpcOpts = append(grpcOpts, sec.grpc.grpcOptions()...)
	grpcOpts = append(grpcOpts, cfg.GRPCLimits.serverOptions()...)
	gs, health := grpcapi.NewServer(grpcapi.New(eng, svcOpts...), grpcOpts...)
	httpHandler, routes, err := startGateways(cfg, eng, gs, log, func(h http.Handler) http.Handler { return obs.httpHandler(sec.http.handler(h)) })
	if err != nil {
		return rn.abort(err)
	}
	if httpHandler != nil {
		httpHandler = withHealthz(health, httpHandler)
	}
	if httpHandler == nil {
		log.Info("HTTP listener off: no AuthZEN or forward-auth")
	} else {
		lis, err := listen.open("http-listen", cfg.HTTPListen, true)
		if err != nil {
			return rn.abort(err)
		}
		rn.add(stageServe, httpListener("HTTP listener", cfg.HTTPLimits.server(httpHandler, log), sec.http.listener(lis), cfg.ShutdownTimeout, log))
		log.Info("serving AuthZEN and forward-auth over HTTP", "addr", lis.Addr().String(), "routes", routes)
	}
	if err := addMCP(ctx, rn, &cfg, eng, listen, sec.http, obs.httpHandler, log); err != nil {
		return rn.abort(err)
	}
	obs.metrics.InitializeGRPC(gs)
	lis, err := listen.open("listen", cfg.Listen, false)
	if err != nil {
		return rn.abort(err)
	}
	rn.add(stageServe, grpcListener("gRPC listener", gs, lis, cfg.ShutdownTimeout, log))

	if err := addReloading(rn, &cfg, log, reloader, adminOf(reloader, sh), listen, sec.admin, func(gs *grpc.Server) {
		registerGrantAPI(gs, grantEng, grantStore, &cfg, log)
	}); err != nil {
		return rn.abort(err)
	}
	if sh != nil {
		if err := addShadow(ctx, rn, &cfg, log, sh); err != nil {
			return rn.abort(err)
		}
	}
	rn.add(stageHealth, onStop("health", func() {
		grpcapi.SetServing(health, false)
		if cfg.ShutdownDelay > 0 {
			log.Info("shutting down: NOT_SERVING; still serving for the shutdown delay", "delay", cfg.ShutdownDelay)
			time.Sleep(cfg.ShutdownDelay) // a deliberate pause for load balancers, not synchronisation
		}
		log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout)
	}))
	grpcapi.SetServing(health, true)
	log.Info("serving gRPC", "addr", lis.Addr().String(), "tls", sec.grpc.tls != nil, "mtls", sec.grpc.tls != nil && sec.grpc.tls.ClientAuth != tls.NoClientCert)
	err = rn.run(ctx)
	log.Info("stopped")
	return err
}

// addReloading adds what keeps the bundle current: SIGHUP, a directory
// watcher or a poller, the reloader they trigger, and the admin API.
func addReloading(rn *runner, cfg *Config, log *slog.Logger, r *bundlesrc.Reloader, admin grpcapi.PolicyAdmin, listen listenFunc, sec listenerSecurity, extra func(*grpc.Server)) error {
	trigger := make(chan struct{}, 1)
	rn.add(stageReload, loop("reloader", func(ctx context.Context) { r.Run(ctx, trigger) }))
	rn.add(stageReload, loop("SIGHUP", watchSIGHUP(log, trigger)))
	if cfg.Bundle != "" && cfg.Reload.Watch {
		// Watching starts now, so no change made once serving is missed.
		watcher, err := bundlesrc.NewDirWatcher(cfg.Bundle, cfg.Reload.WatchCooldown, log)
		if err != nil {
			return err
		}
		rn.add(stageReload, loop("bundle watcher", func(ctx context.Context) { watcher.Run(ctx, func() { notify(trigger) }) }))
	}
	if cfg.Reload.BundleURL != "" {
		poll := bundlesrc.PollConfig{Interval: cfg.Reload.PollInterval, Jitter: 0.1, MaxBackoff: cfg.Reload.PollMaxBackoff}
		rn.add(stageReload, loop("bundle poller", func(ctx context.Context) { r.Poll(ctx, poll) }))
	}
	if cfg.Reload.AdminListen != "" {
		lis, err := listen.open("admin-listen", cfg.Reload.AdminListen, true)
		if err != nil {
			return err
		}
		// Admin calls are short: the drain bound is the one of the
		// decision listeners.
		server := newAdminServer(cfg, log, admin, sec.grpcOptions()...)
		extra(server)
		rn.add(stageReload, grpcListener("admin API", server, lis, cfg.ShutdownTimeout, log))
		log.Info("serving admin API", "addr", lis.Addr().String())
	}
	if cfg.Grants.Store != "off" && cfg.Reload.AdminListen == "" {
		log.Warn("task grants on but the admin API is off (--admin-listen): no grant can be created")
	}
	return nil
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

// startHeapFloor keeps the collector's heap goal at least minMiB (nil:
// off, with 0 or when the environment sets GOGC, which then decides).
func startHeapFloor(minMiB int, log *slog.Logger) *heapfloor.Floor {
	floor, gogc := heapfloor.StartUnlessGOGC(minMiB)
	if floor == nil && minMiB != 0 {
		log.Info("GOGC is set; the heap floor is off", "GOGC", gogc)
	}
	return floor
}
