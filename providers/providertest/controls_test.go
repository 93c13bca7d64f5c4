package providertest_test

import (
	"testing"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/providertest"
)

// TestControls runs the suites on the providers the mutants are made
// from, unmutated (their wrappers included, with no bug): each must pass,
// so that a mutant's failure is its bug.
func TestControls(t *testing.T) {
	t.Run("Store", func(t *testing.T) {
		providertest.TestStore(t, func(*testing.T) providers.Store { return newMemStore("") })
	})
	t.Run("Logs", func(t *testing.T) {
		providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return newMemLogs("") }})
	})
	t.Run("Registry", func(t *testing.T) {
		providertest.TestRegistry(t, registryHarness(func(g *fake.Registry) providers.Registry {
			return &registryMutant{Registry: g, cache: map[string]providers.Image{}}
		}))
	})
	t.Run("Balancer", func(t *testing.T) {
		providertest.TestBalancer(t, providertest.BalancerHarness{New: func(*testing.T) providers.Balancer {
			return &balancerMutant{Balancer: fake.New(nil).Balancer()}
		}})
	})
	t.Run("Scheduler", func(t *testing.T) {
		providertest.TestScheduler(t, schedulerHarness(func(s *fake.Scheduler) providers.Scheduler {
			return &schedulerMutant{Scheduler: s, secrets: map[string]string{}, tokens: map[string]providers.Rollout{}, deleted: map[string]bool{}}
		}))
	})
}
