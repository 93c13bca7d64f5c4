package local

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local/localtest"
)

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestRegistryWorksWithStandardTooling(t *testing.T) {
	r := openTestRack(t, "")
	reg := r.Registry()
	img := localtest.BuildGoImage(t, testServer)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// push over the distribution API, as crane or docker would
	if err := remote.Write(mustRef(t, reg.Host()+"/team/web:v1"), img, remote.WithContext(t.Context()), localtest.Auth(t, r.Registry())); err != nil {
		t.Fatal(err)
	}
	resolved, err := reg.Resolve(t.Context(), "team/web:v1")
	if err != nil {
		t.Fatal(err)
	}
	wantImage := providers.Image{
		Repository: reg.Host() + "/team/web", Digest: want.String(), Tag: "v1",
		Entrypoint: []string{localtest.BinaryPath}, WorkingDir: "/app", Env: []string{"PATH=/app:/usr/local/bin:/usr/bin:/bin"},
	}
	if diff := cmp.Diff(wantImage, resolved, cmpopts.IgnoreFields(providers.Image{}, "Size", "Created")); diff != "" {
		t.Errorf("Resolve after remote.Write (-want +got):\n%s", diff)
	}

	// copy it out again, as crane copy would, and compare every layer
	pulled, err := remote.Image(mustRef(t, reg.Host()+"/team/web:v1"), remote.WithContext(t.Context()), localtest.Auth(t, r.Registry()))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := pulled.Digest(); got != want {
		t.Errorf("pulled digest %s, want %s", got, want)
	}
	wantLayers, _ := img.Layers()
	gotLayers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range gotLayers {
		gd, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		wd, _ := wantLayers[i].Digest()
		if gd != wd {
			t.Errorf("layer %d digest %s, want %s", i, gd, wd)
		}
	}

	tags, err := remote.List(mustRef(t, reg.Host()+"/team/web").Context(), remote.WithContext(t.Context()), localtest.Auth(t, r.Registry()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"v1"}, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	repos, err := remote.Catalog(t.Context(), mustRef(t, reg.Host()+"/x").Context().Registry, localtest.Auth(t, reg))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"team/web"}, repos); diff != "" {
		t.Errorf("catalog (-want +got):\n%s", diff)
	}
}

func TestRegistryResolve(t *testing.T) {
	r := openTestRack(t, "")
	reg := r.Registry()
	pushed := pushTestImage(t, r, "web", "v1")
	index, err := random.Index(128, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(mustRef(t, reg.Host()+"/multi:v1"), index, remote.WithContext(t.Context()), localtest.Auth(t, r.Registry())); err != nil {
		t.Fatal(err)
	}
	im, _ := index.IndexManifest()
	bare, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.PushImage(t.Context(), "bare", "v1", bare); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		ref        string
		wantDigest string
		wantErr    error
	}{
		{"a short tag reference", "web:v1", pushed.Digest, nil},
		{"a digest reference", "web@" + pushed.Digest, pushed.Digest, nil},
		{"a full reference with this registry's host", reg.Host() + "/web:v1", pushed.Digest, nil},
		{"a multi-platform index resolves to a manifest", "multi:v1", im.Manifests[0].Digest.String(), nil},
		{"a missing tag is not found", "web:v9", "", providers.ErrNotFound},
		{"a missing repository is not found", "nothing:v1", "", providers.ErrNotFound},
		{"another registry's image is not found", "example.com/web:v1", "", providers.ErrNotFound},
		{"a malformed reference is invalid", "Web:v1!", "", providers.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := reg.Resolve(t.Context(), tt.ref)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Resolve error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantDigest, img.Digest); diff != "" {
				t.Errorf("digest (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("an image without entrypoint or command cannot run", func(t *testing.T) {
		img, err := reg.Resolve(t.Context(), "bare:v1")
		if err != nil {
			t.Fatal(err)
		}
		route := ensureWebRoute(t, r, "bare")
		_, err = r.Scheduler().Apply(t.Context(), webDesired("bare", "R1", img, route, 1, nil))
		if !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("Apply error = %v, want ErrInvalid", err)
		}
	})
}
