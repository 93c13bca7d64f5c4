package fake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
)

// Registry is the rack's providers.Registry; it also implements
// providers.ImageLister and providers.ImageDeleter. Images get into it with
// Rack.Push.
type Registry struct{ r *Rack }

var (
	_ providers.Registry     = (*Registry)(nil)
	_ providers.ImageLister  = (*Registry)(nil)
	_ providers.ImageDeleter = (*Registry)(nil)
)

// ImageConfig is the configuration of an image pushed with Rack.Push. It
// alone determines the image's digest.
type ImageConfig struct {
	// Entrypoint, Cmd, Env ("KEY=value") and WorkingDir become the
	// providers.Image fields of the same names.
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
}

type repo struct {
	name   string
	images map[string]*image // by digest
	tags   map[string]string // tag -> digest
}

type image struct {
	cfg     ImageConfig
	size    int64
	created time.Time
}

var (
	repoNameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagRE      = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE   = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

func validRepoName(name string) error {
	if len(name) > 256 || !repoNameRE.MatchString(name) {
		return providers.Invalidf("fake registry: repository name %q: use lowercase letters, digits and separators", name)
	}
	return nil
}

// Push stores an image in the repository (creating the repository if
// needed), points tag at it unless tag is empty, and returns it as Resolve
// would. The digest is the SHA-256 of the configuration (nil means an empty
// one), so the same configuration always has the same digest. Push is a
// test helper, not a provider call: it is not recorded and no hook sees
// it. An invalid repository name or tag panics.
func (r *Rack) Push(repoName, tag string, cfg *ImageConfig) providers.Image {
	if err := validRepoName(repoName); err != nil {
		panic(err)
	}
	if tag != "" && !tagRE.MatchString(tag) {
		panic(fmt.Sprintf("fake: Push: invalid tag %q", tag))
	}
	var c ImageConfig
	if cfg != nil {
		c = ImageConfig{
			Entrypoint: slices.Clone(cfg.Entrypoint),
			Cmd:        slices.Clone(cfg.Cmd),
			Env:        slices.Clone(cfg.Env),
			WorkingDir: cfg.WorkingDir,
		}
	}
	raw, _ := json.Marshal(c)
	sum := sha256.Sum256(raw)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	rp := r.ensureRepo(repoName)
	if rp.images[digest] == nil {
		rp.images[digest] = &image{cfg: c, size: int64(len(raw)), created: r.now()}
	}
	if tag != "" {
		rp.tags[tag] = digest
	}
	return r.imageOf(rp, digest, tag)
}

func (r *Rack) ensureRepo(name string) *repo {
	rp, ok := r.repos[name]
	if !ok {
		rp = &repo{name: name, images: map[string]*image{}, tags: map[string]string{}}
		r.repos[name] = rp
	}
	return rp
}

func (r *Rack) repoURI(name string) string { return r.registryHost + "/" + name }

func (r *Rack) imageOf(rp *repo, digest, tag string) providers.Image {
	img := rp.images[digest]
	return providers.Image{
		Repository: r.repoURI(rp.name),
		Digest:     digest,
		Tag:        tag,
		Entrypoint: slices.Clone(img.cfg.Entrypoint),
		Cmd:        slices.Clone(img.cfg.Cmd),
		Env:        slices.Clone(img.cfg.Env),
		WorkingDir: img.cfg.WorkingDir,
		Size:       img.size,
		Created:    img.created,
	}
}

// hasImage reports whether the image is in the registry; r.mu is held.
func (r *Rack) hasImage(img providers.Image) bool {
	name, ok := strings.CutPrefix(img.Repository, r.registryHost+"/")
	if !ok {
		return false
	}
	rp, ok := r.repos[name]
	return ok && rp.images[img.Digest] != nil
}

// EnsureRepository implements providers.Registry.
func (g *Registry) EnsureRepository(ctx context.Context, name string) (providers.Repository, error) {
	c := Call{Provider: "Registry", Method: "EnsureRepository", Key: name, Args: []any{name}}
	return do(g.r, ctx, c, func(ctx context.Context) (providers.Repository, error) {
		if h := g.r.currentHooks().Registry.EnsureRepository; h != nil {
			return h(ctx, name, g.ensureRepository)
		}
		return g.ensureRepository(ctx, name)
	})
}

func (g *Registry) ensureRepository(ctx context.Context, name string) (providers.Repository, error) {
	if err := g.r.enter(ctx, "Registry.EnsureRepository"); err != nil {
		return providers.Repository{}, err
	}
	if err := validRepoName(name); err != nil {
		return providers.Repository{}, err
	}
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	g.r.ensureRepo(name)
	return providers.Repository{Name: name, URI: g.r.repoURI(name)}, nil
}

// parseRef splits a reference into repository name, tag and digest. A
// reference naming another registry host returns ErrNotFound.
func (g *Registry) parseRef(ref string) (name, tag, digest string, err error) {
	rest := ref
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest, digest = rest[:i], rest[i+1:]
		if !digestRE.MatchString(digest) {
			return "", "", "", providers.Invalidf("fake registry: reference %q: malformed digest", ref)
		}
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		rest, tag = rest[:i], rest[i+1:]
		if !tagRE.MatchString(tag) {
			return "", "", "", providers.Invalidf("fake registry: reference %q: malformed tag", ref)
		}
	}
	if host, path, ok := strings.Cut(rest, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		if err := validRepoName(path); err != nil {
			return "", "", "", err
		}
		if host != g.r.registryHost {
			return "", "", "", fmt.Errorf("fake registry: reference %q names another registry: %w", ref, providers.ErrNotFound)
		}
		rest = path
	}
	if err := validRepoName(rest); err != nil {
		return "", "", "", providers.Invalidf("fake registry: malformed reference %q", ref)
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	return rest, tag, digest, nil
}

// Resolve implements providers.Registry. A reference without tag or digest
// means the tag "latest"; a reference naming another registry host returns
// ErrNotFound.
func (g *Registry) Resolve(ctx context.Context, ref string) (providers.Image, error) {
	c := Call{Provider: "Registry", Method: "Resolve", Key: ref, Args: []any{ref}}
	return do(g.r, ctx, c, func(ctx context.Context) (providers.Image, error) {
		if h := g.r.currentHooks().Registry.Resolve; h != nil {
			return h(ctx, ref, g.resolve)
		}
		return g.resolve(ctx, ref)
	})
}

func (g *Registry) resolve(ctx context.Context, ref string) (providers.Image, error) {
	if err := g.r.enter(ctx, "Registry.Resolve"); err != nil {
		return providers.Image{}, err
	}
	name, tag, digest, err := g.parseRef(ref)
	if err != nil {
		return providers.Image{}, err
	}
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	rp, ok := g.r.repos[name]
	if !ok {
		return providers.Image{}, fmt.Errorf("fake registry: resolve %q: repository %q: %w", ref, name, providers.ErrNotFound)
	}
	if digest == "" {
		d, ok := rp.tags[tag]
		if !ok {
			return providers.Image{}, fmt.Errorf("fake registry: resolve %q: tag %q: %w", ref, tag, providers.ErrNotFound)
		}
		digest = d
	} else if rp.images[digest] == nil {
		return providers.Image{}, fmt.Errorf("fake registry: resolve %q: digest %s: %w", ref, digest, providers.ErrNotFound)
	}
	return g.r.imageOf(rp, digest, tag), nil
}

// Credentials implements providers.Registry. They expire 12 hours after
// the call, like ECR's.
func (g *Registry) Credentials(ctx context.Context, repoName string) (providers.Credentials, error) {
	c := Call{Provider: "Registry", Method: "Credentials", Key: repoName, Args: []any{repoName}}
	return do(g.r, ctx, c, func(ctx context.Context) (providers.Credentials, error) {
		if h := g.r.currentHooks().Registry.Credentials; h != nil {
			return h(ctx, repoName, g.credentials)
		}
		return g.credentials(ctx, repoName)
	})
}

func (g *Registry) credentials(ctx context.Context, repoName string) (providers.Credentials, error) {
	if err := g.r.enter(ctx, "Registry.Credentials"); err != nil {
		return providers.Credentials{}, err
	}
	if err := validRepoName(repoName); err != nil {
		return providers.Credentials{}, err
	}
	return providers.Credentials{
		Registry: g.r.registryHost,
		Username: "fake",
		Password: "fake-password",
		Expires:  g.r.now().Add(12 * time.Hour),
	}, nil
}

// ListImages implements providers.ImageLister. Each image's Tag is its
// lexically smallest tag, or empty when it has none.
func (g *Registry) ListImages(ctx context.Context, repoName string) ([]providers.Image, error) {
	c := Call{Provider: "Registry", Method: "ListImages", Key: repoName, Args: []any{repoName}}
	return do(g.r, ctx, c, func(ctx context.Context) ([]providers.Image, error) {
		if h := g.r.currentHooks().Registry.ListImages; h != nil {
			return h(ctx, repoName, g.listImages)
		}
		return g.listImages(ctx, repoName)
	})
}

func (g *Registry) listImages(ctx context.Context, repoName string) ([]providers.Image, error) {
	if err := g.r.enter(ctx, "Registry.ListImages"); err != nil {
		return nil, err
	}
	if err := validRepoName(repoName); err != nil {
		return nil, err
	}
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	rp, ok := g.r.repos[repoName]
	if !ok {
		return nil, fmt.Errorf("fake registry: list images of %q: %w", repoName, providers.ErrNotFound)
	}
	tags := map[string]string{}
	for _, t := range slices.Sorted(maps.Keys(rp.tags)) {
		if _, seen := tags[rp.tags[t]]; !seen {
			tags[rp.tags[t]] = t
		}
	}
	out := []providers.Image{}
	for _, d := range slices.Sorted(maps.Keys(rp.images)) {
		out = append(out, g.r.imageOf(rp, d, tags[d]))
	}
	return out, nil
}

// DeleteImage implements providers.ImageDeleter. A missing repository or
// image returns nil; a malformed digest returns ErrInvalid.
func (g *Registry) DeleteImage(ctx context.Context, repoName, digest string) error {
	c := Call{Provider: "Registry", Method: "DeleteImage", Key: repoName, Args: []any{repoName, digest}}
	return do0(g.r, ctx, c, func(ctx context.Context) error {
		if h := g.r.currentHooks().Registry.DeleteImage; h != nil {
			return h(ctx, repoName, digest, g.deleteImage)
		}
		return g.deleteImage(ctx, repoName, digest)
	})
}

func (g *Registry) deleteImage(ctx context.Context, repoName, digest string) error {
	if err := g.r.enter(ctx, "Registry.DeleteImage"); err != nil {
		return err
	}
	if err := validRepoName(repoName); err != nil {
		return err
	}
	if !digestRE.MatchString(digest) {
		return providers.Invalidf("fake registry: delete image: malformed digest %q", digest)
	}
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	rp, ok := g.r.repos[repoName]
	if !ok {
		return nil
	}
	delete(rp.images, digest)
	maps.DeleteFunc(rp.tags, func(_, d string) bool { return d == digest })
	return nil
}
