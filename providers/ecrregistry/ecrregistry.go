// Package ecrregistry is a providers.Registry on Amazon ECR.
//
//	reg := ecrregistry.New(ecr.NewFromConfig(cfg), nil)
//	repo, err := reg.EnsureRepository(ctx, "web")
//	img, err := reg.Resolve(ctx, "web:v2") // 123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:...
//
// The control plane (the ECR API) creates repositories, resolves tags and
// digests (BatchGetImage), lists (ListImages) and deletes
// (BatchDeleteImage) images. The image configuration that Resolve reports
// (entrypoint, command, environment, working directory, creation time) is
// read over the OCI data path of the registry host, with the credentials
// of Credentials, through Options.Transport (to Options.Endpoint when it
// is set); the pinned digest is always the
// one ECR reports.
//
// # Credentials
//
// Credentials come from GetAuthorizationToken (user "AWS", a 12-hour
// password, the registry host of its proxy endpoint). They are cached
// until Options.RefreshBefore (15 minutes by default) before they expire
// and shared: concurrent callers that find the cache stale wait for one
// GetAuthorizationToken call, which runs detached from the first caller's
// context (context.WithoutCancel, bounded by Options.TokenTimeout) so
// that one caller giving up does not fail the others. A caller whose own
// context ends stops waiting with its context's error.
//
// # Optional capabilities
//
// Registry implements providers.ImageLister (ListImages, paged; each image
// with its first tag in lexical order; untagged images included) and
// providers.ImageDeleter (BatchDeleteImage by digest, which removes every
// tag of the image).
//
// # Errors
//
// ECR errors are mapped by internal/awserr and wrap the sentinel and the
// SDK error: RepositoryNotFoundException, ImageNotFoundException and
// per-image ImageNotFound failures are providers.ErrNotFound;
// InvalidParameterException, malformed references and names
// providers.ErrInvalid; AccessDeniedException providers.ErrPermission;
// ThrottlingException providers.ErrThrottled; ServerException and 5xx
// providers.ErrUnavailable. Data-path errors are mapped by registry error
// code (see package ociregistry). A canceled context stays a context error.
//
// # Permissions
//
//	ecr:DescribeRepositories    (EnsureRepository)
//	ecr:CreateRepository        (EnsureRepository)
//	ecr:BatchGetImage           (Resolve)
//	ecr:GetDownloadUrlForLayer  (Resolve reads the configuration blob)
//	ecr:GetAuthorizationToken   (Credentials, Resolve)
//	ecr:ListImages              (ImageLister)
//	ecr:BatchDeleteImage        (ImageDeleter)
//
// Pushing over the data path with the returned credentials also needs
// ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload,
// ecr:BatchCheckLayerAvailability and ecr:PutImage.
package ecrregistry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/oci"
	"github.com/convox-go/convox/providers"
)

