package ecsscheduler_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

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

// TestConformanceWithSecretsInSSM runs the scheduler suite with secrets
// kept in SSM (moto): the suite gives secret values in Desired.Env and
// RunSpec.Env, which Apply, Stage and RunTask store as parameters. No
// request to ECS carries a secret value of the suite; only PutParameter
// requests do.
func TestConformanceWithSecretsInSSM(t *testing.T) {
	e := awstest.EmulatorOf(t, awstest.Moto)
	srv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	crash := providers.Image{Repository: image.Repository, Digest: "sha256:" + strings.Repeat("c", 64)}
	srv.CrashImage(crash.Digest, 1)
	ecsWire, ssmWire := &wire{}, &wire{}
	ecsCfg := awstest.ConfigFor(srv.URL)
	ecsCfg.APIOptions = append(ecsCfg.APIOptions, ecsWire.AddTo)
	ssmCfg := e.Config()
	ssmCfg.APIOptions = append(ssmCfg.APIOptions, ssmWire.AddTo)
	ssmAPI := ssm.NewFromConfig(ssmCfg)
	cl := awstest.Name(t, "conformance")
	sch := ecsscheduler.New(ecs.NewFromConfig(ecsCfg), &ecsscheduler.Options{
		Cluster: cl, Subnets: []string{"subnet-1"}, SSM: ssmAPI,
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
	// Every secret value of the suite starts with this.
	const secret = "providertest-secret-"
	if ops := ecsWire.carrying(secret); len(ops) != 0 {
		t.Errorf("ECS requests carrying a secret value: %v", ops)
	}
	// The suite deletes its apps: their parameters are gone.
	left, err := ssmAPI.GetParametersByPath(t.Context(), &ssm.GetParametersByPathInput{Path: aws.String("/convox/" + cl), Recursive: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range left.Parameters {
		t.Errorf("parameter left after the suite deleted its apps: %s", aws.ToString(p.Name))
	}
	ops := ssmWire.carrying(secret)
	if len(ops) == 0 || slices.ContainsFunc(ops, func(op string) bool { return op != "PutParameter" }) {
		t.Errorf("SSM requests carrying a secret value: %v, want PutParameter only, at least one", ops)
	}
}
