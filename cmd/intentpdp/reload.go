package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
	"github.com/intentpdp/intentpdp/server/grpcapi"
)

// bundleFetchTimeout bounds one download of a remote bundle.
const bundleFetchTimeout = time.Minute

// newReloader builds the store (with verification keys and the rollback
// policy) and the reloader for the configured source.
func newReloader(cfg *Config, log *slog.Logger, storeOpts ...policystore.StoreOption) (*policystore.Store, *bundlesrc.Reloader, error) {
	keys, err := readPublicKeys(cfg.Reload.VerifyKeys)
	if err != nil {
		return nil, nil, err
	}
	fetcher, err := newFetcher(cfg)
	if err != nil {
		return nil, nil, err
	}
	store := policystore.NewStore(append([]policystore.StoreOption{
		policystore.WithVerificationKeys(keys...),
		policystore.WithAllowRollback(cfg.Reload.AllowRollback)}, storeOpts...)...)
	return store, bundlesrc.NewReloader(store, fetcher, bundlesrc.WithLogger(log)), nil
}

func newFetcher(cfg *Config) (bundlesrc.Fetcher, error) {
	rc := cfg.Reload
	switch {
	case rc.BundleURL != "":
		var caPEM []byte
		if rc.BundleCA != "" {
			var err error
			if caPEM, err = os.ReadFile(rc.BundleCA); err != nil {
				return nil, fmt.Errorf("bundle-ca: %w", err)
			}
		}
		client, err := bundlesrc.NewHTTPClient(caPEM, bundleFetchTimeout)
		if err != nil {
			return nil, err
		}
		return bundlesrc.NewArchive(rc.BundleURL, bundlesrc.WithHTTPClient(client), bundlesrc.WithMaxBytes(rc.BundleMaxBytes))
	case cfg.Bundle != "":
		return bundlesrc.NewDir(cfg.Bundle), nil
	default:
		return embeddedFetcher{}, nil
	}
}

// embeddedFetcher serves the example bundle built into the binary.
type embeddedFetcher struct{}

func (embeddedFetcher) Fetch(context.Context) (*policystore.Bundle, error) { return loadBundle("") }
func (embeddedFetcher) Source() string                                     { return embeddedSource }

func readPublicKeys(files []string) ([]ed25519.PublicKey, error) {
	keys := make([]ed25519.PublicKey, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("verify-key: %w", err)
		}
		k, err := policystore.ParsePublicKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("verify-key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// startReloading starts what keeps the bundle current until ctx ends:
// SIGHUP, a directory watcher or a poller, and the admin API. wait blocks
// until all of them have stopped.
func startReloading(ctx context.Context, cfg *Config, log *slog.Logger, r *bundlesrc.Reloader) (wait func(), err error) {
	var admin *grpc.Server
	var adminLis net.Listener
	if cfg.Reload.AdminListen != "" {
		if adminLis, err = listen("admin-listen", cfg.Reload.AdminListen, true); err != nil {
			return nil, err
		}
		admin = grpcapi.NewAdminServer(r, log, cfg.GRPCLimits.serverOptions()...)
		log.Info("serving admin API", "addr", adminLis.Addr().String())
	}
	trigger := make(chan struct{}, 1)
	var watcher *bundlesrc.DirWatcher
	if cfg.Bundle != "" && cfg.Reload.Watch {
		if watcher, err = bundlesrc.NewDirWatcher(cfg.Bundle, cfg.Reload.WatchCooldown, log); err != nil {
			if adminLis != nil {
				adminLis.Close()
			}
			return nil, err
		}
	}

	// Subscribe before returning, so that a SIGHUP once serving never
	// falls back to the default action of terminating the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var wg sync.WaitGroup
	wg.Go(func() { forwardSIGHUP(ctx, log, hup, trigger) })
	wg.Go(func() { r.Run(ctx, trigger) })
	if watcher != nil {
		wg.Go(func() { watcher.Run(ctx, func() { notify(trigger) }) })
	}
	if cfg.Reload.BundleURL != "" {
		wg.Go(func() {
			r.Poll(ctx, bundlesrc.PollConfig{Interval: cfg.Reload.PollInterval, Jitter: 0.1, MaxBackoff: cfg.Reload.PollMaxBackoff})
		})
	}
	if admin != nil {
		wg.Go(func() { serveAdmin(ctx, log, admin, adminLis) })
	}
	return wg.Wait, nil
}

// notify asks for a reload; a reload already pending covers this one.
func notify(trigger chan<- struct{}) {
	select {
	case trigger <- struct{}{}:
	default:
	}
}

func forwardSIGHUP(ctx context.Context, log *slog.Logger, hup chan os.Signal, trigger chan<- struct{}) {
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reloading the policy bundle")
			notify(trigger)
		}
	}
}

// serveAdmin serves the admin API until ctx ends. Admin calls are short, so
// a graceful stop needs no deadline beyond the reload in flight.
func serveAdmin(ctx context.Context, log *slog.Logger, gs *grpc.Server, lis net.Listener) {
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		log.Error("admin API stopped", "err", err)
		return
	case <-ctx.Done():
	}
	gs.GracefulStop()
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		log.Error("admin API", "err", err)
	}
}
