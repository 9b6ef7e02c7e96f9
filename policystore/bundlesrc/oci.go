package bundlesrc

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/intentpdp/intentpdp/policystore"
)

// The media types of a bundle stored as an OCI artifact: an image manifest
// whose artifactType is ArtifactType, with exactly one layer of
// LayerMediaType holding the same .tar.gz an archive source reads.
const (
	ArtifactType   = "application/vnd.intentpdp.bundle.v1"
	LayerMediaType = "application/vnd.intentpdp.bundle.layer.v1.tar+gzip"
)

// Manifest annotations that Push sets, for people browsing a registry.
const (
	AnnotationRevision = "io.intentpdp.bundle.revision"
	AnnotationSequence = "io.intentpdp.bundle.sequence"
)

// maxManifestBytes bounds an OCI manifest; a bundle manifest is well under
// a kilobyte.
const maxManifestBytes = 1 << 20

// OCI fetches a bundle stored as an OCI artifact in a registry, located as
// oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:…. The manifest digest is
// the change detector: while the tag resolves to the digest of the last
// fetch, Fetch costs one HEAD request and returns ErrNotModified. The layer
// is verified against its digest before it is read. OCI is safe for
// concurrent use.
type OCI struct {
	location string
	ref      registry.Reference
	repo     *remote.Repository
	maxBytes int64

	mu   sync.Mutex
	last string // manifest digest of the last bundle returned
}

// ParseOCI splits an oci:// location into its registry reference. The
// reference must name a tag or a digest.
func ParseOCI(location string) (registry.Reference, error) {
	rest, ok := strings.CutPrefix(location, "oci://")
	if !ok {
		return registry.Reference{}, fmt.Errorf("bundle location %q: not an oci:// URL", location)
	}
	ref, err := registry.ParseReference(rest)
	if err != nil {
		return registry.Reference{}, fmt.Errorf("bundle location %q: %w", location, err)
	}
	if ref.Reference == "" {
		return registry.Reference{}, fmt.Errorf("bundle location %q: name a tag (:TAG) or a digest (@sha256:…)", location)
	}
	return ref, nil
}

// NewOCI returns a Fetcher for the bundle artifact at location.
func NewOCI(location string, opts Options) (*OCI, error) {
	ref, err := ParseOCI(location)
	if err != nil {
		return nil, err
	}
	repo, err := newRepository(ref, opts)
	if err != nil {
		return nil, err
	}
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &OCI{location: location, ref: ref, repo: repo, maxBytes: maxBytes}, nil
}

func openOCI(location string, opts Options) (Fetcher, error) { return NewOCI(location, opts) }

// newRepository builds the registry client: TLS with the configured roots
// unless PlainHTTP, credentials from the docker config, retries of
// transient failures.
func newRepository(ref registry.Reference, opts Options) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, fmt.Errorf("bundle registry: %w", err)
	}
	repo.PlainHTTP = opts.PlainHTTP
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opts.RootCAs != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
	}
	client := &auth.Client{
		Client: &http.Client{Transport: retry.NewTransport(tr), Timeout: opts.Timeout},
		Cache:  auth.NewCache(),
		Header: http.Header{"User-Agent": {"intentpdp"}},
	}
	store, err := credentialStore(opts.RegistryConfig)
	if err != nil {
		return nil, err
	}
	if store != nil {
		client.Credential = credentials.Credential(store)
	}
	repo.Client = client
	return repo, nil
}

// credentialStore opens the docker config at path, or the default one if
// it exists; nil means anonymous access. An explicit path must exist.
func credentialStore(path string) (credentials.Store, error) {
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil
		}
		path = home + "/.docker/config.json"
		if _, err := os.Stat(path); err != nil {
			return nil, nil
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("registry config: %w", err)
	}
	store, err := credentials.NewStore(path, credentials.StoreOptions{})
	if err != nil {
		return nil, fmt.Errorf("registry config %s: %w", path, err)
	}
	return store, nil
}

// Source is the oci:// location.
func (o *OCI) Source() string { return o.location }

