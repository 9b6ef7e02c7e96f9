package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/intentpdp/intentpdp/policystore"
)

// check runs a bundle's whole activation offline and prints a summary, or
// every problem with its file:line.
func check(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: intentpdp check DIR")
	}
	snap, err := activateOffline(ctx, fs.Arg(0), nil, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n  revision: %s\n  policies: %d\n  entities: %d\n  schema:   %t\n",
		fs.Arg(0), snap.Revision(), snap.PolicyCount(), snap.EntityCount(), snap.Schema() != nil)
	if ids := snap.LogOnlyPolicies(); len(ids) > 0 {
		fmt.Fprintf(stdout, "  log-only: %d (evaluated, never enforced)\n", len(ids))
		for _, id := range ids {
			fmt.Fprintf(stdout, "    %s\n", id)
		}
	}
	return nil
}

// activateOffline activates the bundle at path (a directory or an archive)
// in a store of its own, exactly as serve would: signature when keys are
// given, parse, schema, ids and the bundle's tests/ cases. Each problem is
// printed on its own line.
func activateOffline(ctx context.Context, path string, keys []ed25519.PublicKey, stdout io.Writer) (*policystore.Snapshot, error) {
	b, err := readBundle(ctx, path)
	if err != nil {
		return nil, err
	}
	return activateBundle(ctx, path, b, keys, stdout)
}

// activateBundle activates b, read from path, in a store of its own.
func activateBundle(ctx context.Context, path string, b *policystore.Bundle, keys []ed25519.PublicKey, stdout io.Writer) (*policystore.Snapshot, error) {
	snap, err := policystore.NewStore(policystore.WithVerificationKeys(keys...)).Activate(ctx, b)
	var verr *policystore.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			fmt.Fprintln(stdout, p)
		}
		return nil, fmt.Errorf("%s: %d problem(s)", path, len(verr.Problems))
	}
	return snap, err
}
