package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/convox-go/convox/providers"
)

// Registry is the rack's providers.Registry (with ImageLister and
// ImageDeleter): one OCI image layout per repository under registry/, and
// an OCI distribution API server on 127.0.0.1 over the same layouts.
//
// The layouts are the only copy of the data. Manifests, tags and the
// catalog are served straight from a layout's index.json, where a tag is
// the "org.opencontainers.image.ref.name" annotation of a descriptor; blobs
// from its blobs/ directory. Blob uploads (monolithic and chunked) spool
// to files under registry/.uploads and move into the layout once their
// digest is verified, so the layout on disk can also be read directly by
// any OCI tool.
//
// Every request to the API needs the rack's credential (Credentials), pulls
// included: the listener is reachable by every user of the machine, and
// images often hold secrets. The rack itself reads images from disk.
// Every blob and manifest is verified against its digest when it is read;
// a corrupt one is never served or unpacked as valid.
type Registry struct {
	dir     string
	host    string // 127.0.0.1:<port>
	cred    credential
	uploads *uploads
	log     *slog.Logger
	ioIdle  time.Duration // request body and blob response idle deadline

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per repository: index.json updates
}

var (
	_ providers.Registry     = (*Registry)(nil)
	_ providers.ImageLister  = (*Registry)(nil)
	_ providers.ImageDeleter = (*Registry)(nil)
)

// refNameAnnotation is the OCI layout annotation holding a descriptor's tag.
const refNameAnnotation = "org.opencontainers.image.ref.name"

const (
	// maxManifestBytes bounds a manifest or index, as distribution does.
	maxManifestBytes = 4 << 20
	// maxConfigBytes bounds an image configuration read into memory.
	maxConfigBytes = 64 << 20
	// maxRepoManifests bounds the descriptors of a repository's index.json.
	maxRepoManifests = 10000
	// maxIndexBytes bounds a repository's index.json, far above what
	// maxRepoManifests descriptors take.
	maxIndexBytes = 64 << 20
)

var (
	repoPattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// newRegistry opens the registry in dir, with blobs of at most maxBlob
// bytes (DefaultRegistryMaxBlobBytes when not positive); logger receives
// the corrupt blobs it finds.
func newRegistry(dir string, maxBlob int64, logger *slog.Logger) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fsError("open registry", err)
	}
	if maxBlob <= 0 {
		maxBlob = DefaultRegistryMaxBlobBytes
	}
	cred, err := loadCredential(dir, logger)
	if err != nil {
		return nil, err
	}
	ups, err := newUploads(filepath.Join(dir, uploadDirName), maxBlob)
	if err != nil {
		return nil, err
	}
	return &Registry{dir: dir, cred: cred, uploads: ups, log: logger, ioIdle: defaultIOIdle, locks: map[string]*sync.Mutex{}}, nil
}

// Host returns the registry's address ("127.0.0.1:<port>"), the host part
// of every Repository.URI.
func (r *Registry) Host() string { return r.host }

func validateRepo(repo string) error {
	if len(repo) > 255 || !repoPattern.MatchString(repo) {
		return providers.Invalidf("repository name %q: use lowercase letters and digits separated by '.', '_', '-' or '/'", repo)
	}
	return nil
}

func (r *Registry) repoDir(repo string) string {
	return filepath.Join(r.dir, url.PathEscape(repo))
}

