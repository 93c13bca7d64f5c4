package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

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

// corruptFile flips four bytes in the middle of path.
func corruptFile(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	for i := len(data) / 2; i < len(data)/2+4 && i < len(data); i++ {
		data[i] ^= 0xff
	}
	must(t, os.WriteFile(path, data, 0o600))
}

func TestRegistryCorruptBlobsAreNeverServed(t *testing.T) {
	var logs syncBuffer
	opts := testOptions()
	opts.Logger = logs.logger()
	r, err := Open(t.TempDir(), opts)
	must(t, err)
	t.Cleanup(func() { r.Close() })
	reg := r.Registry()

	tests := []struct {
		name string
		// read reads the corrupt layer (or manifest) of the image pushed as
		// repo:v1 and returns what the reader got.
		read     func(t *testing.T, repo string, layer v1.Hash, size int64, pinned providers.Image) error
		manifest bool // corrupt the manifest instead of the layer
	}{
		{"a GET ends short of the blob's length", func(t *testing.T, repo string, layer v1.Hash, size int64, _ providers.Image) error {
			c, err := reg.Credentials(t.Context(), repo)
			must(t, err)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+reg.Host()+"/v2/"+repo+"/blobs/"+layer.String(), nil)
			must(t, err)
			req.SetBasicAuth(c.Username, c.Password)
			resp, err := http.DefaultClient.Do(req)
			must(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				return fmt.Errorf("GET returned the whole %d-byte body (status %d), want it cut short", len(body), resp.StatusCode)
			}
			if int64(len(body)) >= size {
				return fmt.Errorf("GET returned %d bytes of %d before failing", len(body), size)
			}
			return nil
		}, false},
		{"a ranged GET is refused", func(t *testing.T, repo string, layer v1.Hash, size int64, _ providers.Image) error {
			got := authed(t, r, http.MethodGet, "/v2/"+repo+"/blobs/"+layer.String(), nil, http.Header{"Range": {"bytes=0-9"}})
			if got.status != http.StatusInternalServerError {
				return fmt.Errorf("ranged GET: %d, want 500", got.status)
			}
			return nil
		}, false},
		{"unpacking fails with ErrInvalid naming the digest", func(t *testing.T, repo string, layer v1.Hash, size int64, pinned providers.Image) error {
			img, err := reg.v1Image(pinned)
			must(t, err)
			layers, err := img.Layers()
			must(t, err)
			rc, err := layers[0].Compressed()
			if err == nil {
				rc.Close()
				return errors.New("the corrupt layer opened without error")
			}
			if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), layer.String()) {
				return fmt.Errorf("error = %v, want ErrInvalid naming %s", err, layer)
			}
			return nil
		}, false},
		{"a manifest is refused by GET and Resolve", func(t *testing.T, repo string, manifest v1.Hash, size int64, _ providers.Image) error {
			got := authed(t, r, http.MethodGet, "/v2/"+repo+"/manifests/v1", nil, nil)
			if got.status != http.StatusInternalServerError {
				return fmt.Errorf("GET manifest: %d %s, want 500", got.status, got.body)
			}
			if _, err := reg.Resolve(t.Context(), repo+":v1"); !errors.Is(err, providers.ErrNotFound) {
				return fmt.Errorf("Resolve after the manifest was moved out: %v, want ErrNotFound", err)
			}
			return nil
		}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := fmt.Sprintf("corrupt%d", i)
			img := mustRandomImageOfSize(t, 100<<10) // several copy buffers
			pinned, err := reg.PushImage(t.Context(), repo, "v1", img)
			must(t, err)
			layers, err := img.Layers()
			must(t, err)
			bad, err := layers[0].Digest()
			must(t, err)
			if tt.manifest {
				bad, err = img.Digest()
				must(t, err)
			}
			path := reg.blobPath(repo, bad)
			fi, err := os.Stat(path)
			must(t, err)
			corruptFile(t, path)

			if err := tt.read(t, repo, bad, fi.Size(), pinned); err != nil {
				t.Fatal(err)
			}
			if log := logs.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, bad.String()) || !strings.Contains(log, path) {
				t.Errorf("log = %q, want an error naming %s and %s", log, bad, path)
			}
			if got := authed(t, r, http.MethodHead, "/v2/"+repo+"/blobs/"+bad.String(), nil, nil); got.status != http.StatusNotFound {
				t.Errorf("HEAD of the corrupt blob: %d, want 404 (moved out of the layout)", got.status)
			}

			// Pushing the image again stores a good copy. (Standard tooling
			// skips an image whose manifest the registry has: delete the
			// image first when the corrupt blob is a layer.)
			_, err = reg.PushImage(t.Context(), repo, "v1", img)
			must(t, err)
			ref, err := name.ParseReference(reg.Host() + "/" + repo + ":v1")
			must(t, err)
			pulled, err := remote.Image(ref, remote.WithContext(t.Context()), localtest.Auth(t, reg))
			must(t, err)
			if err := validate.Image(pulled); err != nil {
				t.Errorf("the image pushed again does not validate: %v", err)
			}
		})
	}
}

