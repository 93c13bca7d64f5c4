package ecrregistry_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/providertest"
)

// emulated is an ECR registry on the emulator. The emulator serves the ECR
// API but not the registry data path, so data-path requests for the
// registry host go to an in-process registry instead (rerouted by the
// transport), and the harness puts each image in both: its blobs and
// manifest in the data path, its manifest in ECR with PutImage.
type emulated struct {
	reg   *ecrregistry.Registry
	api   *ecr.Client
	data  *httptest.Server
	calls *awstest.Counter
}

func newEmulated(t *testing.T) *emulated {
	t.Helper()
	cfg := awstest.Config(t)
	calls := awstest.NewCounter()
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	data := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(data.Close)
	target, _ := url.Parse(data.URL)
	api := ecr.NewFromConfig(cfg)
	reg := ecrregistry.New(api, &ecrregistry.Options{Transport: reroute{target}})
	return &emulated{reg: reg, api: api, data: data, calls: calls}
}

// reroute sends every request to the in-process data path.
type reroute struct{ target *url.URL }

func (r reroute) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = r.target.Scheme, r.target.Host
	req.Host = r.target.Host
	return http.DefaultTransport.RoundTrip(req)
}

// push puts img in the data path and in ECR under repo:tag and returns its digest.
func (e *emulated) push(t *testing.T, repo, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(e.data.Listener.Addr().String() + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	// The emulator keeps a tag on every image it was ever put with; ECR
	// moves it. Re-put the images holding the tag without one first.
	list, err := e.api.ListImages(t.Context(), &ecr.ListImagesInput{RepositoryName: aws.String(repo)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range list.ImageIds {
		if aws.ToString(id.ImageTag) != tag {
			continue
		}
		old, err := e.api.BatchGetImage(t.Context(), &ecr.BatchGetImageInput{RepositoryName: aws.String(repo), ImageIds: []types.ImageIdentifier{{ImageDigest: id.ImageDigest}}})
		if err != nil || len(old.Images) == 0 {
			t.Fatalf("read image %s to move its tag: %v", aws.ToString(id.ImageDigest), err)
		}
		if _, err := e.api.PutImage(t.Context(), &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: old.Images[0].ImageManifest}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := e.api.PutImage(t.Context(), &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String(tag)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if got := aws.ToString(out.Image.ImageId.ImageDigest); got != d.String() {
		t.Fatalf("ECR digest %s differs from the manifest digest %s", got, d)
	}
	return d.String()
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestConformance(t *testing.T) {
	e := newEmulated(t)
	providertest.TestRegistry(t, providertest.RegistryHarness{
		New: func(t *testing.T) providers.Registry { return e.reg },
		Push: func(t *testing.T, _ providers.Registry, repo, tag string) string {
			return e.push(t, repo, tag, randomImage(t))
		},
	})
}

func TestResolveReadsTheConfigurationOverTheDataPath(t *testing.T) {
	e := newEmulated(t)
	name := awstest.Name(t, "ecr")
	repo, err := e.reg.EnsureRepository(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Config(randomImage(t), v1.Config{Entrypoint: []string{"/app"}, Cmd: []string{"serve"}, Env: []string{"A=1"}, WorkingDir: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	digest := e.push(t, name, "v1", img)
	got, err := e.reg.Resolve(t.Context(), repo.URI+":v1")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	want := providers.Image{Repository: repo.URI, Digest: digest, Tag: "v1", Entrypoint: []string{"/app"}, Cmd: []string{"serve"}, Env: []string{"A=1"}, WorkingDir: "/srv", Size: size}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
}

func TestCredentialsAreCachedAcrossCalls(t *testing.T) {
	e := newEmulated(t)
	for range 3 {
		c, err := e.reg.Credentials(t.Context(), "web")
		if err != nil {
			t.Fatal(err)
		}
		if c.Username != "AWS" || c.Password == "" || c.Registry == "" {
			t.Errorf("Credentials = %v, want user AWS, a password and the registry host", c)
		}
	}
	if n := e.calls.Count("GetAuthorizationToken"); n != 1 {
		t.Errorf("three Credentials calls made %d GetAuthorizationToken calls, want 1", n)
	}
}