// Fetch resolves the reference and, when its manifest digest changed since
// the last fetch, downloads and verifies the bundle layer.
func (o *OCI) Fetch(ctx context.Context) (*policystore.Bundle, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, digest, err := o.fetch(ctx)
	if errors.Is(err, ErrNotModified) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", o.location, err)
	}
	b.Source = o.location
	o.last = digest
	return b, nil
}

func (o *OCI) fetch(ctx context.Context) (*policystore.Bundle, string, error) {
	desc, err := o.repo.Resolve(ctx, o.ref.Reference)
	if err != nil {
		return nil, "", err
	}
	if o.last != "" && desc.Digest.String() == o.last {
		return nil, "", ErrNotModified
	}
	if desc.Size > maxManifestBytes {
		return nil, "", fmt.Errorf("%w: manifest of %d bytes", ErrTooLarge, desc.Size)
	}
	raw, err := fetchAll(ctx, o.repo, desc)
	if err != nil {
		return nil, "", fmt.Errorf("manifest: %w", err)
	}
	layer, err := bundleLayer(desc, raw)
	if err != nil {
		return nil, "", err
	}
	if layer.Size > o.maxBytes {
		return nil, "", fmt.Errorf("%w: layer of %d bytes > %d", ErrTooLarge, layer.Size, o.maxBytes)
	}
	data, err := fetchAll(ctx, o.repo.Blobs(), layer)
	if err != nil {
		return nil, "", fmt.Errorf("bundle layer: %w", err)
	}
	b, err := ReadTarGz(bytes.NewReader(data), o.maxBytes)
	if err != nil {
		return nil, "", err
	}
	return b, desc.Digest.String(), nil
}

// fetchAll reads the content desc names, verifying its size and digest.
func fetchAll(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return content.ReadAll(rc, desc)
}

// bundleLayer checks that raw is an intentpdp bundle manifest and returns
// its one layer.
func bundleLayer(desc ocispec.Descriptor, raw []byte) (ocispec.Descriptor, error) {
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return ocispec.Descriptor{}, fmt.Errorf("manifest media type %q, want %q", desc.MediaType, ocispec.MediaTypeImageManifest)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	if m.ArtifactType != ArtifactType && m.Config.MediaType != ArtifactType {
		return ocispec.Descriptor{}, fmt.Errorf("artifact type %q is not an intentpdp bundle (%s)", cmpOr(m.ArtifactType, m.Config.MediaType), ArtifactType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != LayerMediaType {
		return ocispec.Descriptor{}, fmt.Errorf("a bundle manifest has exactly one layer of %s", LayerMediaType)
	}
	return m.Layers[0], nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Push publishes archive, a bundle .tar.gz as WriteTarGz makes it, as an
// OCI artifact at location, which must name a tag. annotations go on the
// manifest. It returns the manifest's digest.
func Push(ctx context.Context, location string, archive []byte, annotations map[string]string, opts Options) (string, error) {
	ref, err := ParseOCI(location)
	if err != nil {
		return "", err
	}
	if ref.ValidateReferenceAsDigest() == nil {
		return "", fmt.Errorf("bundle location %q: push to a tag, not a digest", location)
	}
	repo, err := newRepository(ref, opts)
	if err != nil {
		return "", err
	}
	layer := content.NewDescriptorFromBytes(LayerMediaType, archive)
	if exists, err := repo.Exists(ctx, layer); err != nil {
		return "", fmt.Errorf("push bundle layer: %w", err)
	} else if !exists {
		if err := repo.Push(ctx, layer, bytes.NewReader(archive)); err != nil {
			return "", fmt.Errorf("push bundle layer: %w", err)
		}
	}
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, ArtifactType, oras.PackManifestOptions{
		Layers:              []ocispec.Descriptor{layer},
		ManifestAnnotations: annotations,
	})
	if err != nil {
		return "", fmt.Errorf("push bundle manifest: %w", err)
	}
	if err := repo.Tag(ctx, desc, ref.Reference); err != nil {
		return "", fmt.Errorf("tag bundle %s: %w", ref.Reference, err)
	}
	return desc.Digest.String(), nil
}