func (r *Registry) lock(repo string) func() {
	r.mu.Lock()
	l := r.locks[repo]
	if l == nil {
		l = &sync.Mutex{}
		r.locks[repo] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (r *Registry) repository(repo string) providers.Repository {
	return providers.Repository{Name: repo, URI: r.host + "/" + repo}
}

// EnsureRepository creates the repository's image layout if it does not
// exist and returns the repository.
func (r *Registry) EnsureRepository(ctx context.Context, repo string) (providers.Repository, error) {
	if err := ctx.Err(); err != nil {
		return providers.Repository{}, err
	}
	if err := validateRepo(repo); err != nil {
		return providers.Repository{}, err
	}
	if err := r.ensureLayout(repo); err != nil {
		return providers.Repository{}, err
	}
	return r.repository(repo), nil
}

func (r *Registry) ensureLayout(repo string) error {
	defer r.lock(repo)()
	dir := r.repoDir(repo)
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o700); err != nil {
		return fsError("create repository "+repo, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600); err != nil {
		return fsError("create repository "+repo, err)
	}
	empty := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	if err := writeJSONAtomic(filepath.Join(dir, "index.json"), empty); err != nil {
		return fsError("create repository "+repo, err)
	}
	return nil
}

func (r *Registry) exists(repo string) bool {
	_, err := os.Stat(filepath.Join(r.repoDir(repo), "index.json"))
	return err == nil
}

func (r *Registry) readIndex(repo string) (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(r.repoDir(repo), "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("repository %q: %w", repo, providers.ErrNotFound)
	}
	if err != nil {
		return nil, fsError("read repository "+repo, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIndexBytes+1))
	if err != nil {
		return nil, fsError("read repository "+repo, err)
	}
	if len(data) > maxIndexBytes {
		return nil, fmt.Errorf("repository %q has an index.json over %d bytes (file %s): %w", repo, maxIndexBytes, f.Name(), providers.ErrUnavailable)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("repository %q has a corrupt index.json (file %s): %w: %w", repo, f.Name(), providers.ErrUnavailable, err)
	}
	return im, nil
}

// updateIndex applies fn to the repository's index.json under its lock;
// an error of fn leaves the index unchanged.
func (r *Registry) updateIndex(repo string, fn func(*v1.IndexManifest) error) error {
	defer r.lock(repo)()
	im, err := r.readIndex(repo)
	if err != nil {
		return err
	}
	if err := fn(im); err != nil {
		return err
	}
	if im.Manifests == nil {
		im.Manifests = []v1.Descriptor{}
	}
	if err := writeJSONAtomic(filepath.Join(r.repoDir(repo), "index.json"), im); err != nil {
		return fsError("write repository "+repo, err)
	}
	return nil
}

// errRepositoryFull is the error of a repository at maxRepoManifests.
var errRepositoryFull = fmt.Errorf("the repository holds %d manifests, its limit: delete images first: %w", maxRepoManifests, providers.ErrInvalid)

// tag points tag at desc (removing it from any other descriptor); an empty
// tag records the manifest untagged unless it is already present.
func (r *Registry) tag(repo, tag string, desc v1.Descriptor) error {
	return r.updateIndex(repo, func(im *v1.IndexManifest) error {
		if len(im.Manifests) >= maxRepoManifests && !slices.ContainsFunc(im.Manifests, func(d v1.Descriptor) bool {
			return d.Digest == desc.Digest || (tag != "" && d.Annotations[refNameAnnotation] == tag)
		}) {
			return errRepositoryFull
		}
		if tag == "" {
			for _, d := range im.Manifests {
				if d.Digest == desc.Digest {
					return nil
				}
			}
			im.Manifests = append(im.Manifests, desc)
			return nil
		}
		// The image the tag pointed at stays, untagged, unless another
		// descriptor still lists it.
		count := map[v1.Hash]int{}
		for _, d := range im.Manifests {
			count[d.Digest]++
		}
		for i := range im.Manifests {
			d := &im.Manifests[i]
			if d.Annotations[refNameAnnotation] == tag {
				d.Annotations = nil
			}
		}
		im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool {
			if d.Annotations[refNameAnnotation] == "" && (count[d.Digest] > 1 || d.Digest == desc.Digest) {
				count[d.Digest]--
				return true
			}
			return false
		})
		desc.Annotations = map[string]string{refNameAnnotation: tag}
		im.Manifests = append(im.Manifests, desc)
		return nil
	})
}

func (r *Registry) blobPath(repo string, h v1.Hash) string {
	return filepath.Join(r.repoDir(repo), "blobs", h.Algorithm, h.Hex)
}

func (r *Registry) hasBlob(repo string, h v1.Hash) bool {
	_, err := os.Stat(r.blobPath(repo, h))
	return err == nil
}

// errDigestMismatch is the error of content whose digest is not the one
// given for it.
var errDigestMismatch = errors.New("digest mismatch")

// writeBlob stores the content of rd as blob h of repo: it spools it (up to
// the size limit), verifies its digest and only then creates the
// repository if needed and moves the blob in, so that a failed write
// leaves no repository behind.
func (r *Registry) writeBlob(repo string, h v1.Hash, rd io.Reader) error {
	if h.Algorithm != "sha256" {
		return providers.Invalidf("blob digest %s: only sha256 is supported", h)
	}
	if r.hasBlob(repo, h) {
		return nil
	}
	path, got, err := r.uploads.spool(rd)
	if err != nil {
		return err
	}
	defer os.Remove(path) // no-op once moved
	if got != h {
		return fmt.Errorf("%w: blob content has digest %s, want %s: %w", errDigestMismatch, got, h, providers.ErrInvalid)
	}
	return r.commitBlob(repo, h, path)
}

// commitBlob moves the verified file spooled into repo as blob h, creating
// the repository if needed. A blob already present stays; the caller
// removes spooled in every case.
func (r *Registry) commitBlob(repo string, h v1.Hash, spooled string) error {
	if err := r.ensureLayout(repo); err != nil {
		return err
	}
	dst := r.blobPath(repo, h)
	if r.hasBlob(repo, h) {
		return nil
	}
	f, err := os.Open(spooled)
	if err != nil {
		return fsError("write blob", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fsError("write blob", err)
	}
	if err := os.Rename(spooled, dst); err != nil {
		return fsError("write blob", err)
	}
	return fsError("write blob", syncDir(filepath.Dir(dst)))
}

// corruptDirName is where blobs found corrupt are moved, for inspection.
const corruptDirName = ".corrupt"

// corrupt handles blob h of repo, read from the open file f, whose content
// has digest got: it moves the file out of the layout (so that pushing
// the image again stores a good copy), logs it as an error naming the
// digest and the file, and returns the error describing it.
func (r *Registry) corrupt(repo string, h v1.Hash, f *os.File, got string) error {
	path := r.blobPath(repo, h)
	moved := ""
	if fi, err := f.Stat(); err == nil {
		if cur, err := os.Lstat(path); err == nil && os.SameFile(fi, cur) {
			dir := filepath.Join(r.dir, corruptDirName)
			dst := filepath.Join(dir, url.PathEscape(repo)+"-"+h.Hex+"-"+randomHex(4))
			if os.MkdirAll(dir, 0o700) == nil && os.Rename(path, dst) == nil {
				moved = dst
			}
		}
	}
	const fix = "push the image again (with a tool that skips images the registry has, delete the image first)"
	r.log.Error("registry blob is corrupt: its content does not match its digest; "+fix,
		"digest", h.String(), "file", path, "contentDigest", got, "movedTo", moved)
	return &corruptBlobError{want: h, got: got, file: path, hint: fix}
}

// readBlob returns the content of blob h of repo, at most limit bytes,
// verified against its digest.
func (r *Registry) readBlob(repo string, h v1.Hash, limit int64) ([]byte, error) {
	path := r.blobPath(repo, h)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s@%s: %w", repo, h, providers.ErrNotFound)
	}
	if err != nil {
		return nil, fsError("read blob", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fsError("read blob", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("blob %s@%s is over %d bytes, the limit of what is read into memory: %w", repo, h, limit, providers.ErrInvalid)
	}
	if got := digestOf(data); got != h {
		return nil, r.corrupt(repo, h, f, got.String())
	}
	return data, nil
}

// openBlob opens blob h of repo after verifying its whole content against
// its digest, so that a reader never sees a byte of a corrupt blob.
func (r *Registry) openBlob(repo string, h v1.Hash) (*os.File, error) {
	path := r.blobPath(repo, h)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s@%s: %w", repo, h, providers.ErrNotFound)
	}
	if err != nil {
		return nil, fsError("read blob", err)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		f.Close()
		return nil, fsError("read blob", err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.Hex || h.Algorithm != "sha256" {
		defer f.Close()
		return nil, r.corrupt(repo, h, f, "sha256:"+got)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fsError("read blob", err)
	}
	return f, nil
}

// PushImage writes img into the repository (created if needed) under tag
// and returns it resolved. Layers already present are not written again.
func (r *Registry) PushImage(ctx context.Context, repo, tag string, img v1.Image) (providers.Image, error) {
	if err := ctx.Err(); err != nil {
		return providers.Image{}, err
	}
	if tag != "" && !tagPattern.MatchString(tag) {
		return providers.Image{}, providers.Invalidf("tag %q: use up to 128 letters, digits, '_', '.' and '-'", tag)
	}
	if err := validateRepo(repo); err != nil {
		return providers.Image{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return providers.Image{}, providers.Invalidf("image layers: %v", err)
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return providers.Image{}, err
		}
		h, err := l.Digest()
		if err != nil {
			return providers.Image{}, providers.Invalidf("layer digest: %v", err)
		}
		if r.hasBlob(repo, h) {
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			return providers.Image{}, providers.Invalidf("layer %s: %v", h, err)
		}
		err = r.writeBlob(repo, h, rc)
		rc.Close()
		if err != nil {
			return providers.Image{}, err
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return providers.Image{}, providers.Invalidf("image config: %v", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return providers.Image{}, providers.Invalidf("image config: %v", err)
	}
	if err := r.writeBlob(repo, cfgName, bytes.NewReader(cfg)); err != nil {
		return providers.Image{}, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return providers.Image{}, providers.Invalidf("image manifest: %v", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return providers.Image{}, providers.Invalidf("image media type: %v", err)
	}
	desc := v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: digestOf(raw)}
	if err := r.writeBlob(repo, desc.Digest, bytes.NewReader(raw)); err != nil {
		return providers.Image{}, err
	}
	if err := r.tag(repo, tag, desc); err != nil {
		return providers.Image{}, err
	}
	return r.describe(repo, tag, desc.Digest)
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// parseRef splits a reference into repository, tag and digest. A reference
// naming another registry host returns ErrNotFound.
func (r *Registry) parseRef(ref string) (repo, tag string, digest v1.Hash, err error) {
	parsed, perr := name.ParseReference(ref, name.WithDefaultRegistry(r.host))
	if perr != nil {
		return "", "", v1.Hash{}, fmt.Errorf("image reference %q: %w: %w", ref, providers.ErrInvalid, perr)
	}
	if !r.isOurHost(parsed.Context().RegistryStr()) {
		return "", "", v1.Hash{}, fmt.Errorf("image reference %q names registry %s, not this rack's registry %s: %w", ref, parsed.Context().RegistryStr(), r.host, providers.ErrNotFound)
	}
	repo = parsed.Context().RepositoryStr()
	switch p := parsed.(type) {
	case name.Digest:
		digest, perr = v1.NewHash(p.DigestStr())
		if perr != nil {
			return "", "", v1.Hash{}, fmt.Errorf("image reference %q: %w: %w", ref, providers.ErrInvalid, perr)
		}
	case name.Tag:
		tag = p.TagStr()
	}
	return repo, tag, digest, nil
}

func (r *Registry) isOurHost(host string) bool {
	if host == r.host {
		return true
	}
	_, port, _ := net.SplitHostPort(r.host)
	return host == "localhost:"+port
}

// Resolve pins a reference ("web:v2", "web@sha256:...", or
// "127.0.0.1:<port>/web:v2") to the image's digest and configuration. A
// tag pointing at a multi-platform index resolves to the manifest for this
// machine's platform.
func (r *Registry) Resolve(ctx context.Context, ref string) (providers.Image, error) {
	if err := ctx.Err(); err != nil {
		return providers.Image{}, err
	}
	repo, tag, digest, err := r.parseRef(ref)
	if err != nil {
		return providers.Image{}, err
	}
	if tag != "" {
		im, err := r.readIndex(repo)
		if err != nil {
			return providers.Image{}, err
		}
		found := false
		for _, d := range im.Manifests {
			if d.Annotations[refNameAnnotation] == tag {
				digest, found = d.Digest, true
			}
		}
		if !found {
			return providers.Image{}, fmt.Errorf("image %s:%s: tag %w", repo, tag, providers.ErrNotFound)
		}
	} else if ok, err := r.listed(repo, digest); err != nil {
		return providers.Image{}, err
	} else if !ok {
		return providers.Image{}, fmt.Errorf("image %s@%s: %w", repo, digest, providers.ErrNotFound)
	}
	return r.describe(repo, tag, digest)
}

// listed reports whether the repository holds the manifest with the
// digest: listed in its index.json, or a child of a listed index.
func (r *Registry) listed(repo string, digest v1.Hash) (bool, error) {
	im, err := r.readIndex(repo)
	if err != nil {
		return false, err
	}
	for _, d := range im.Manifests {
		if d.Digest == digest {
			return true, nil
		}
	}
	for _, d := range im.Manifests {
		if !d.MediaType.IsIndex() {
			continue
		}
		raw, err := r.readBlob(repo, d.Digest, maxManifestBytes)
		if errors.Is(err, providers.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		child, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			continue
		}
		for _, c := range child.Manifests {
			if c.Digest == digest {
				return true, nil
			}
		}
	}
	return false, nil
}

// describe loads the image with the digest (choosing this platform's
// manifest from an index) and reports its configuration.
func (r *Registry) describe(repo, tag string, digest v1.Hash) (providers.Image, error) {
	img, pinned, err := r.image(repo, digest)
	if err != nil {
		return providers.Image{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return providers.Image{}, fmt.Errorf("image %s@%s config: %w: %w", repo, pinned, providers.ErrUnavailable, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return providers.Image{}, fmt.Errorf("image %s@%s manifest: %w: %w", repo, pinned, providers.ErrUnavailable, err)
	}
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return providers.Image{
		Repository: r.repository(repo).URI,
		Digest:     pinned.String(),
		Tag:        tag,
		Entrypoint: cfg.Config.Entrypoint,
		Cmd:        cfg.Config.Cmd,
		Env:        cfg.Config.Env,
		WorkingDir: cfg.Config.WorkingDir,
		Size:       size,
		Created:    cfg.Created.Time,
	}, nil
}

// image returns the image with the digest from the repository's blobs;
// an index is followed to the manifest for this platform.
func (r *Registry) image(repo string, digest v1.Hash) (v1.Image, v1.Hash, error) {
	for range 4 { // an index of indexes, at most a few levels deep
		raw, err := r.readBlob(repo, digest, maxManifestBytes)
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("image %s@%s: %w", repo, digest, err)
		}
		var probe struct {
			MediaType types.MediaType `json:"mediaType"`
			Manifests []v1.Descriptor `json:"manifests"`
			Config    *v1.Descriptor  `json:"config"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, v1.Hash{}, fmt.Errorf("image %s@%s is not a manifest: %w: %w", repo, digest, providers.ErrInvalid, err)
		}
		if probe.MediaType.IsIndex() || (probe.Config == nil && probe.Manifests != nil) {
			child, ok := pickPlatform(probe.Manifests)
			if !ok {
				return nil, v1.Hash{}, fmt.Errorf("image index %s@%s has no manifest for %s/%s: %w", repo, digest, runtime.GOOS, runtime.GOARCH, providers.ErrNotFound)
			}
			digest = child
			continue
		}
		mt := probe.MediaType
		if mt == "" {
			mt = types.OCIManifestSchema1
		}
		img, err := partial.CompressedToImage(&layoutImage{r: r, repo: repo, raw: raw, mt: mt})
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("image %s@%s: %w: %w", repo, digest, providers.ErrInvalid, err)
		}
		return img, digest, nil
	}
	return nil, v1.Hash{}, fmt.Errorf("image %s@%s: indexes nest too deeply: %w", repo, digest, providers.ErrInvalid)
}

func pickPlatform(descs []v1.Descriptor) (v1.Hash, bool) {
	for _, d := range descs {
		if d.Platform == nil || (d.Platform.OS == runtime.GOOS && d.Platform.Architecture == runtime.GOARCH) {
			return d.Digest, true
		}
	}
	return v1.Hash{}, false
}

// layoutImage is an image read from a repository's blobs by manifest.
type layoutImage struct {
	r    *Registry
	repo string
	raw  []byte
	mt   types.MediaType
}

func (li *layoutImage) RawManifest() ([]byte, error)        { return li.raw, nil }
func (li *layoutImage) MediaType() (types.MediaType, error) { return li.mt, nil }
func (li *layoutImage) RawConfigFile() ([]byte, error) {
	m, err := v1.ParseManifest(bytes.NewReader(li.raw))
	if err != nil {
		return nil, err
	}
	return li.r.readBlob(li.repo, m.Config.Digest, maxConfigBytes)
}
func (li *layoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(li.raw))
	if err != nil {
		return nil, err
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if d.Digest == h {
			return &layoutBlob{r: li.r, repo: li.repo, desc: d}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not in the manifest", h)
}

// layoutBlob is a blob of a repository; its content is verified against
// its digest before the first byte is handed out.
type layoutBlob struct {
	r    *Registry
	repo string
	desc v1.Descriptor
}

func (b *layoutBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *layoutBlob) Compressed() (io.ReadCloser, error)  { return b.r.openBlob(b.repo, b.desc.Digest) }
func (b *layoutBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *layoutBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }

// v1Image returns the image an Image value pins, for the scheduler. Its
// repository must be in this registry (on any port the rack ever used:
// the digest pins the content).
func (r *Registry) v1Image(img providers.Image) (v1.Image, error) {
	ref, err := name.ParseReference(img.Ref(), name.WithDefaultRegistry(r.host))
	if err != nil {
		return nil, fmt.Errorf("image %q: %w: %w", img.Ref(), providers.ErrInvalid, err)
	}
	d, err := v1.NewHash(img.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w: %w", img.Ref(), providers.ErrInvalid, err)
	}
	i, _, err := r.image(ref.Context().RepositoryStr(), d)
	return i, err
}

// ListImages returns the repository's tagged and untagged images ordered by
// digest; an image with several tags is listed once with its first tag in
// byte order.
func (r *Registry) ListImages(ctx context.Context, repo string) ([]providers.Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateRepo(repo); err != nil {
		return nil, err
	}
	im, err := r.readIndex(repo)
	if err != nil {
		return nil, err
	}
	tags := map[v1.Hash]string{}
	for _, d := range im.Manifests {
		t := d.Annotations[refNameAnnotation]
		if old, ok := tags[d.Digest]; !ok || (t != "" && (old == "" || t < old)) {
			tags[d.Digest] = t
		}
	}
	var out []providers.Image
	for d, t := range tags {
		img, err := r.describe(repo, t, d)
		if errors.Is(err, providers.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		img.Digest = d.String() // the listed digest, even for an index
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b providers.Image) int { return strings.Compare(a.Digest, b.Digest) })
	return out, nil
}

// DeleteImage removes the manifest with the digest and every tag pointing
// to it. Its blobs stay on disk (other manifests may share them).
func (r *Registry) DeleteImage(ctx context.Context, repo, digest string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateRepo(repo); err != nil {
		return err
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return fmt.Errorf("digest %q: %w: %w", digest, providers.ErrInvalid, err)
	}
	if !r.exists(repo) {
		return nil
	}
	return r.updateIndex(repo, func(im *v1.IndexManifest) error {
		im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool { return d.Digest == h })
		return nil
	})
}
