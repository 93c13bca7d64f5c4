package ecsscheduler_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/providertest"
)

// TestConformance runs the scheduler suite on the in-process ECS server,
// which advances one step per DescribeServices and DescribeTasks call, so
// the suite polls without pausing.
func TestConformance(t *testing.T) {
	srv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	crash := providers.Image{Repository: image.Repository, Digest: "sha256:" + strings.Repeat("c", 64)}
	srv.CrashImage(crash.Digest, 1)
	sch := ecsscheduler.New(ecs.NewFromConfig(awstest.ConfigFor(srv.URL)), &ecsscheduler.Options{
		Cluster: "conformance", Subnets: []string{"subnet-1"},
	})
	providertest.TestScheduler(t, providertest.SchedulerHarness{
		New: func(t *testing.T) providertest.SchedulerSetup {
			return providertest.SchedulerSetup{
				Scheduler: sch,
				Image:     image,
				Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}, {Name: "worker", Count: 1}},
				Crash:     &crash,
				Run:       &providertest.RunCase{Command: []string{"true"}, ExitCode: 0},
			}
		},
	})
}
