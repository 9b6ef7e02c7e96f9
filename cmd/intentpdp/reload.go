package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/cmd/intentpdp/internal/tlsfiles"
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

// sourceOptions are the options of a remote bundle source: TLS roots,
// registry credentials, bounds.
func (rc *ReloadConfig) sourceOptions() (bundlesrc.Options, error) {
	opts := bundlesrc.Options{Timeout: bundleFetchTimeout, MaxBytes: rc.BundleMaxBytes,
		RegistryConfig: rc.RegistryConfig, PlainHTTP: rc.RegistryPlainHTTP}
	if rc.BundleCA != "" {
		pool, err := tlsfiles.LoadCAPool(rc.BundleCA)
		if err != nil {
			return opts, fmt.Errorf("bundle-ca: %w", err)
		}
		opts.RootCAs = pool
	}
	return opts, nil
}

// newFetcher returns the fetcher of the configured source: --bundle-url
// by its scheme (see bundlesrc.Open), else the --bundle directory, else
// the embedded example.
func newFetcher(cfg *Config) (bundlesrc.Fetcher, error) {
	rc := cfg.Reload
	switch {
	case rc.BundleURL != "":
		opts, err := rc.sourceOptions()
		if err != nil {
			return nil, err
		}
		return bundlesrc.Open(rc.BundleURL, opts)
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

// newAdminServer returns the admin API (PolicyAdminService) of admin; extra
// options (credentials, the caller guard) are added.
func newAdminServer(cfg *Config, log *slog.Logger, admin grpcapi.PolicyAdmin, extra ...grpc.ServerOption) *grpc.Server {
	return grpcapi.NewAdminServer(admin, log, append(cfg.GRPCLimits.serverOptions(), extra...)...)
}

// watchSIGHUP subscribes to SIGHUP at once, so that a SIGHUP once serving
// never falls back to the default action of terminating the process, and
// returns the loop that turns each one into a reload until ctx ends.
func watchSIGHUP(log *slog.Logger, trigger chan<- struct{}) func(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return func(ctx context.Context) { forwardSIGHUP(ctx, log, hup, trigger) }
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
