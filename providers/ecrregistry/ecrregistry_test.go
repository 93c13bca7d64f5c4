package ecrregistry_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/providertest"
)

// emulated is an ECR registry on an emulator, whose data-path requests
// go to the in-process registry of awstest.ECRImages.
type emulated struct {
	reg    *ecrregistry.Registry
	images *awstest.ECRImages
	calls  *awstest.Counter
}

func newEmulated(t *testing.T, e awstest.Emulator) *emulated {
	t.Helper()
	cfg := e.Config()
	calls := awstest.NewCounter()
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	if e.Backend == awstest.Moto {
		cfg.APIOptions = append(cfg.APIOptions, awstest.TokensValidFor12Hours)
	}
	api := ecr.NewFromConfig(cfg)
	images := awstest.NewECRImages(t, api, e.Backend)
	reg := ecrregistry.New(api, &ecrregistry.Options{Transport: images.Transport()})
	return &emulated{reg: reg, images: images, calls: calls}
}

// push puts img in the data path and in ECR under repo:tag and returns its digest.
func (e *emulated) push(t *testing.T, repo, tag string, img v1.Image) string {
	t.Helper()
	return e.images.Push(t, repo, tag, img)
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

// TestEndpointServesTheDataPath resolves an image whose configuration is
// read through Options.Endpoint (the in-process registry standing for a
// mirror of the emulator's registry host).
func TestEndpointServesTheDataPath(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		cfg := e.Config()
		if e.Backend == awstest.Moto {
			cfg.APIOptions = append(cfg.APIOptions, awstest.TokensValidFor12Hours)
		}
		api := ecr.NewFromConfig(cfg)
		images := awstest.NewECRImages(t, api, e.Backend)
		reg := ecrregistry.New(api, &ecrregistry.Options{Endpoint: images.URL()})
		name := awstest.Name(t, "ecr")
		repo, err := reg.EnsureRepository(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.Config(randomImage(t), v1.Config{Entrypoint: []string{"/app"}})
		if err != nil {
			t.Fatal(err)
		}
		digest := images.Push(t, name, "v1", img)
		got, err := reg.Resolve(t.Context(), repo.URI+":v1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != digest || !cmp.Equal(got.Entrypoint, []string{"/app"}) {
			t.Errorf("Resolve = digest %s entrypoint %q, want %s [/app] (read through the endpoint)", got.Digest, got.Entrypoint, digest)
		}
	})
}