func TestRegistryTagsListValidatesTheName(t *testing.T) {
	r := openTestRack(t, "")
	pushTestImage(t, r, "web", "v1")
	c, err := r.Registry().Credentials(t.Context(), "web")
	must(t, err)
	tests := []struct {
		path       string
		wantStatus int
		wantCode   string
	}{
		{"/v2/web/tags/list", http.StatusOK, ""},
		{"/v2/../tags/list", http.StatusBadRequest, "NAME_INVALID"},
		{"/v2/web/../tags/list", http.StatusBadRequest, "NAME_INVALID"},
		{"/v2/web/../../tags/list", http.StatusBadRequest, "NAME_INVALID"},
		{"/v2/%2e%2e/tags/list", http.StatusBadRequest, "NAME_INVALID"},
		{"/v2/./web/tags/list", http.StatusBadRequest, "NAME_INVALID"},
		{"/v2/Web/tags/list", http.StatusBadRequest, "NAME_INVALID"},
		{"/v2/../blobs/uploads/", http.StatusBadRequest, "NAME_INVALID"},
		{"/v2/../manifests/v1", http.StatusBadRequest, "NAME_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "http://registry"+tt.path, nil)
			req.SetBasicAuth(c.Username, c.Password)
			w := httptest.NewRecorder()
			r.Registry().ServeHTTP(w, req)
			got := apiResponse{status: w.Code, body: w.Body.Bytes()}
			if diff := cmp.Diff([]any{tt.wantStatus, tt.wantCode}, []any{got.status, got.code()}); diff != "" {
				t.Errorf("(-want +got):\n%s\nbody %s", diff, got.body)
			}
		})
	}
}

