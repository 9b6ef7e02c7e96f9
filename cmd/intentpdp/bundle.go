package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

const bundleUsage = `usage:
  intentpdp bundle build DIR -o BUNDLE.tar.gz [--sign KEY.pem] [--sequence N]
  intentpdp bundle verify [--verify-key PUB.pem]... BUNDLE.tar.gz|DIR
  intentpdp bundle keygen -o NAME     writes NAME.key (private) and NAME.pub`

// bundleCmd dispatches the bundle subcommands.
func bundleCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(bundleUsage)
	}
	switch args[0] {
	case "build":
		return bundleBuild(ctx, args[1:], stdout)
	case "verify":
		return bundleVerify(ctx, args[1:], stdout)
	case "keygen":
		return bundleKeygen(args[1:], stdout)
	default:
		return fmt.Errorf("unknown bundle command %q\n%s", args[0], bundleUsage)
	}
}

// parseInterspersed parses flags that may follow positional arguments
// (`build DIR -o out`), returning the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	var pos []string
	for fs.NArg() > 0 {
		pos = append(pos, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return nil, err
		}
	}
	return pos, nil
}

// bundleBuild seals a bundle directory into a deterministic .tar.gz whose
// manifest lists every file's SHA-256 and a sequence, signed when a key is
// given. The bundle must activate (schema, ids, tests/) before it is
// written.
func bundleBuild(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bundle build", flag.ContinueOnError)
	fs.SetOutput(stdout)
	out := fs.String("o", "", "output archive (required)")
	signKey := fs.String("sign", "", "PEM ed25519 private key to sign the manifest with")
	sequence := fs.Int64("sequence", 0, "manifest sequence for anti-rollback (default: the current Unix time)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return errors.New(bundleUsage)
	}
	b, err := policystore.LoadDir(pos[0])
	if err != nil {
		return err
	}
	if *sequence == 0 {
		*sequence = time.Now().Unix()
	}
	var key ed25519.PrivateKey
	if *signKey != "" {
		data, err := os.ReadFile(*signKey)
		if err != nil {
			return err
		}
		if key, err = policystore.ParsePrivateKeyPEM(data); err != nil {
			return fmt.Errorf("%s: %w", *signKey, err)
		}
	}
	if err := policystore.Seal(b, *sequence, key); err != nil {
		return err
	}
	var keys []ed25519.PublicKey
	if key != nil {
		keys = append(keys, key.Public().(ed25519.PublicKey))
	}
	snap, err := activateBundle(ctx, pos[0], b, keys, stdout)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := bundlesrc.WriteTarGz(&buf, b); err != nil {
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: revision %s, sequence %d, %d files, %d policies, signed: %t\n",
		*out, snap.Revision(), snap.Sequence(), len(b.Files), snap.PolicyCount(), key != nil)
	return nil
}

// bundleVerify checks a bundle offline exactly as activation would:
// signature (when keys are given), parse, schema, ids and tests/ cases.
func bundleVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bundle verify", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var keyFiles stringList
	fs.Var(&keyFiles, "verify-key", "PEM ed25519 public key the bundle must be signed with (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New(bundleUsage)
	}
	keys, err := readPublicKeys(keyFiles)
	if err != nil {
		return err
	}
	snap, err := activateOffline(ctx, pos[0], keys, stdout)
	if err != nil {
		return err
	}
	signature := "not checked (no --verify-key)"
	if len(keys) > 0 {
		signature = "verified"
	}
	fmt.Fprintf(stdout, "%s: ok\n  revision:  %s\n  sequence:  %d\n  policies:  %d\n  entities:  %d\n  signature: %s\n",
		pos[0], snap.Revision(), snap.Sequence(), snap.PolicyCount(), snap.EntityCount(), signature)
	return nil
}

// readBundle reads a bundle directory or .tar.gz archive.
func readBundle(ctx context.Context, path string) (*policystore.Bundle, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return bundlesrc.NewDir(path).Fetch(ctx)
	}
	a, err := bundlesrc.NewArchive(path)
	if err != nil {
		return nil, err
	}
	return a.Fetch(ctx)
}

// bundleKeygen writes a new ed25519 key pair as PEM, the private key
// readable by its owner only.
func bundleKeygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bundle keygen", flag.ContinueOnError)
	fs.SetOutput(stdout)
	out := fs.String("o", "", "file name prefix (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return errors.New(bundleUsage)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	privPEM, pubPEM, err := policystore.EncodeKeysPEM(priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out+".key", privPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*out+".pub", pubPEM, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s.key and %s.pub (key id %s)\n", *out, *out, policystore.KeyID(priv.Public().(ed25519.PublicKey)))
	return nil
}