// API is the part of the ECR client the registry uses; *ecr.Client
// implements it.
type API interface {
	DescribeRepositories(context.Context, *ecr.DescribeRepositoriesInput, ...func(*ecr.Options)) (*ecr.DescribeRepositoriesOutput, error)
	CreateRepository(context.Context, *ecr.CreateRepositoryInput, ...func(*ecr.Options)) (*ecr.CreateRepositoryOutput, error)
	BatchGetImage(context.Context, *ecr.BatchGetImageInput, ...func(*ecr.Options)) (*ecr.BatchGetImageOutput, error)
	ListImages(context.Context, *ecr.ListImagesInput, ...func(*ecr.Options)) (*ecr.ListImagesOutput, error)
	BatchDeleteImage(context.Context, *ecr.BatchDeleteImageInput, ...func(*ecr.Options)) (*ecr.BatchDeleteImageOutput, error)
	GetAuthorizationToken(context.Context, *ecr.GetAuthorizationTokenInput, ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// Options configure a Registry. Every zero field takes its default.
type Options struct {
	// RegistryID is the account whose registry is used; empty means the
	// caller's own.
	RegistryID string
	// Transport carries data-path requests to the registry host (proxies,
	// custom CAs); nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// Endpoint, when set, receives the data-path requests for the
	// registry's host (the host of Credentials), with the same path, query
	// and credentials: a mirror or proxy trusted with the registry's
	// credentials, or an emulator's registry. Requests for other hosts,
	// such as the storage URLs ECR redirects layer downloads to, go out
	// unchanged. Only its scheme (http or https) and host are used; any
	// other value fails each data-path request with providers.ErrInvalid.
	// The ECR API's own endpoint is the ECR client's (api) setting.
	Endpoint *url.URL
	// Platform chooses the image of a multi-platform index whose
	// configuration Resolve reports ("linux/amd64" by default; a value
	// v1.ParsePlatform rejects also means the default).
	Platform string
	// RefreshBefore is how long before they expire cached credentials are
	// renewed (15 minutes by default).
	RefreshBefore time.Duration
	// TokenTimeout bounds one GetAuthorizationToken call (30 seconds by default).
	TokenTimeout time.Duration
}

// Registry is the ECR registry of one account and region. It is safe for
// concurrent use.
type Registry struct {
	api      API
	opts     Options
	platform v1.Platform

	flight singleflight.Group
	mu     sync.Mutex
	creds  providers.Credentials
}

var (
	_ providers.Registry     = (*Registry)(nil)
	_ providers.ImageLister  = (*Registry)(nil)
	_ providers.ImageDeleter = (*Registry)(nil)
)

// New returns a Registry using api (usually an *ecr.Client). opts may be nil.
func New(api API, opts *Options) *Registry {
	r := &Registry{api: api}
	if opts != nil {
		r.opts = *opts
	}
	if r.opts.RefreshBefore == 0 {
		r.opts.RefreshBefore = 15 * time.Minute
	}
	if r.opts.TokenTimeout == 0 {
		r.opts.TokenTimeout = 30 * time.Second
	}
	r.platform = v1.Platform{OS: "linux", Architecture: "amd64"}
	if r.opts.Platform != "" {
		if p, err := v1.ParsePlatform(r.opts.Platform); err == nil {
			r.platform = *p
		}
	}
	return r
}

func (r *Registry) registryID() *string {
	if r.opts.RegistryID == "" {
		return nil
	}
	return aws.String(r.opts.RegistryID)
}

func validRepository(name string) error {
	if len(name) < 2 {
		return providers.Invalidf("repository name %q: ECR names have 2 to 256 characters", name)
	}
	return oci.ValidRepository(name)
}

// EnsureRepository returns the repository, creating it when missing.
func (r *Registry) EnsureRepository(ctx context.Context, name string) (providers.Repository, error) {
	if err := ctx.Err(); err != nil {
		return providers.Repository{}, err
	}
	if err := validRepository(name); err != nil {
		return providers.Repository{}, err
	}
	repo, err := r.describeRepository(ctx, name)
	if !errors.Is(err, providers.ErrNotFound) {
		return repo, err
	}
	out, err := r.api.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(name), RegistryId: r.registryID()})
	switch {
	case err == nil:
		return providers.Repository{Name: name, URI: aws.ToString(out.Repository.RepositoryUri)}, nil
	case awserr.Code(err) == "RepositoryAlreadyExistsException":
		return r.describeRepository(ctx, name) // created concurrently
	}
	return providers.Repository{}, awserr.Wrap(fmt.Sprintf("create repository %q", name), err)
}

func (r *Registry) describeRepository(ctx context.Context, name string) (providers.Repository, error) {
	out, err := r.api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{name}, RegistryId: r.registryID()})
	if err != nil {
		return providers.Repository{}, awserr.Wrap(fmt.Sprintf("describe repository %q", name), err)
	}
	for _, repo := range out.Repositories {
		if aws.ToString(repo.RepositoryName) == name {
			return providers.Repository{Name: name, URI: aws.ToString(repo.RepositoryUri)}, nil
		}
	}
	return providers.Repository{}, fmt.Errorf("describe repository %q: %w", name, providers.ErrNotFound)
}

