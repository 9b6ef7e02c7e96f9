package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	"github.com/intentpdp/intentpdp/policystore"
	pdpv1 "github.com/intentpdp/intentpdp/proto/intentpdp/v1"
	"github.com/intentpdp/intentpdp/server/engine"
	"github.com/intentpdp/intentpdp/server/grantapi"
	"github.com/intentpdp/intentpdp/server/grants"
)

// GrantConfig configures task grants.
type GrantConfig struct {
	// Store is where grants live: "memory" (default: this process only,
	// gone on restart), "off" (no grants: context.task and Task entities
	// are the bundle's and the caller's, as before grants), or a
	// postgres:// or postgresql:// URL shared by replicas.
	Store string
	// MaxTTL bounds the lifetime of a new grant.
	MaxTTL time.Duration
	// MaxStaleness is how long a replica may be out of contact with a
	// shared store before it stops serving grants.
	MaxStaleness time.Duration
	// CallerType and CallerSPIFFEPrefix map the verified caller of a Grant
	// call (mutual TLS on the admin listener) to the grant's approver:
	// CallerType::"<SPIFFE ID without CallerSPIFFEPrefix>". A caller
	// outside the prefix approves no grants.
	CallerType         string
	CallerSPIFFEPrefix string
}

var defaultGrants = GrantConfig{Store: "memory", MaxTTL: grants.DefaultMaxTTL, MaxStaleness: grants.DefaultMaxStaleness,
	CallerType: grantapi.DefaultApproverType}

// SetDefaults fills unset fields.
func (c *GrantConfig) SetDefaults() {
	setDefault(&c.Store, defaultGrants.Store)
	setPositive(&c.MaxTTL, defaultGrants.MaxTTL)
	setPositive(&c.MaxStaleness, defaultGrants.MaxStaleness)
	setDefault(&c.CallerType, defaultGrants.CallerType)
}

// validate checks c for a process that creates grants (memoryOK: serve,
// whose GrantService creates them) or only reads those others create (the
// stdio MCP proxy, for which a memory store would stay empty forever).
func (c *GrantConfig) validate(memoryOK bool) []error {
	var errs []error
	switch {
	case c.Store == "off", c.postgres(), c.Store == "memory" && memoryOK:
	case c.Store == "memory":
		errs = append(errs, errors.New("grant-store memory: nothing could create a grant in this process, which serves no GrantService; "+
			"give the postgres:// URL of the serve replicas that create them, or off"))
	case memoryOK:
		errs = append(errs, fmt.Errorf("grant-store must be memory, off or a postgres:// URL, not %q", redactDSN(c.Store)))
	default:
		errs = append(errs, fmt.Errorf("grant-store must be off or a postgres:// URL, not %q", redactDSN(c.Store)))
	}
	if c.MaxTTL < 0 || c.MaxStaleness < 0 {
		errs = append(errs, errors.New("max-grant-ttl and grant-max-staleness must be positive"))
	}
	if _, err := types.NewEntityType(c.CallerType); err != nil {
		errs = append(errs, fmt.Errorf("grant-caller-type %q: not an entity type", c.CallerType))
	}
	if p := c.CallerSPIFFEPrefix; p != "" {
		if _, err := spiffeid.FromString(strings.TrimSuffix(p, "/")); err != nil || !strings.HasSuffix(p, "/") {
			errs = append(errs, fmt.Errorf("grant-caller-spiffe-prefix %q: want a SPIFFE ID ending in /, e.g. spiffe://example.org/ops/", p))
		}
	}
	return errs
}

func (c *GrantConfig) postgres() bool {
	return strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://")
}

