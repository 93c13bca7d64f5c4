// Package ociregistry is a providers.Registry on any registry that speaks
// the Docker Registry HTTP API v2 / OCI distribution API — the self-hosted
// "Docker registry", Harbor, GitLab, Artifactory, ... — through
// go-containerregistry.
//
//	reg, err := ociregistry.New("registry.example.com", &ociregistry.Options{
//		Username: "deploy",
//		Password: os.Getenv("REGISTRY_PASSWORD"),
//	})
//	img, err := reg.Resolve(ctx, "web:v2") // registry.example.com/web@sha256:...
//
// # Authentication
//
// With Username and Password set, requests authenticate with HTTP basic
// auth, or, when the registry answers with a Bearer challenge, with a token
// obtained from the registry's token service using those credentials (the
// Docker token flow). Without them, requests are anonymous (and an
// anonymous token is fetched when the registry asks for one).
// Credentials returns the same username and password for the data path;
// they do not expire.
//
// Loopback and private (RFC 1918) hosts, and hosts ending in .local, are
// reached over plain HTTP; every other host over HTTPS unless
// Options.Insecure is set.
//
// # Repositories
//
// A v2 registry creates repositories on first push, so EnsureRepository
// only validates the name and returns the repository's URI (host/name).
//
// # Optional capabilities
//
// Registry implements providers.ImageLister (the v2 API lists tags, so
// untagged images are not listed: one tag list, then one HEAD per tag) and
// providers.ImageDeleter (the manifest is deleted by digest, then every
// tag that pointed at it, for registries that keep tags apart; the
// registry must allow deletes, e.g. REGISTRY_STORAGE_DELETE_ENABLED).
//
// # Errors
//
// Registry error codes map to sentinels: MANIFEST_UNKNOWN, NAME_UNKNOWN
// and BLOB_UNKNOWN are providers.ErrNotFound; UNAUTHORIZED and DENIED
// providers.ErrPermission; TOOMANYREQUESTS providers.ErrThrottled;
// NAME_INVALID, TAG_INVALID, DIGEST_INVALID, MANIFEST_INVALID and
// malformed references providers.ErrInvalid; UNSUPPORTED (or 405)
// providers.ErrUnimplemented; 5xx and unreachable registries
// providers.ErrUnavailable. Errors wrap both the sentinel and the
// go-containerregistry error (*transport.Error).
//
// # Permissions
//
// Pull access for Resolve and ListImages, push access for the data path,
// delete access for DeleteImage — in the registry's own access control
// (for token registries: the "pull", "push" and "delete" actions on
// repository:<name>). No cloud IAM is involved.
package ociregistry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/internal/oci"
	"github.com/convox-go/convox/providers"
)

// Options configure a Registry. The zero value means anonymous access.
type Options struct {
	// Username and Password authenticate (basic auth or the token flow).
	Username string
	Password string
	// Insecure reaches the registry over plain HTTP whatever its host.
	Insecure bool
	// Transport carries the registry's HTTP requests (proxies, custom CAs);
	// nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// Platform chooses the image of a multi-platform index that Resolve
	// describes ("linux/amd64" by default). The pinned digest stays the
	// index's.
	Platform string
}

// Registry is a v2 registry at one host. It is safe for concurrent use.
type Registry struct {
	host     string
	opts     Options
	auth     authn.Authenticator
	platform v1.Platform
	nameOpts []name.Option
}

var (
	_ providers.Registry     = (*Registry)(nil)
	_ providers.ImageLister  = (*Registry)(nil)
	_ providers.ImageDeleter = (*Registry)(nil)
)

// New returns a Registry for host ("registry.example.com",
// "127.0.0.1:5000"). opts may be nil.
func New(host string, opts *Options) (*Registry, error) {
	r := &Registry{host: host, auth: authn.Anonymous}
	if opts != nil {
		r.opts = *opts
	}
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || host == "" || strings.Contains(host, "/") {
		return nil, providers.Invalidf("registry host %q is malformed", host)
	}
	if r.opts.Username != "" || r.opts.Password != "" {
		r.auth = &authn.Basic{Username: r.opts.Username, Password: r.opts.Password}
	}
	if r.opts.Insecure {
		r.nameOpts = append(r.nameOpts, name.Insecure)
	}
	p := r.opts.Platform
	if p == "" {
		p = "linux/amd64"
	}
	plat, err := v1.ParsePlatform(p)
	if err != nil {
		return nil, providers.Invalidf("platform %q: %v", p, err)
	}
	r.platform = *plat
	return r, nil
}

func (r *Registry) remoteOpts(ctx context.Context) []remote.Option {
	o := []remote.Option{remote.WithContext(ctx), remote.WithAuth(r.auth), remote.WithPlatform(r.platform)}
	if r.opts.Transport != nil {
		o = append(o, remote.WithTransport(r.opts.Transport))
	}
	return o
}

func (r *Registry) uri(repo string) string { return r.host + "/" + repo }