// Credentials returns cached or fresh credentials for the data path; see
// the package documentation.
func (r *Registry) Credentials(ctx context.Context, repo string) (providers.Credentials, error) {
	if err := ctx.Err(); err != nil {
		return providers.Credentials{}, err
	}
	r.mu.Lock()
	c := r.creds
	r.mu.Unlock()
	if c.Password != "" && time.Now().Before(c.Expires.Add(-r.opts.RefreshBefore)) {
		return c, nil
	}
	ch := r.flight.DoChan("token", func() (any, error) {
		// Detached: the first caller's cancellation must not fail the others.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.TokenTimeout)
		defer cancel()
		return r.fetchCredentials(tctx)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return providers.Credentials{}, res.Err
		}
		return res.Val.(providers.Credentials), nil
	case <-ctx.Done():
		return providers.Credentials{}, ctx.Err()
	}
}

func (r *Registry) fetchCredentials(ctx context.Context) (providers.Credentials, error) {
	out, err := r.api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return providers.Credentials{}, awserr.Wrap("get authorization token", err)
	}
	if len(out.AuthorizationData) == 0 {
		return providers.Credentials{}, fmt.Errorf("get authorization token: %w: no authorization data", providers.ErrUnavailable)
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	user, pass, ok := strings.Cut(string(raw), ":")
	if err != nil || !ok {
		return providers.Credentials{}, fmt.Errorf("get authorization token: %w: malformed token", providers.ErrUnavailable)
	}
	host := aws.ToString(d.ProxyEndpoint)
	host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
	if i := strings.IndexByte(host, '.'); r.opts.RegistryID != "" && i > 0 {
		// The token opens every registry the caller may use; the host is
		// the named account's.
		host = r.opts.RegistryID + host[i:]
	}
	c := providers.Credentials{Registry: strings.TrimSuffix(host, "/"), Username: user, Password: pass, Expires: aws.ToTime(d.ExpiresAt)}
	r.mu.Lock()
	r.creds = c
	r.mu.Unlock()
	return c, nil
}

// acceptedMediaTypes are the manifest types BatchGetImage may return.
var acceptedMediaTypes = []string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}

// Resolve pins ref with BatchGetImage and reads the image configuration
// over the data path.
func (r *Registry) Resolve(ctx context.Context, ref string) (providers.Image, error) {
	if err := ctx.Err(); err != nil {
		return providers.Image{}, err
	}
	if strings.TrimSpace(ref) == "" {
		return providers.Image{}, providers.Invalidf("empty image reference")
	}
	creds, err := r.Credentials(ctx, "")
	if err != nil {
		return providers.Image{}, err
	}
	p, err := oci.Parse(ref, creds.Registry)
	if err != nil {
		return providers.Image{}, err
	}
	if len(p.Repository) < 2 {
		return providers.Image{}, providers.Invalidf("reference %q: ECR repository names have 2 to 256 characters", ref)
	}
	id := types.ImageIdentifier{}
	if p.Digest != "" {
		id.ImageDigest = aws.String(p.Digest)
	} else {
		id.ImageTag = aws.String(p.Tag)
	}
	out, err := r.api.BatchGetImage(ctx, &ecr.BatchGetImageInput{
		RepositoryName: aws.String(p.Repository), ImageIds: []types.ImageIdentifier{id},
		AcceptedMediaTypes: acceptedMediaTypes, RegistryId: r.registryID(),
	})
	if err != nil {
		return providers.Image{}, awserr.Wrap(fmt.Sprintf("resolve %q", ref), err)
	}
	if len(out.Images) == 0 {
		return providers.Image{}, imageFailure(fmt.Sprintf("resolve %q", ref), out.Failures)
	}
	digest := aws.ToString(out.Images[0].ImageId.ImageDigest)
	uri := creds.Registry + "/" + p.Repository
	nref, err := name.NewDigest(uri+"@"+digest, name.StrictValidation)
	if err != nil {
		return providers.Image{}, fmt.Errorf("resolve %q: %w: %w", ref, providers.ErrInvalid, err)
	}
	img, err := oci.Describe(nref, uri, p.Tag, r.remoteOpts(ctx, creds)...)
	if err != nil {
		return providers.Image{}, fmt.Errorf("resolve %q: %w", ref, err)
	}
	img.Digest = digest
	if p.Digest != "" {
		img.Tag = ""
	}
	return img, nil
}