func (c *GrantConfig) bindFlags(fs *flag.FlagSet) {
	d := defaultGrants
	c.bindReplicaFlags(fs, d.Store, "task grants: memory (this process only), off, or a postgres:// URL shared by replicas")
	fs.DurationVar(&c.MaxTTL, "max-grant-ttl", d.MaxTTL, "longest lifetime of a task grant")
	fs.StringVar(&c.CallerType, "grant-caller-type", d.CallerType, "entity type a verified admin caller (mTLS) approves grants as; approved_by must be that entity")
	fs.StringVar(&c.CallerSPIFFEPrefix, "grant-caller-spiffe-prefix", "", "prefix stripped from the admin caller's SPIFFE ID to make the approver's id, e.g. spiffe://example.org/ops/ (callers outside it approve no grants; empty: the whole SPIFFE ID)")
}

// bindReplicaFlags binds the flags of a process that follows a grant
// store: where the grants are and how stale they may get. store is the
// default store, storeUsage its flag's help.
func (c *GrantConfig) bindReplicaFlags(fs *flag.FlagSet, store, storeUsage string) {
	fs.StringVar(&c.Store, "grant-store", store, storeUsage)
	fs.DurationVar(&c.MaxStaleness, "grant-max-staleness", defaultGrants.MaxStaleness, "how long a replica may be out of contact with a shared grant store before it serves no grants")
}

// redactDSN hides the password of a database URL in messages.
func redactDSN(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at >= 0 {
		if scheme := strings.Index(dsn, "://"); scheme >= 0 && scheme < at {
			return dsn[:scheme+3] + "…" + dsn[at:]
		}
	}
	return dsn
}

// openGrants opens the configured grant store; nil when grants are off.
func openGrants(ctx context.Context, c *GrantConfig, log *slog.Logger, reg prometheus.Registerer) (*grants.Store, error) {
	opts := []grants.Option{grants.WithMaxTTL(c.MaxTTL), grants.WithMaxStaleness(c.MaxStaleness), grants.WithLogger(log)}
	if reg != nil {
		opts = append(opts, grants.WithRegisterer(reg))
	}
	switch {
	case c.Store == "off":
		log.Info("task grants off")
		return nil, nil
	case c.postgres():
		s, err := grants.OpenPostgres(ctx, c.Store, opts...)
		if err != nil {
			return nil, err
		}
		log.Info("task grants in PostgreSQL, shared by replicas", "max_staleness", c.MaxStaleness)
		return s, nil
	}
	log.Info("task grants in memory: they do not survive a restart and other replicas do not see them")
	return grants.NewMemory(opts...), nil
}

// followGrants keeps s current (a shared store's changes, the sweep of
// ended grants) until ctx ends, then releases it.
func followGrants(s *grants.Store) func(context.Context) {
	return func(ctx context.Context) {
		s.Run(ctx)
		s.Close()
	}
}

// grantStoreOptions reserve the Task entity type for the grant store: a
// bundle or request cannot define the tasks grants are checked against.
func grantStoreOptions(s *grants.Store) []policystore.StoreOption {
	if s == nil {
		return nil
	}
	return []policystore.StoreOption{policystore.WithRuntimeEntityTypes(grants.TaskType)}
}

// grantEngineOptions are the engine's enrich and consume steps for grants.
func grantEngineOptions(s *grants.Store) []engine.Option {
	if s == nil {
		return nil
	}
	return []engine.Option{engine.WithEnricher(s), engine.WithConsumer(s)}
}

// registerGrantAPI adds GrantService to the admin server. eng decides
// Grant calls; it has no principal-token step, since the principal of a
// Grant decision is the admin caller (proven by its X.509-SVID) or, without
// mutual TLS, the approved_by of the request.
func registerGrantAPI(gs *grpc.Server, eng *engine.Engine, s *grants.Store, cfg *Config, log *slog.Logger) {
	if s != nil {
		a := grantapi.Approvers{Type: types.EntityType(cfg.Grants.CallerType), SPIFFEPrefix: cfg.Grants.CallerSPIFFEPrefix}
		pdpv1.RegisterGrantServiceServer(gs, grantapi.New(eng, s, cfg.Limits, log, grantapi.WithApprovers(a)))
	}
}
