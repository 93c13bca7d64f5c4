// Package oci holds what the registry providers share about the OCI
// distribution API: parsing and validating references, mapping
// go-containerregistry errors to the sentinels of package providers, and
// describing a remote image as a providers.Image.
//
//	ref, err := oci.Parse("web:v2", "registry.example.com")
//	// ref.Repository == "web", ref.Tag == "v2"
package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/convox-go/convox/providers"
)

var (
	component = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
	repoRE    = regexp.MustCompile(`^` + component + `(?:/` + component + `)*$`)
	tagRE     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE  = regexp.MustCompile(`^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// ValidRepository checks a repository name ("web", "team/web"): path
// components of lowercase letters and digits separated by ".", "_", "__"
// or hyphens, joined by "/", at most 255 characters. The error matches
// providers.ErrInvalid.
func ValidRepository(repo string) error {
	if len(repo) > 255 || !repoRE.MatchString(repo) {
		return providers.Invalidf("repository name %q: use lowercase letters, digits and single separators (. _ -), with / between path components", repo)
	}
	return nil
}

// Ref is a parsed image reference within one registry.
type Ref struct {
	// Repository is the repository name without the registry host.
	Repository string
	// Tag is set when the reference names a tag ("latest" when it names
	// neither a tag nor a digest).
	Tag string
	// Digest is set when the reference pins a digest.
	Digest string
}

// String formats the reference without a host.
func (r Ref) String() string {
	if r.Digest != "" {
		return r.Repository + "@" + r.Digest
	}
	return r.Repository + ":" + r.Tag
}

// Parse parses "repo:tag", "repo@digest" or the same prefixed with host
// and a slash. A reference to another registry, or a malformed one,
// returns an error matching providers.ErrInvalid.
func Parse(ref, host string) (Ref, error) {
	rest := ref
	if host != "" {
		rest = strings.TrimPrefix(ref, host+"/")
	}
	if first, _, ok := strings.Cut(rest, "/"); ok && rest == ref && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return Ref{}, providers.Invalidf("reference %q is not in registry %q", ref, host)
	}
	var r Ref
	if repo, digest, ok := strings.Cut(rest, "@"); ok {
		if !digestRE.MatchString(digest) {
			return Ref{}, providers.Invalidf("reference %q: malformed digest %q", ref, digest)
		}
		r.Repository, r.Digest = repo, digest
	} else {
		repo, tag := rest, "latest"
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			repo, tag = rest[:i], rest[i+1:]
			if !tagRE.MatchString(tag) {
				return Ref{}, providers.Invalidf("reference %q: malformed tag %q", ref, tag)
			}
		}
		r.Repository, r.Tag = repo, tag
	}
	if err := ValidRepository(r.Repository); err != nil {
		return Ref{}, fmt.Errorf("reference %q: %w", ref, err)
	}
	return r, nil
}

// Name converts the reference to a go-containerregistry reference in the
// registry host.
func (r Ref) Name(host string, opts ...name.Option) (name.Reference, error) {
	ref, err := name.ParseReference(host+"/"+r.String(), append([]name.Option{name.StrictValidation}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", providers.ErrInvalid, err)
	}
	return ref, nil
}

// Sentinel returns the sentinel a go-containerregistry error falls into,
// or nil (also for context errors). Registry error codes decide first
// (MANIFEST_UNKNOWN, NAME_UNKNOWN and BLOB_UNKNOWN are not found;
// UNAUTHORIZED and DENIED permission; TOOMANYREQUESTS throttled;
// NAME_INVALID, TAG_INVALID, DIGEST_INVALID and MANIFEST_INVALID invalid;
// UNSUPPORTED unimplemented; UNAVAILABLE unavailable), then the HTTP
// status, then transport failures (unavailable).
func Sentinel(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return providers.ErrNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return providers.ErrPermission
			case transport.TooManyRequestsErrorCode:
				return providers.ErrThrottled
			case transport.NameInvalidErrorCode, transport.TagInvalidErrorCode, transport.DigestInvalidErrorCode, transport.ManifestInvalidErrorCode:
				return providers.ErrInvalid
			case transport.UnsupportedErrorCode:
				return providers.ErrUnimplemented
			case transport.UnavailableErrorCode:
				return providers.ErrUnavailable
			}
		}
		switch s := te.StatusCode; {
		case s == http.StatusNotFound:
			return providers.ErrNotFound
		case s == http.StatusUnauthorized, s == http.StatusForbidden:
			return providers.ErrPermission
		case s == http.StatusTooManyRequests:
			return providers.ErrThrottled
		case s == http.StatusMethodNotAllowed:
			return providers.ErrUnimplemented
		case s >= 500:
			return providers.ErrUnavailable
		case s >= 400:
			return providers.ErrInvalid
		}
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return providers.ErrUnavailable
	}
	return nil
}

// Wrap prefixes err with op and wraps its sentinel, if any, and err:
// fmt.Errorf("%s: %w: %w", op, sentinel, err). Context errors keep
// matching the context error and no sentinel.
func Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if s := Sentinel(err); s != nil {
		return fmt.Errorf("%s: %w: %w", op, s, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Describe fetches the image ref (resolving an index to the platform the
// options choose) and returns it pinned by the reference's manifest digest.
// repository is the full repository reference the Image reports.
func Describe(ref name.Reference, repository, tag string, opts ...remote.Option) (providers.Image, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return providers.Image{}, Wrap(fmt.Sprintf("get manifest %s", ref), err)
	}
	img := providers.Image{Repository: repository, Digest: desc.Digest.String(), Tag: tag}
	v1img, err := desc.Image()
	if err != nil {
		return providers.Image{}, Wrap(fmt.Sprintf("read image %s", ref), err)
	}
	m, err := v1img.Manifest()
	if err != nil {
		return providers.Image{}, Wrap(fmt.Sprintf("read manifest %s", ref), err)
	}
	img.Size = m.Config.Size
	for _, l := range m.Layers {
		img.Size += l.Size
	}
	cfg, err := v1img.ConfigFile()
	if err != nil {
		return providers.Image{}, Wrap(fmt.Sprintf("read image configuration %s", ref), err)
	}
	img.Entrypoint = cfg.Config.Entrypoint
	img.Cmd = cfg.Config.Cmd
	img.Env = cfg.Config.Env
	img.WorkingDir = cfg.Config.WorkingDir
	img.Created = cfg.Created.Time
	return img, nil
}
