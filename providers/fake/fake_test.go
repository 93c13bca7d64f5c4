package fake_test

import (
	"fmt"
	"testing"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/providertest"
)

func TestConformance(t *testing.T) {
	t.Run("Store", func(t *testing.T) {
		providertest.TestStore(t, func(t *testing.T) providers.Store { return fake.New(nil).Store() })
	})
	t.Run("Registry", func(t *testing.T) {
		pushes := 0
		providertest.TestRegistry(t, providertest.RegistryHarness{
			New: func(t *testing.T) providers.Registry { return fake.New(nil).Registry() },
			Push: func(t *testing.T, reg providers.Registry, repo, tag string) string {
				pushes++
				cfg := &fake.ImageConfig{Cmd: []string{"serve"}, Env: []string{fmt.Sprintf("PUSH=%d", pushes)}}
				return reg.(*fake.Registry).Rack().Push(repo, tag, cfg).Digest
			},
		})
	})
}

func TestConformanceBalancer(t *testing.T) {
	providertest.TestBalancer(t, providertest.BalancerHarness{
		New: func(t *testing.T) providers.Balancer { return fake.New(nil).Balancer() },
	})
}

func TestConformanceLogs(t *testing.T) {
	providertest.TestLogs(t, providertest.LogsHarness{
		New: func(t *testing.T) providers.Logs { return fake.New(nil).Logs() },
	})
}

func TestConformanceScheduler(t *testing.T) {
	providertest.TestScheduler(t, providertest.SchedulerHarness{
		New: func(t *testing.T) providertest.SchedulerSetup {
			rack := fake.New(nil)
			img := rack.Push("app", "v1", &fake.ImageConfig{Cmd: []string{"serve"}})
			crash := rack.Push("app", "crash", &fake.ImageConfig{Cmd: []string{"crash"}})
			rack.CrashLoop(crash.Digest)
			rack.ExitCode("migrate --all", 3, "migrated 3 tables", "done")
			return providertest.SchedulerSetup{
				Scheduler: rack.Scheduler(),
				Image:     img,
				Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}, {Name: "worker", Count: 1}},
				Crash:     &crash,
				Balancer:  rack.Balancer(),
				Logs:      rack.Logs(),
				Run:       &providertest.RunCase{Command: []string{"migrate", "--all"}, Output: "done", ExitCode: 3},
			}
		},
	})
}
