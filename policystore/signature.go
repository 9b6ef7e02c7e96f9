package policystore

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// SignatureFile holds a signed bundle's ed25519 signatures over the exact
// bytes of manifest.json. It is not itself listed in the manifest.
const SignatureFile = "signature.json"

// ErrBadSignature marks a bundle refused because verification keys are
// configured and the bundle is unsigned, tampered with or signed by an
// unknown key.
var ErrBadSignature = errors.New("bundle signature verification failed")

type signatureDoc struct {
	Signatures []signatureEntry `json:"signatures"`
}

type signatureEntry struct {
	// KeyID is the hex SHA-256 of the public key, shortened; a hint only.
	KeyID string `json:"key_id"`
	// Signature is the base64 ed25519 signature of manifest.json.
	Signature string `json:"signature"`
}

// KeyID names a public key in signature.json: a short hex SHA-256 of it.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Seal rewrites b's manifest.json in place (keeping its other keys) with
// the given sequence and the SHA-256 of every other file. With a key, it
// also writes signature.json: an ed25519 signature over the new manifest.
// With a nil key the bundle is sealed but unsigned.
func Seal(b *Bundle, sequence int64, key ed25519.PrivateKey) error {
	m := map[string]any{}
	if data, ok := b.Files[ManifestFile]; ok {
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("seal bundle: %s: %w", ManifestFile, err)
		}
	}
	delete(b.Files, SignatureFile)
	m["sequence"] = sequence
	m["files"] = digests(b)
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("seal bundle: %w", err)
	}
	b.Files[ManifestFile] = append(manifest, '\n')
	if key == nil {
		return nil
	}
	pub, _ := key.Public().(ed25519.PublicKey)
	doc := signatureDoc{Signatures: []signatureEntry{{
		KeyID:     KeyID(pub),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, b.Files[ManifestFile])),
	}}}
	sig, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("seal bundle: %w", err)
	}
	b.Files[SignatureFile] = append(sig, '\n')
	return nil
}

// digests returns the SHA-256 of every file that a manifest seals.
func digests(b *Bundle) map[string]string {
	out := make(map[string]string, len(b.Files))
	for p, data := range b.Files {
		if p == ManifestFile || p == SignatureFile {
			continue
		}
		sum := sha256.Sum256(data)
		out[p] = hex.EncodeToString(sum[:])
	}
	return out
}

// VerifySignature checks that one of keys signed b's manifest and that the
// manifest lists exactly b's files with their digests. Every error wraps
// ErrBadSignature.
func VerifySignature(b *Bundle, keys []ed25519.PublicKey) error {
	if err := verifyManifestSignature(b, keys); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	m, problems := readManifest(b)
	if len(problems) > 0 {
		return fmt.Errorf("%w: %v", ErrBadSignature, problems[0])
	}
	if err := verifyDigests(b, m); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

func verifyManifestSignature(b *Bundle, keys []ed25519.PublicKey) error {
	manifest, ok := b.Files[ManifestFile]
	if !ok {
		return errors.New("bundle has no manifest.json")
	}
	data, ok := b.Files[SignatureFile]
	if !ok {
		return errors.New("bundle is not signed (no signature.json)")
	}
	var doc signatureDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %v", SignatureFile, err)
	}
	for _, s := range doc.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Signature)
		if err != nil {
			continue
		}
		for _, k := range keys {
			if ed25519.Verify(k, manifest, sig) {
				return nil
			}
		}
	}
	return errors.New("no signature verifies with a configured key")
}

// verifyDigests checks that m lists exactly b's files with their digests.
func verifyDigests(b *Bundle, m Manifest) error {
	var problems []string
	actual := digests(b)
	for _, p := range slices.Sorted(maps.Keys(actual)) {
		want, listed := m.Files[p]
		switch {
		case !listed:
			problems = append(problems, p+": not listed in the manifest")
		case want != actual[p]:
			problems = append(problems, p+": digest does not match the manifest")
		}
	}
	for _, p := range slices.Sorted(maps.Keys(m.Files)) {
		if _, ok := actual[p]; !ok {
			problems = append(problems, p+": listed in the manifest but missing")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// ParsePublicKeyPEM parses an ed25519 public key in PEM-encoded PKIX form,
// as written by `openssl pkey -pubout`.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, not ed25519", key)
	}
	return pub, nil
}

// ParsePrivateKeyPEM parses an ed25519 private key in PEM-encoded PKCS #8
// form, as written by `openssl genpkey -algorithm ed25519`.
func ParsePrivateKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, not ed25519", key)
	}
	return priv, nil
}

// EncodeKeysPEM encodes an ed25519 key pair as PKCS #8 and PKIX PEM.
func EncodeKeysPEM(priv ed25519.PrivateKey) (privPEM, pubPEM []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	var a, b bytes.Buffer
	_ = pem.Encode(&a, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	_ = pem.Encode(&b, &pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return a.Bytes(), b.Bytes(), nil
}