func TestRegistryListingsArePaged(t *testing.T) {
	r := openTestRack(t, "")
	img := mustRandomImage(t)
	for _, tag := range []string{"c", "a", "b"} {
		if _, err := r.Registry().PushImage(t.Context(), "web", tag, img); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		path      string
		wantTags  []string
		wantLink  string
		wantError string
	}{
		{"without n every tag up to the page limit", "/v2/web/tags/list", []string{"a", "b", "c"}, "", ""},
		{"n smaller than the list links the next page", "/v2/web/tags/list?n=2", []string{"a", "b"}, `</v2/web/tags/list?last=b&n=2>; rel="next"`, ""},
		{"the next page continues after last", "/v2/web/tags/list?last=b&n=2", []string{"c"}, "", ""},
		{"n over the page limit is cut to it", "/v2/web/tags/list?n=1000000", []string{"a", "b", "c"}, "", ""},
		{"a negative n is refused", "/v2/web/tags/list?n=-1", nil, "", "PAGINATION_NUMBER_INVALID"},
		{"a non-number n is refused", "/v2/web/tags/list?n=ten", nil, "", "PAGINATION_NUMBER_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := authed(t, r, http.MethodGet, tt.path, nil, nil)
			if tt.wantError != "" {
				if got.status != http.StatusBadRequest || got.code() != tt.wantError {
					t.Errorf("got %d %s, want 400 %s", got.status, got.body, tt.wantError)
				}
				return
			}
			var body struct{ Tags []string }
			must(t, json.Unmarshal(got.body, &body))
			if diff := cmp.Diff([]any{tt.wantTags, tt.wantLink}, []any{body.Tags, got.header.Get("Link")}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a long listing is cut at the page limit and links the rest", func(t *testing.T) {
		names := make([]string, 2*maxPage+1)
		for i := range names {
			names[i] = fmt.Sprintf("t%05d", i)
		}
		req := httptest.NewRequest(http.MethodGet, "/v2/web/tags/list?n=5000", nil)
		n, last, err := page(req)
		must(t, err)
		first, more := pageNames(names, n, last)
		second, more2 := pageNames(names, n, first[len(first)-1])
		third, more3 := pageNames(names, n, second[len(second)-1])
		got := []any{len(first), more, first[0], len(second), more2, second[0], len(third), more3}
		want := []any{maxPage, true, "t00000", maxPage, true, fmt.Sprintf("t%05d", maxPage), 1, false}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pages (-want +got):\n%s", diff)
		}
	})
	t.Run("standard tooling follows the pages", func(t *testing.T) {
		repo, err := name.NewRepository(r.Registry().Host() + "/web")
		must(t, err)
		tags, err := remote.List(repo, remote.WithContext(t.Context()), remote.WithPageSize(1), localtest.Auth(t, r.Registry()))
		must(t, err)
		if diff := cmp.Diff([]string{"a", "b", "c"}, tags); diff != "" {
			t.Errorf("remote.List (-want +got):\n%s", diff)
		}
	})
}

func TestRegistryRefusesAManifestOverTheLimit(t *testing.T) {
	r := openTestRack(t, "")
	big := bytes.Repeat([]byte(" "), maxManifestBytes+1)
	copy(big, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	for _, body := range []io.Reader{bytes.NewReader(big), unsized(big)} {
		got := authed(t, r, http.MethodPut, "/v2/huge/manifests/v1", body, http.Header{"Content-Type": {"application/vnd.oci.image.index.v1+json"}})
		if got.status != http.StatusRequestEntityTooLarge || got.code() != "SIZE_INVALID" {
			t.Errorf("PUT of a %d-byte manifest: %d %s, want 413 SIZE_INVALID", len(big), got.status, got.body)
		}
	}
	assertNoTrace(t, r, "huge")
}

func TestRegistryRepositoryManifestLimit(t *testing.T) {
	r := openTestRack(t, "")
	reg := r.Registry()
	kept, err := reg.PushImage(t.Context(), "full", "kept", mustRandomImage(t))
	must(t, err)
	keptDigest, err := v1.NewHash(kept.Digest)
	must(t, err)
	// Fill the index to the limit with descriptors of other manifests.
	must(t, reg.updateIndex("full", func(im *v1.IndexManifest) error {
		for i := len(im.Manifests); i < maxRepoManifests; i++ {
			im.Manifests = append(im.Manifests, v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, Digest: digestOf([]byte(strconv.Itoa(i)))})
		}
		return nil
	}))
	tests := []struct {
		name    string
		tag     string
		img     func() v1.Image
		wantErr error
	}{
		{"a new image is refused", "new", func() v1.Image { return mustRandomImage(t) }, errRepositoryFull},
		{"an image already listed can be tagged", "again", func() v1.Image {
			img, _, err := reg.image("full", keptDigest)
			must(t, err)
			return img
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := reg.PushImage(t.Context(), "full", tt.tag, tt.img())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("PushImage error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("PushImage error = %v, want ErrInvalid", err)
			}
		})
	}
}
