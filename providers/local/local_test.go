package local

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/providertest"
)

// TestConformance runs the provider conformance suites against one local
// rack (the suites use names of their own per case).
func TestConformance(t *testing.T) {
	r := openTestRack(t, "")
	t.Run("Store", func(t *testing.T) {
		providertest.TestStore(t, func(t *testing.T) providers.Store { return r.Store() })
	})
	t.Run("Logs", func(t *testing.T) {
		providertest.TestLogs(t, providertest.LogsHarness{New: func(t *testing.T) providers.Logs { return r.Logs() }})
	})
	t.Run("Registry", func(t *testing.T) {
		providertest.TestRegistry(t, providertest.RegistryHarness{
			New: func(t *testing.T) providers.Registry { return r.Registry() },
			// Push goes through the OCI distribution API, as standard tooling would.
			Push: func(t *testing.T, reg providers.Registry, repo, tag string) string {
				img, err := random.Image(256, 1)
				if err != nil {
					t.Fatal(err)
				}
				ref, err := name.ParseReference(r.Registry().Host() + "/" + repo + ":" + tag)
				if err != nil {
					t.Fatal(err)
				}
				if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
					t.Fatal(err)
				}
				d, err := img.Digest()
				if err != nil {
					t.Fatal(err)
				}
				return d.String()
			},
		})
	})
	t.Run("Balancer", func(t *testing.T) {
		providertest.TestBalancer(t, providertest.BalancerHarness{New: func(t *testing.T) providers.Balancer { return r.Balancer() }})
	})
}
