package ecrregistry_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go/middleware"
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
	// keepsTags says the emulator leaves a tag on an image it was moved
	// from (kumo).
	keepsTags bool
	// dropsUntagged says the emulator deletes an image whose last tag
	// moves to another image (moto).
	dropsUntagged bool
}

// tokensValidFor12Hours sets the expiry of moto's authorization tokens,
// a fixed date in 2015, to what ECR gives: "The authorization token is
// valid for 12 hours."
func tokensValidFor12Hours(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("tokensValidFor12Hours",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if o, ok := out.Result.(*ecr.GetAuthorizationTokenOutput); ok {
				for i := range o.AuthorizationData {
					o.AuthorizationData[i].ExpiresAt = aws.Time(time.Now().Add(12 * time.Hour))
				}
			}
			return out, md, err
		}), middleware.Before)
}

func newEmulated(t *testing.T, e awstest.Emulator) *emulated {
	t.Helper()
	cfg := e.Config()
	calls := awstest.NewCounter()
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	if e.Backend == awstest.Moto {
		cfg.APIOptions = append(cfg.APIOptions, tokensValidFor12Hours)
	}
	data := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(data.Close)
	target, _ := url.Parse(data.URL)
	api := ecr.NewFromConfig(cfg)
	reg := ecrregistry.New(api, &ecrregistry.Options{Transport: reroute{target}})
	return &emulated{reg: reg, api: api, data: data, calls: calls, keepsTags: e.Backend == awstest.Kumo, dropsUntagged: e.Backend == awstest.Moto}
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
	// ECR moves a tag to the image pushed with it and keeps the image it
	// moved from, untagged, in the repository (its digest still resolves,
	// as the conformance suite checks). kumo keeps the tag on the old image
	// too, so the old image is re-put without it first; moto deletes the
	// old image, so it is re-put without a tag afterwards.
	var moved []*string // manifests of the images holding the tag
	if e.keepsTags || e.dropsUntagged {
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
			moved = append(moved, old.Images[0].ImageManifest)
		}
	}
	putUntagged := func() {
		for _, m := range moved {
			if _, err := e.api.PutImage(t.Context(), &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: m, ImageDigest: aws.String(digestOf(*m))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if e.keepsTags {
		putUntagged()
	}
	d, _ := img.Digest()
	// imageDigest is "The image digest of the image manifest corresponding
	// to the image" (PutImage); moto computes another digest without it.
	out, err := e.api.PutImage(t.Context(), &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String(tag), ImageDigest: aws.String(d.String())})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.Image.ImageId.ImageDigest); got != d.String() {
		t.Fatalf("ECR digest %s differs from the manifest digest %s", got, d)
	}
	if e.dropsUntagged {
		putUntagged()
	}
	return d.String()
}

// digestOf returns the digest of a manifest.
func digestOf(manifest string) string {
	sum := sha256.Sum256([]byte(manifest))
	return "sha256:" + hex.EncodeToString(sum[:])
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
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		em := newEmulated(t, e)
		providertest.TestRegistry(t, providertest.RegistryHarness{
			New: func(t *testing.T) providers.Registry { return em.reg },
			Push: func(t *testing.T, _ providers.Registry, repo, tag string) string {
				return em.push(t, repo, tag, randomImage(t))
			},
		})
	})
}

func TestResolveReadsTheConfigurationOverTheDataPath(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		em := newEmulated(t, e)
		name := awstest.Name(t, "ecr")
		repo, err := em.reg.EnsureRepository(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.Config(randomImage(t), v1.Config{Entrypoint: []string{"/app"}, Cmd: []string{"serve"}, Env: []string{"A=1"}, WorkingDir: "/srv"})
		if err != nil {
			t.Fatal(err)
		}
		digest := em.push(t, name, "v1", img)
		got, err := em.reg.Resolve(t.Context(), repo.URI+":v1")
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
	})
}

func TestCredentialsAreCachedAcrossCalls(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		em := newEmulated(t, e)
		for range 3 {
			c, err := em.reg.Credentials(t.Context(), "web")
			if err != nil {
				t.Fatal(err)
			}
			if c.Username != "AWS" || c.Password == "" || c.Registry == "" {
				t.Errorf("Credentials = %v, want user AWS, a password and the registry host", c)
			}
		}
		if n := em.calls.Count("GetAuthorizationToken"); n != 1 {
			t.Errorf("three Credentials calls made %d GetAuthorizationToken calls, want 1", n)
		}
	})
}
