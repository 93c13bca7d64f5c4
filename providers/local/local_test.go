package local

import (
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local/localtest"
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
				if err := remote.Write(ref, img, remote.WithContext(t.Context()), localtest.Auth(t, r.Registry())); err != nil {
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
	t.Run("Scheduler", func(t *testing.T) {
		img := pushTestImage(t, r, "conformance", "v1")
		crash := pushCrashImage(t, r, "conformance", "crash")
		providertest.TestScheduler(t, providertest.SchedulerHarness{
			New: func(t *testing.T) providertest.SchedulerSetup {
				return providertest.SchedulerSetup{
					Scheduler: r.Scheduler(),
					Image:     img,
					Processes: []providers.Process{
						{Name: "web", Count: 2, Port: 8080, Health: fastHealth},
						{Name: "worker", Count: 1},
					},
					Crash:    &crash,
					Balancer: r.Balancer(),
					Logs:     r.Logs(),
					Run:      &providertest.RunCase{Command: []string{"/app/server", "echo", "hi"}, Output: "hi", ExitCode: 0},
				}
			},
			Poll: 20 * time.Millisecond,
		})
	})
	t.Run("Balancer", func(t *testing.T) {
		providertest.TestBalancer(t, providertest.BalancerHarness{New: func(t *testing.T) providers.Balancer { return r.Balancer() }})
	})
}

// pushCrashImage pushes the test app configured to crash on start
// (CRASH=1 in the image's environment).
func pushCrashImage(t *testing.T, r *Rack, repo, tag string) providers.Image {
	t.Helper()
	img := localtest.BuildGoImage(t, testServer)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Env = append(cfg.Config.Env, "CRASH=1")
	crash, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := r.Registry().PushImage(t.Context(), repo, tag, crash)
	if err != nil {
		t.Fatal(err)
	}
	return pinned
}
