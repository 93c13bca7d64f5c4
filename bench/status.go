package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

// The status part polls the status of 50 ECS services — 25 apps of two
// processes each — through the ECS scheduler, against the in-process ECS
// server that speaks the real wire protocol, and counts the
// DescribeServices calls each poll makes with the SDK client's middleware
// (awstest.Counter):
//
//   - batched: StatusMany of all 25 apps, which the client's concurrent
//     waits use (the scheduler implements providers.BatchStatus); it
//     describes the services ten per call;
//   - per app: Status of each app in turn, as a lone wait polls (for
//     comparison: each app's two services share one call);
//   - one per service: a loop calling DescribeServices for each service
//     alone, with the same client.

// Shape of the status part.
const (
	statusApps      = 25
	statusProcesses = 2 // per app: 50 services in all
	statusPolls     = 20
	statusPollsShrt = 2
	statusCluster   = "bench"
)

// Goal of issue #10: batching makes at least five times fewer
// DescribeServices calls than one per service.
const goalStatusRatio = 5.0

func runStatus(ctx context.Context, cfg config) error {
	polls := statusPolls
	if cfg.short {
		polls = statusPollsShrt
	}
	srv := ecstest.NewServer(nil)
	defer srv.Close()
	calls := awstest.NewCounter()
	awsCfg := awstest.ConfigFor(srv.URL)
	awsCfg.APIOptions = append(awsCfg.APIOptions, calls.AddTo)
	client := ecs.NewFromConfig(awsCfg)
	sch := ecsscheduler.New(client, &ecsscheduler.Options{
		Cluster:          statusCluster,
		Subnets:          []string{"subnet-1"},
		SecurityGroups:   []string{"sg-1"},
		ExecutionRoleARN: "arn:aws:iam::000000000000:role/exec",
	})
	image := providers.Image{Repository: "000000000000.dkr.ecr.us-east-1.amazonaws.com/web", Digest: "sha256:" + strings.Repeat("a", 64)}
	var apps []string
	for i := range statusApps {
		app := fmt.Sprintf("app%02d", i)
		apps = append(apps, app)
		var procs []providers.Process
		for j := range statusProcesses {
			procs = append(procs, providers.Process{Name: fmt.Sprintf("p%d", j), Count: 1})
		}
		if _, err := sch.Apply(ctx, providers.Desired{App: app, Release: "R1", Token: "t1", Image: image, Processes: procs}); err != nil {
			return fmt.Errorf("apply %s: %w", app, err)
		}
	}
	srv.Settle()
	services := statusApps * statusProcesses

	// A first poll fills the scheduler's cache of task definitions, as the
	// first poll of a real wait does; the measured polls are the steady ones.
	if _, err := sch.StatusMany(ctx, apps); err != nil {
		return err
	}

	calls.Reset()
	for range polls {
		m, err := sch.StatusMany(ctx, apps)
		if err != nil {
			return fmt.Errorf("status of every app: %w", err)
		}
		n := 0
		for _, st := range m {
			n += len(st.Processes)
		}
		if len(m) != statusApps || n != services {
			return fmt.Errorf("a batched poll observed %d apps and %d services, want %d and %d", len(m), n, statusApps, services)
		}
	}
	batched := calls.Counts()

	calls.Reset()
	for range polls {
		for _, app := range apps {
			if _, err := sch.Status(ctx, app); err != nil {
				return fmt.Errorf("status of %s: %w", app, err)
			}
		}
	}
	perApp := calls.Count("DescribeServices")

	names, err := serviceNames(ctx, client)
	if err != nil {
		return err
	}
	if len(names) != services {
		return fmt.Errorf("the cluster lists %d services, want %d", len(names), services)
	}
	calls.Reset()
	for range polls {
		for _, name := range names {
			out, err := client.DescribeServices(ctx, &ecs.DescribeServicesInput{
				Cluster: aws.String(statusCluster), Services: []string{name}, Include: []types.ServiceField{types.ServiceFieldTags},
			})
			if err != nil {
				return fmt.Errorf("DescribeServices %s: %w", name, err)
			}
			if len(out.Services) != 1 {
				return fmt.Errorf("DescribeServices %s returned %d services", name, len(out.Services))
			}
		}
	}
	naive := calls.Count("DescribeServices")

	per := func(n int) float64 { return float64(n) / float64(polls) }
	fmt.Fprintf(cfg.out, "setup: %d apps x %d processes = %d ECS services, steady; %d polls each way, counted with awstest.Counter\n", statusApps, statusProcesses, services, polls)
	fmt.Fprintf(cfg.out, "DescribeServices calls per poll: batched (StatusMany) %.1f, per app (Status of each app) %.1f, one per service %.1f\n",
		per(batched["DescribeServices"]), per(perApp), per(naive))
	var other []string
	for _, op := range slices.Sorted(maps.Keys(batched)) {
		other = append(other, fmt.Sprintf("%s %.1f", op, per(batched[op])))
	}
	fmt.Fprintf(cfg.out, "every ECS call of one batched poll: %s\n", strings.Join(other, ", "))
	fmt.Fprintf(cfg.out, "ratio one-per-service/per-app DescribeServices calls = %.2f (for comparison)\n", float64(naive)/float64(perApp))
	goal(cfg.out, "one-per-service/batched DescribeServices calls per poll", float64(naive)/float64(batched["DescribeServices"]), goalStatusRatio)
	return nil
}

// serviceNames lists the services of the benchmark's cluster.
func serviceNames(ctx context.Context, client *ecs.Client) ([]string, error) {
	var names []string
	p := ecs.NewListServicesPaginator(client, &ecs.ListServicesInput{Cluster: aws.String(statusCluster), MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ListServices: %w", err)
		}
		for _, arn := range out.ServiceArns {
			names = append(names, arn[strings.LastIndexByte(arn, '/')+1:])
		}
	}
	slices.Sort(names)
	return names, nil
}