func (r *Registry) remoteOpts(ctx context.Context, c providers.Credentials) []remote.Option {
	o := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password}),
		remote.WithPlatform(r.platform),
	}
	t := r.opts.Transport
	if r.opts.Endpoint != nil {
		if t == nil {
			t = remote.DefaultTransport
		}
		t = &hostRedirect{host: c.Registry, target: r.opts.Endpoint, base: t}
	}
	if t != nil {
		o = append(o, remote.WithTransport(t))
	}
	return o
}

// hostRedirect sends the requests for host to target (Options.Endpoint)
// and every other request unchanged, through base.
type hostRedirect struct {
	host   string
	target *url.URL
	base   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (h *hostRedirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Host, h.host) {
		return h.base.RoundTrip(req)
	}
	if (h.target.Scheme != "http" && h.target.Scheme != "https") || h.target.Host == "" {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, providers.Invalidf("ecrregistry: endpoint %q is not an http or https URL with a host", h.target.Redacted())
	}
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = h.target.Scheme, h.target.Host, h.target.Host
	return h.base.RoundTrip(req)
}

// imageFailure maps the per-image failure of a batch call.
func imageFailure(op string, failures []types.ImageFailure) error {
	if len(failures) == 0 {
		return fmt.Errorf("%s: %w: no image returned", op, providers.ErrNotFound)
	}
	f := failures[0]
	cause := fmt.Errorf("%s: %s", f.FailureCode, aws.ToString(f.FailureReason))
	switch f.FailureCode {
	case types.ImageFailureCodeImageNotFound, types.ImageFailureCodeImageTagDoesNotMatchDigest, types.ImageFailureCodeImageReferencedByManifestList:
		return awserr.As(op, providers.ErrNotFound, cause)
	case types.ImageFailureCodeInvalidImageDigest, types.ImageFailureCodeInvalidImageTag, types.ImageFailureCodeMissingDigestAndTag:
		return awserr.As(op, providers.ErrInvalid, cause)
	}
	return awserr.As(op, providers.ErrUnavailable, cause)
}

// ListImages returns the repository's images ordered by digest.
func (r *Registry) ListImages(ctx context.Context, repo string) ([]providers.Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validRepository(repo); err != nil {
		return nil, err
	}
	creds, err := r.Credentials(ctx, repo)
	if err != nil {
		return nil, err
	}
	tags := map[string][]string{}
	var token *string
	for {
		out, err := r.api.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String(repo), NextToken: token, MaxResults: aws.Int32(1000), RegistryId: r.registryID()})
		if err != nil {
			return nil, awserr.Wrap(fmt.Sprintf("list images of %q", repo), err)
		}
		for _, id := range out.ImageIds {
			d := aws.ToString(id.ImageDigest)
			if _, ok := tags[d]; !ok {
				tags[d] = nil // listed, maybe untagged
			}
			if t := aws.ToString(id.ImageTag); t != "" {
				tags[d] = append(tags[d], t)
			}
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	imgs := make([]providers.Image, 0, len(tags))
	for _, d := range slices.Sorted(maps.Keys(tags)) {
		img := providers.Image{Repository: creds.Registry + "/" + repo, Digest: d}
		if ts := tags[d]; len(ts) > 0 {
			img.Tag = slices.Min(ts)
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

// DeleteImage deletes the image with digest and all its tags; a missing
// image or repository returns nil.
func (r *Registry) DeleteImage(ctx context.Context, repo, digest string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validRepository(repo); err != nil {
		return err
	}
	if _, err := oci.Parse(repo+"@"+digest, ""); err != nil {
		return err
	}
	out, err := r.api.BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{
		RepositoryName: aws.String(repo), ImageIds: []types.ImageIdentifier{{ImageDigest: aws.String(digest)}}, RegistryId: r.registryID(),
	})
	if err != nil {
		if awserr.Code(err) == "RepositoryNotFoundException" {
			return nil
		}
		return awserr.Wrap(fmt.Sprintf("delete image %s@%s", repo, digest), err)
	}
	for _, f := range out.Failures {
		if f.FailureCode != types.ImageFailureCodeImageNotFound {
			return imageFailure(fmt.Sprintf("delete image %s@%s", repo, digest), out.Failures)
		}
	}
	return nil
}
