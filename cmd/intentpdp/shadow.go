package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grpcapi"
	"github.com/intentpdp/intentpdp/server/shadow"
)

// ShadowConfig configures the shadow bundle: a candidate loaded beside the
// active bundle, from any source the active bundle can come from, and
// decided for a sample of live decisions without changing any answer.
type ShadowConfig struct {
	// Bundle is the shadow bundle directory, watched like --bundle.
	Bundle string
	// BundleURL is a shadow bundle archive (see ReloadConfig.BundleURL),
	// polled like --bundle-url. Exclusive with Bundle.
	BundleURL string
	// Sample is the share of live decisions decided again against the
	// shadow bundle, in (0, 1].
	Sample float64
	// Queue bounds the decisions waiting to be compared; when it is full
	// they are dropped and counted, never waited for.
	Queue int
	// Workers is how many goroutines compare.
	Workers int
}

// defaultShadow holds the defaults of the flags and of SetDefaults.
var defaultShadow = ShadowConfig{Sample: 1, Queue: shadow.DefaultQueueSize, Workers: 1}

// SetDefaults fills every unset field.
func (c *ShadowConfig) SetDefaults() {
	d := defaultShadow
	setDefault(&c.Sample, d.Sample)
	setPositive(&c.Queue, d.Queue)
	setPositive(&c.Workers, d.Workers)
}

func (c *ShadowConfig) enabled() bool { return c.Bundle != "" || c.BundleURL != "" }

func (c *ShadowConfig) validate() []error {
	var errs []error
	if c.Bundle != "" && c.BundleURL != "" {
		errs = append(errs, fmt.Errorf("set --shadow-bundle or --shadow-bundle-url, not both"))
	}
	if c.Sample <= 0 || c.Sample > 1 {
		errs = append(errs, fmt.Errorf("shadow-sample must be in (0, 1], not %v", c.Sample))
	}
	return errs
}

func (c *ShadowConfig) bindFlags(fs *flag.FlagSet) {
	d := defaultShadow
	fs.StringVar(&c.Bundle, "shadow-bundle", "", "shadow bundle directory: a candidate decided beside the active bundle without changing answers")
	fs.StringVar(&c.BundleURL, "shadow-bundle-url", "", "shadow bundle archive (.tar.gz): a local path, file:// or http(s) URL, polled like --bundle-url")
	fs.Float64Var(&c.Sample, "shadow-sample", d.Sample, "share of live decisions also decided against the shadow bundle, in (0, 1]")
	fs.IntVar(&c.Queue, "shadow-queue", d.Queue, "decisions waiting for comparison with the shadow bundle; more are dropped and counted")
	fs.IntVar(&c.Workers, "shadow-workers", d.Workers, "goroutines deciding against the shadow bundle")
}

// newShadow builds the shadow bundle's store (the active store's keys and
// rollback rule), its reloader and its comparer; nil when no shadow source
// is configured. The comparer writes a shadow record of each differing
// decision to the decision log, when there is one.
func newShadow(cfg *Config, log *slog.Logger, active *policystore.Store, obs *observability) (*shadow.Manager, error) {
	sc := cfg.Shadow
	if !sc.enabled() {
		return nil, nil
	}
	keys, err := readPublicKeys(cfg.Reload.VerifyKeys)
	if err != nil {
		return nil, err
	}
	store := policystore.NewStore(policystore.WithVerificationKeys(keys...), policystore.WithAllowRollback(cfg.Reload.AllowRollback))
	opts := []shadow.Option{shadow.WithSample(sc.Sample), shadow.WithQueueSize(sc.Queue), shadow.WithWorkers(sc.Workers),
		shadow.WithLogger(log), shadow.WithRegisterer(obs.registry)}
	if obs.decisionLog != nil {
		opts = append(opts, shadow.WithDecisionLog(obs.decisionLog))
	}
	c, err := shadow.New(store, opts...)
	if err != nil {
		return nil, err
	}
	// The shadow source is opened as the active one would be: a directory,
	// or any location bundlesrc.Open knows, with the same CA and size
	// bound.
	sourceCfg := *cfg
	sourceCfg.Bundle, sourceCfg.Reload.BundleURL = sc.Bundle, sc.BundleURL
	return shadow.NewManager(active, store, c, func() (bundlesrc.Fetcher, error) { return newFetcher(&sourceCfg) }, log)
}

// addShadow adds the shadow's comparer and the triggers that keep the
// shadow bundle current (a directory watcher or a poller, as for the
// active bundle), and loads it once; a shadow bundle that fails to load is
// logged and retried by those triggers, never fatal.
func addShadow(ctx context.Context, rn *runner, cfg *Config, log *slog.Logger, m *shadow.Manager) error {
	// The comparer stops after the decision listeners have drained.
	rn.add(stageReload, loop("shadow comparer", m.Comparer().Run))
	if _, err := m.Reload(ctx); err != nil {
		log.Warn("shadow bundle not loaded; comparisons start once it is", "err", err)
	}
	r := m.Reloader()
	trigger := make(chan struct{}, 1)
	rn.add(stageReload, loop("shadow reloader", func(ctx context.Context) { r.Run(ctx, trigger) }))
	if sc := cfg.Shadow; sc.Bundle != "" && cfg.Reload.Watch {
		watcher, err := bundlesrc.NewDirWatcher(sc.Bundle, cfg.Reload.WatchCooldown, log)
		if err != nil {
			return err
		}
		rn.add(stageReload, loop("shadow bundle watcher", func(ctx context.Context) { watcher.Run(ctx, func() { notify(trigger) }) }))
	}
	if cfg.Shadow.BundleURL != "" {
		poll := bundlesrc.PollConfig{Interval: cfg.Reload.PollInterval, Jitter: 0.1, MaxBackoff: cfg.Reload.PollMaxBackoff}
		rn.add(stageReload, loop("shadow bundle poller", func(ctx context.Context) { r.Poll(ctx, poll) }))
	}
	log.Info("shadow bundle configured", "source", cfg.Shadow.Bundle+cfg.Shadow.BundleURL, "sample", cfg.Shadow.Sample)
	return nil
}

// shadowOption is the engine's shadow step, or no option without one.
func shadowOption(m *shadow.Manager) engine.Option {
	if m == nil {
		return func(*engine.Engine) {}
	}
	return engine.WithShadow(m.Comparer())
}

// adminOf is what the admin API drives: r, and the shadow when there is
// one.
func adminOf(r *bundlesrc.Reloader, m *shadow.Manager) grpcapi.PolicyAdmin {
	if m == nil {
		return r
	}
	return policyAdmin{Reloader: r, shadow: m}
}

// policyAdmin is what the admin API drives: the active bundle's reloader
// and, when configured, the shadow bundle (grpcapi.ShadowAdmin).
type policyAdmin struct {
	*bundlesrc.Reloader
	shadow *shadow.Manager
}

func (a policyAdmin) ShadowStatus() shadow.Status                    { return a.shadow.Status() }
func (a policyAdmin) ReloadShadow(ctx context.Context) (bool, error) { return a.shadow.Reload(ctx) }
func (a policyAdmin) Promote(ctx context.Context) (*policystore.Snapshot, error) {
	return a.shadow.Promote(ctx)
}
func (a policyAdmin) ClearShadow() { a.shadow.Clear() }
