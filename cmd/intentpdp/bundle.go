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
	"strconv"
	"time"

	"github.com/intentpdp/intentpdp/policystore"
	"github.com/intentpdp/intentpdp/policystore/bundlesrc"
)

const bundleUsage = `usage:
  intentpdp bundle build DIR -o BUNDLE.tar.gz [--sign KEY.pem] [--sequence N]
  intentpdp bundle push DIR oci://HOST/REPO:TAG [--sign KEY.pem] [--sequence N]
      [--registry-config CONFIG.json] [--bundle-ca CA.pem] [--registry-plain-http]
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
	case "push":
		return bundlePush(ctx, args[1:], stdout)
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
	sealed, err := sealBundle(ctx, pos[0], *signKey, *sequence, stdout)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, sealed.archive, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s\n", *out, sealed)
	return nil
}

// sealedBundle is a bundle directory sealed into an archive by sealBundle.
type sealedBundle struct {
	archive []byte
	snap    *policystore.Snapshot
	files   int
	signed  bool
}

func (s *sealedBundle) String() string {
	return fmt.Sprintf("revision %s, sequence %d, %d files, %d policies, signed: %t",
		s.snap.Revision(), s.snap.Sequence(), s.files, s.snap.PolicyCount(), s.signed)
}

// sealBundle seals the bundle directory dir, signed with the key in
// signKey when set, and checks that it activates; sequence 0 means the
// current Unix time.
func sealBundle(ctx context.Context, dir, signKey string, sequence int64, stdout io.Writer) (*sealedBundle, error) {
	b, err := policystore.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	if sequence == 0 {
		sequence = time.Now().Unix()
	}
	var key ed25519.PrivateKey
	if signKey != "" {
		data, err := os.ReadFile(signKey)
		if err != nil {
			return nil, err
		}
		if key, err = policystore.ParsePrivateKeyPEM(data); err != nil {
			return nil, fmt.Errorf("%s: %w", signKey, err)
		}
	}
	if err := policystore.Seal(b, sequence, key); err != nil {
		return nil, err
	}
	var keys []ed25519.PublicKey
	if key != nil {
		keys = append(keys, key.Public().(ed25519.PublicKey))
	}
	snap, err := activateBundle(ctx, dir, b, keys, stdout)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := bundlesrc.WriteTarGz(&buf, b); err != nil {
		return nil, err
	}
	return &sealedBundle{archive: buf.Bytes(), snap: snap, files: len(b.Files), signed: key != nil}, nil
}

// bundlePush seals a bundle directory as bundle build does and publishes
// it as an OCI artifact (see bundlesrc.Push) at an oci:// tag.
func bundlePush(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bundle push", flag.ContinueOnError)
	fs.SetOutput(stdout)
	signKey := fs.String("sign", "", "PEM ed25519 private key to sign the manifest with")
	sequence := fs.Int64("sequence", 0, "manifest sequence for anti-rollback (default: the current Unix time)")
	var rc ReloadConfig
	rc.bindRegistryFlags(fs)
	fs.StringVar(&rc.BundleCA, "bundle-ca", "", "PEM CA certificates trusted for the registry (default: system roots)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New(bundleUsage)
	}
	sealed, err := sealBundle(ctx, pos[0], *signKey, *sequence, stdout)
	if err != nil {
		return err
	}
	rc.SetDefaults()
	opts, err := rc.sourceOptions()
	if err != nil {
		return err
	}
	digest, err := bundlesrc.Push(ctx, pos[1], sealed.archive, map[string]string{
		bundlesrc.AnnotationRevision: sealed.snap.Revision(),
		bundlesrc.AnnotationSequence: strconv.FormatInt(sealed.snap.Sequence(), 10),
	}, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s@%s: %s\n", pos[1], digest, sealed)
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
