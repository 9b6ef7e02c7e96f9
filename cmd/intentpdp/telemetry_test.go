package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestObservabilityConfigValidate(t *testing.T) {
	t.Parallel()
	parse := func(t *testing.T, args ...string) *Config {
		t.Helper()
		var cfg Config
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.bindFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg.SetDefaults()
		return &cfg
	}
	if err := parse(t, "--trace-identifiers", "principal, resource", "--decision-log-full", "deny", "--otlp-headers", "a=b,c=d").Validate(); err != nil {
		t.Fatalf("valid configuration rejected: %v", err)
	}
	err := parse(t,
		"--decision-log-full", "sometimes",
		"--trace-identifiers", "principal,email",
		"--trace-sample-ratio", "1.5",
		"--otlp-protocol", "carrier-pigeon",
		"--otlp-headers", "novalue").Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"decision-log-full", "trace-identifiers", "trace-sample-ratio", "otlp-protocol", "otlp-headers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %s: %v", want, err)
		}
	}
}