// EnsureRepository validates name and returns its repository; the registry
// creates it on first push.
func (r *Registry) EnsureRepository(ctx context.Context, name string) (providers.Repository, error) {
	if err := ctx.Err(); err != nil {
		return providers.Repository{}, err
	}
	if err := oci.ValidRepository(name); err != nil {
		return providers.Repository{}, err
	}
	return providers.Repository{Name: name, URI: r.uri(name)}, nil
}

// Resolve pins ref to its manifest digest and reads the image configuration.
func (r *Registry) Resolve(ctx context.Context, ref string) (providers.Image, error) {
	if err := ctx.Err(); err != nil {
		return providers.Image{}, err
	}
	p, err := oci.Parse(ref, r.host)
	if err != nil {
		return providers.Image{}, err
	}
	nref, err := p.Name(r.host, r.nameOpts...)
	if err != nil {
		return providers.Image{}, err
	}
	img, err := oci.Describe(nref, r.uri(p.Repository), p.Tag, r.remoteOpts(ctx)...)
	if err != nil {
		return providers.Image{}, fmt.Errorf("resolve %q: %w", ref, err)
	}
	return img, nil
}

// Credentials returns the configured username and password for the host.
func (r *Registry) Credentials(ctx context.Context, repo string) (providers.Credentials, error) {
	if err := ctx.Err(); err != nil {
		return providers.Credentials{}, err
	}
	return providers.Credentials{Registry: r.host, Username: r.opts.Username, Password: r.opts.Password}, nil
}

func (r *Registry) repository(repo string) (name.Repository, error) {
	if err := oci.ValidRepository(repo); err != nil {
		return name.Repository{}, err
	}
	n, err := name.NewRepository(r.uri(repo), append([]name.Option{name.StrictValidation}, r.nameOpts...)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%w: %w", providers.ErrInvalid, err)
	}
	return n, nil
}

// ListImages returns the repository's tagged images ordered by digest,
// each with its first tag in lexical order.
func (r *Registry) ListImages(ctx context.Context, repo string) ([]providers.Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, err := r.repository(repo)
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(n, r.remoteOpts(ctx)...)
	if err != nil {
		return nil, oci.Wrap(fmt.Sprintf("list tags of %s", n), err)
	}
	slices.Sort(tags)
	byDigest := map[string]providers.Image{}
	for _, tag := range tags {
		d, err := remote.Head(n.Tag(tag), r.remoteOpts(ctx)...)
		if err != nil {
			if errors.Is(oci.Sentinel(err), providers.ErrNotFound) {
				continue // deleted since the listing
			}
			return nil, oci.Wrap(fmt.Sprintf("head %s:%s", n, tag), err)
		}
		if _, ok := byDigest[d.Digest.String()]; !ok {
			byDigest[d.Digest.String()] = providers.Image{Repository: r.uri(repo), Digest: d.Digest.String(), Tag: tag, Size: d.Size}
		}
	}
	out := make([]providers.Image, 0, len(byDigest))
	for _, d := range slices.Sorted(maps.Keys(byDigest)) {
		out = append(out, byDigest[d])
	}
	return out, nil
}

// DeleteImage deletes the manifest with digest and the tags that point to
// it. A missing image or repository returns nil.
func (r *Registry) DeleteImage(ctx context.Context, repo, digest string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := r.repository(repo)
	if err != nil {
		return err
	}
	p, err := oci.Parse(repo+"@"+digest, "")
	if err != nil {
		return err
	}
	tags, err := remote.List(n, r.remoteOpts(ctx)...)
	if err != nil {
		if errors.Is(oci.Sentinel(err), providers.ErrNotFound) {
			return nil
		}
		return oci.Wrap(fmt.Sprintf("list tags of %s", n), err)
	}
	var pointing []string
	for _, tag := range tags {
		d, err := remote.Head(n.Tag(tag), r.remoteOpts(ctx)...)
		if err == nil && d.Digest.String() == p.Digest {
			pointing = append(pointing, tag)
		} else if err != nil && !errors.Is(oci.Sentinel(err), providers.ErrNotFound) {
			return oci.Wrap(fmt.Sprintf("head %s:%s", n, tag), err)
		}
	}
	if err := remote.Delete(n.Digest(p.Digest), r.remoteOpts(ctx)...); err != nil && !errors.Is(oci.Sentinel(err), providers.ErrNotFound) {
		return oci.Wrap(fmt.Sprintf("delete %s@%s", n, p.Digest), err)
	}
	for _, tag := range pointing {
		// Registries that keep tags apart from manifests need them deleted
		// too; the others already dropped them with the manifest.
		err := remote.Delete(n.Tag(tag), r.remoteOpts(ctx)...)
		if s := oci.Sentinel(err); err != nil && s != providers.ErrNotFound && s != providers.ErrUnimplemented && s != providers.ErrInvalid {
			return oci.Wrap(fmt.Sprintf("delete %s:%s", n, tag), err)
		}
	}
	return nil
}
