package imagecopy

import (
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/providers"
)

func newRegistry(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func push(t *testing.T, host string, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/web@" + d.String()
	r, _ := name.NewDigest(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

func layerSize(t *testing.T, l v1.Layer) int64 {
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCopy(t *testing.T) {
	src, dst := newRegistry(t), newRegistry(t)
	base, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := random.Layer(1024, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	derived, err := mutate.AppendLayers(base, extra)
	if err != nil {
		t.Fatal(err)
	}
	baseRef := push(t, src, base)
	derivedRef := push(t, src, derived)
	to := func(ref string) Endpoint { return Endpoint{Ref: strings.Replace(ref, src, dst, 1)} }
	ctx := t.Context()

	t.Run("a first copy sends every layer and verifies the digest", func(t *testing.T) {
		res, err := Copy(ctx, Endpoint{Ref: baseRef}, to(baseRef))
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := base.Layers()
		var want int64
		for _, l := range layers {
			want += layerSize(t, l)
		}
		if res.Skipped || res.BlobBytes < want {
			t.Errorf("result %+v, want at least %d layer bytes", res, want)
		}
	})

	t.Run("copying an image the target has sends nothing", func(t *testing.T) {
		res, err := Copy(ctx, Endpoint{Ref: baseRef}, to(baseRef))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Skipped || res.BlobBytes != 0 {
			t.Errorf("result %+v, want skipped with 0 bytes", res)
		}
	})

	t.Run("an image sharing layers sends only its new layer and config", func(t *testing.T) {
		res, err := Copy(ctx, Endpoint{Ref: derivedRef}, to(derivedRef))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := derived.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if want := layerSize(t, extra) + int64(len(cfg)); res.Skipped || res.BlobBytes != want {
			t.Errorf("result %+v, want exactly the new layer and config, %d bytes", res, want)
		}
	})

	t.Run("a missing source is not found", func(t *testing.T) {
		missing := src + "/web@sha256:" + strings.Repeat("0", 64)
		_, err := Copy(ctx, Endpoint{Ref: missing}, to(missing))
		if !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("Copy = %v, want ErrNotFound", err)
		}
	})

	t.Run("different digests are invalid", func(t *testing.T) {
		_, err := Copy(ctx, Endpoint{Ref: baseRef}, to(derivedRef))
		if !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("Copy = %v, want ErrInvalid", err)
		}
	})
}
