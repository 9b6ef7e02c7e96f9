package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

// ReloadConfig configures where bundles come from, how changes are picked
// up, how bundles are verified, and the admin API.
type ReloadConfig struct {
	// BundleURL is a .tar.gz bundle: a local path, a file:// URL or an
	// http(s) URL, or an OCI artifact in a registry (oci://HOST/REPO:TAG
	// or @sha256:…; see bundlesrc.Open), polled every PollInterval.
	// Exclusive with Config.Bundle.
	BundleURL string
	// Watch reloads a bundle directory when its files change.
	Watch bool
	// WatchCooldown is how long a directory must stay quiet after a change
	// before it is reloaded.
	WatchCooldown time.Duration
	// PollInterval is the pause between polls of BundleURL (with ±10%
	// jitter); after failures it doubles up to PollMaxBackoff.
	PollInterval   time.Duration
	PollMaxBackoff time.Duration
	// BundleCA is a PEM file of CA certificates trusted for an https
	// BundleURL; empty means the system roots.
	BundleCA string
	// RegistryConfig is a docker-style config.json holding the
	// credentials of an oci:// BundleURL's registry; empty means
	// ~/.docker/config.json when it exists.
	RegistryConfig string
	// RegistryPlainHTTP reaches an oci:// BundleURL's registry over plain
	// HTTP instead of HTTPS.
	RegistryPlainHTTP bool
	// BundleMaxBytes bounds a bundle archive, compressed and uncompressed.
	BundleMaxBytes int64
	// VerifyKeys are PEM ed25519 public keys; when set, only bundles
	// signed by one of them are activated.
	VerifyKeys stringList
	// AllowRollback activates a bundle whose manifest sequence is lower
	// than the active one's.
	AllowRollback bool
	// AdminListen is the admin API's address, never the decision port;
	// empty disables the admin API.
	AdminListen string
}

// defaultReload holds the defaults of the flags and of SetDefaults.
var defaultReload = ReloadConfig{
	Watch:          true,
	WatchCooldown:  500 * time.Millisecond,
	PollInterval:   30 * time.Second,
	PollMaxBackoff: 5 * time.Minute,
	BundleMaxBytes: bundlesrc.DefaultMaxBytes,
	AdminListen:    "127.0.0.1:50052",
}

// SetDefaults fills every unset field but Watch and AdminListen, whose
// zero values are choices (no watching, no admin API).
func (c *ReloadConfig) SetDefaults() {
	d := defaultReload
	setPositive(&c.WatchCooldown, d.WatchCooldown)
	setPositive(&c.PollInterval, d.PollInterval)
	setPositive(&c.PollMaxBackoff, d.PollMaxBackoff)
	setPositive(&c.BundleMaxBytes, d.BundleMaxBytes)
}

func (c *ReloadConfig) validate(bundleDir string) []error {
	var errs []error
	if c.BundleURL != "" && bundleDir != "" {
		errs = append(errs, fmt.Errorf("set --bundle or --bundle-url, not both"))
	}
	if c.PollMaxBackoff < c.PollInterval {
		errs = append(errs, fmt.Errorf("poll-max-backoff (%v) must be at least poll-interval (%v)", c.PollMaxBackoff, c.PollInterval))
	}
	return errs
}

func (c *ReloadConfig) bindFlags(fs *flag.FlagSet) {
	d := defaultReload
	fs.StringVar(&c.BundleURL, "bundle-url", "", "bundle archive (.tar.gz): a local path, file:// or http(s) URL, or an OCI artifact oci://HOST/REPO:TAG (or @sha256:…), polled for changes")
	fs.BoolVar(&c.Watch, "watch", d.Watch, "reload a --bundle directory when its files change")
	fs.DurationVar(&c.WatchCooldown, "watch-cooldown", d.WatchCooldown, "quiet time after a file change before the directory is reloaded")
	fs.DurationVar(&c.PollInterval, "poll-interval", d.PollInterval, "pause between polls of --bundle-url (±10% jitter)")
	fs.DurationVar(&c.PollMaxBackoff, "poll-max-backoff", d.PollMaxBackoff, "longest pause between polls after repeated failures")
	fs.StringVar(&c.BundleCA, "bundle-ca", "", "PEM CA certificates trusted for an https --bundle-url (default: system roots)")
	c.bindRegistryFlags(fs)
	fs.Int64Var(&c.BundleMaxBytes, "bundle-max-bytes", d.BundleMaxBytes, "largest bundle archive accepted, compressed and uncompressed")
	fs.Var(&c.VerifyKeys, "verify-key", "PEM ed25519 public key; when set, only bundles signed by one of these keys activate (repeatable, or comma-separated)")
	fs.BoolVar(&c.AllowRollback, "allow-rollback", false, "activate bundles whose manifest sequence is older than the active one")
	fs.StringVar(&c.AdminListen, "admin-listen", d.AdminListen, "admin API (PolicyAdminService) listen address; empty disables it")
}

// bindRegistryFlags binds the flags of an oci:// registry, shared by serve
// and bundle push.
func (c *ReloadConfig) bindRegistryFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.RegistryConfig, "registry-config", "", "docker-style config.json with the credentials of an oci:// registry (default: ~/.docker/config.json when it exists)")
	fs.BoolVar(&c.RegistryPlainHTTP, "registry-plain-http", false, "reach an oci:// registry over plain HTTP instead of HTTPS")
}

// stringList is a repeatable flag that also splits on commas, so that one
// environment variable can carry several values.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
