// Package imagecopy copies an image, pinned by digest, from one OCI
// distribution registry to another with go-containerregistry: blobs the
// target already has are not sent again, an image whose manifest the
// target already has is skipped entirely, and the copy is verified by
// reading the target's manifest digest back.
//
//	res, err := imagecopy.Copy(ctx, imagecopy.Endpoint{Ref: "127.0.0.1:5000/web@sha256:..."},
//		imagecopy.Endpoint{Ref: "123.dkr.ecr.us-east-1.amazonaws.com/web@sha256:...", Username: "AWS", Password: token})
package imagecopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/convox-go/convox/internal/oci"
	"github.com/convox-go/convox/providers"
)

// Endpoint is one side of a copy: a digest reference and its credentials.
type Endpoint struct {
	// Ref is "host/repository@sha256:...". Loopback hosts are reached
	// over plain HTTP.
	Ref string
	// Username and Password authenticate; both empty means anonymous.
	Username string
	Password string
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
}

func (e Endpoint) options(ctx context.Context, counter *atomic.Int64) []remote.Option {
	auth := authn.Anonymous
	if e.Username != "" || e.Password != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: e.Username, Password: e.Password})
	}
	t := e.Transport
	if t == nil {
		t = remote.DefaultTransport
	}
	if counter != nil {
		t = countingTransport{next: t, n: counter}
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth), remote.WithTransport(t)}
}

// countingTransport counts the request body bytes of blob uploads.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && strings.Contains(req.URL.Path, "/blobs/uploads/") {
		req = req.Clone(req.Context())
		req.Body = &countingBody{ReadCloser: req.Body, n: c.n}
	}
	return c.next.RoundTrip(req)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// Result describes a finished copy.
type Result struct {
	// Skipped is true when the target already had the manifest.
	Skipped bool
	// BlobBytes counts the blob bytes (layers and config) uploaded to the
	// target; blobs the target already had are not uploaded.
	BlobBytes int64
}

// Copy copies src to dst. Both references must name the same digest.
// Errors match the provider sentinels (ErrNotFound for a missing source,
// ErrPermission, ErrUnavailable, ...).
func Copy(ctx context.Context, src, dst Endpoint) (Result, error) {
	srcRef, err := name.NewDigest(src.Ref, nameOptions(src.Ref)...)
	if err != nil {
		return Result{}, providers.Invalidf("source %q: %v", src.Ref, err)
	}
	dstRef, err := name.NewDigest(dst.Ref, nameOptions(dst.Ref)...)
	if err != nil {
		return Result{}, providers.Invalidf("target %q: %v", dst.Ref, err)
	}
	if srcRef.DigestStr() != dstRef.DigestStr() {
		return Result{}, providers.Invalidf("source and target digests differ: %s, %s", srcRef.DigestStr(), dstRef.DigestStr())
	}
	if d, err := remote.Head(dstRef, dst.options(ctx, nil)...); err == nil && d.Digest.String() == dstRef.DigestStr() {
		return Result{Skipped: true}, nil
	} else if err != nil && !isNotFound(err) {
		return Result{}, oci.Wrap("check target "+dst.Ref, err)
	}
	desc, err := remote.Get(srcRef, src.options(ctx, nil)...)
	if err != nil {
		return Result{}, oci.Wrap("read source "+src.Ref, err)
	}

	var written atomic.Int64
	if desc.MediaType.IsIndex() {
		idx, ierr := desc.ImageIndex()
		if ierr != nil {
			return Result{}, oci.Wrap("read source index "+src.Ref, ierr)
		}
		err = remote.WriteIndex(dstRef, idx, dst.options(ctx, &written)...)
	} else {
		img, ierr := desc.Image()
		if ierr != nil {
			return Result{}, oci.Wrap("read source image "+src.Ref, ierr)
		}
		err = remote.Write(dstRef, img, dst.options(ctx, &written)...)
	}
	if err != nil {
		return Result{}, oci.Wrap("write target "+dst.Ref, err)
	}
	d, err := remote.Head(dstRef, dst.options(ctx, nil)...)
	if err != nil {
		return Result{}, oci.Wrap("verify target "+dst.Ref, err)
	}
	if d.Digest.String() != dstRef.DigestStr() {
		return Result{}, fmt.Errorf("verify target %s: digest %s: %w", dst.Ref, d.Digest, providers.ErrConflict)
	}
	return Result{BlobBytes: written.Load()}, nil
}

// nameOptions reaches loopback registries over plain HTTP directly.
func nameOptions(ref string) []name.Option {
	host, _, _ := strings.Cut(ref, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" || net.ParseIP(host).IsLoopback() {
		return []name.Option{name.Insecure}
	}
	return nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
