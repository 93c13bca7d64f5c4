package albbalancer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/internal/elbtest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/providertest"
)

// drainingAttacher adds to elbtest.Attacher what ECS does for a deleted
// service, which ListServices no longer lists while it drains: the
// targets of a target group that no listed service names any more are
// deregistered.
type drainingAttacher struct {
	*elbtest.Attacher

	mu   sync.Mutex
	seen map[string]bool // target groups services named at an earlier Sync
}

// Sync registers the listed services' running tasks, then deregisters the
// targets of the target groups only deleted services named.
func (d *drainingAttacher) Sync(ctx context.Context) error {
	if err := d.Attacher.Sync(ctx); err != nil {
		return err
	}
	named := map[string]bool{}
	p := ecs.NewListServicesPaginator(d.ECS, &ecs.ListServicesInput{Cluster: aws.String(d.Cluster)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for chunk := range slices.Chunk(page.ServiceArns, 10) {
			out, err := d.ECS.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(d.Cluster), Services: chunk})
			if err != nil {
				return err
			}
			for _, svc := range out.Services {
				for _, lb := range svc.LoadBalancers {
					if lb.TargetGroupArn != nil {
						named[*lb.TargetGroupArn] = true
					}
				}
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	for tg := range d.seen {
		if named[tg] {
			continue
		}
		out, err := d.ELBv2.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
		if err != nil {
			delete(d.seen, tg) // the target group was deleted
			continue
		}
		var targets []elbv2types.TargetDescription
		for _, th := range out.TargetHealthDescriptions {
			targets = append(targets, *th.Target)
		}
		if len(targets) > 0 {
			if _, err := d.ELBv2.DeregisterTargets(ctx, &elbv2.DeregisterTargetsInput{TargetGroupArn: aws.String(tg), Targets: targets}); err != nil {
				return err
			}
		}
	}
	maps.Copy(d.seen, named)
	return nil
}

// withDrainingALB is the ALB balancer with ECS's registration and
// deregistration of tasks simulated: Health syncs first.
type withDrainingALB struct {
	*albbalancer.Balancer
	att *drainingAttacher
}

func (w withDrainingALB) Health(ctx context.Context, id string) ([]providers.TargetHealth, error) {
	if err := w.att.Sync(ctx); err != nil {
		return nil, err
	}
	return w.Balancer.Health(ctx, id)
}

// crashOnShift is withDrainingALB that, once armed with an image, makes
// that image's tasks crash as soon as a weighted deploy sends them part of
// the traffic: a staged release that turns bad while its canary bakes.
type crashOnShift struct {
	withDrainingALB
	srv *ecstest.Server

	mu    sync.Mutex
	image string // digest of the image to crash; "" when disarmed
}

func (c *crashOnShift) arm(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.image = digest
}

// SetWeights sets the weights, then crashes the armed image when some
// set now gets part, not all, of the traffic.
func (c *crashOnShift) SetWeights(ctx context.Context, routeID string, weights map[string]int) error {
	if err := c.withDrainingALB.SetWeights(ctx, routeID, weights); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	split := false
	for _, w := range weights {
		split = split || w > 0 && w < 100
	}
	if c.image != "" && split {
		c.srv.CrashImageNow(c.image, 1)
		c.image = ""
	}
	return nil
}

// weightedRack is an ECS scheduler on the ECS test server and the ALB
// balancer on the emulator, with registry, logs and store from the fake
// rack.
type weightedRack struct {
	*awsRack
	srv *ecstest.Server
	bal withDrainingALB
}

// newWeightedRack is newAWSRack without the classic balancer, with the
// ECS test server kept to script crashes and settle the simulation, and
// the ALB wrapped to deregister the targets of deleted services.
func newWeightedRack(t *testing.T) *weightedRack {
	t.Helper()
	alb := newEnv(t, nil) // skips without the emulator
	srv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	client := ecs.NewFromConfig(awstest.ConfigFor(srv.URL))
	att := &drainingAttacher{Attacher: &elbtest.Attacher{ECS: client, Cluster: "rack", ELBv2: alb.client}}
	r := &awsRack{
		fake: fake.New(nil),
		sch: ecsscheduler.New(client, &ecsscheduler.Options{
			Cluster: "rack", Subnets: []string{"subnet-a"}, SecurityGroups: []string{"sg-1"},
			ExecutionRoleARN: "arn:aws:iam::000000000000:role/exec",
		}),
		ecs: client, alb: alb,
	}
	return &weightedRack{awsRack: r, srv: srv, bal: withDrainingALB{alb.b, att}}
}

// weightedOutcome is what a weighted deploy leaves, once ECS settled.
type weightedOutcome struct {
	// Failed is the step a failed deploy failed at ("" for success) and
	// RolledBack whether it restored the previous release.
	Failed     convox.Step
	RolledBack bool
	// Active is the app's active release; ECS is the release ECS reports
	// serving and Running the releases of its running tasks.
	Active  string
	ECS     string
	Running []string
	// Weights are the weights of the web route's target sets.
	Weights map[string]int
	// TargetGroups are the target groups of the app's ECS services, one
	// per service.
	TargetGroups []string
}

// targetGroups returns the names of the target groups the app's ECS
// services are attached to.
func targetGroups(t *testing.T, r *weightedRack, app string) []string {
	t.Helper()
	ctx := t.Context()
	list, err := r.ecs.ListServices(ctx, &ecs.ListServicesInput{Cluster: aws.String("rack"), MaxResults: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("rack"), Services: list.ServiceArns, Include: []ecstypes.ServiceField{ecstypes.ServiceFieldTags}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range out.Services {
		if !slices.ContainsFunc(svc.Tags, func(tg ecstypes.Tag) bool {
			return aws.ToString(tg.Key) == "convox:app" && aws.ToString(tg.Value) == app
		}) {
			continue
		}
		for _, lb := range svc.LoadBalancers {
			tgs, err := r.alb.client.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{aws.ToString(lb.TargetGroupArn)}})
			if err != nil || len(tgs.TargetGroups) != 1 {
				t.Fatalf("target group of service %s: %+v, %v", aws.ToString(svc.ServiceName), tgs, err)
			}
			names = append(names, aws.ToString(tgs.TargetGroups[0].TargetGroupName))
		}
	}
	slices.Sort(names)
	return names
}

// TestWeightedDeploysThroughECSAndTheALB deploys one app in turn with a
// canary, a blue/green and a canary whose release crashes while it bakes,
// through ECS (the test server) and the ALB (the emulator). Weighted
// deploys alternate between the route's default target group
// "<app>-web" and its second set "<app>-web-g".
func TestWeightedDeploysThroughECSAndTheALB(t *testing.T) {
	r := newWeightedRack(t)
	srv := r.srv
	bal := &crashOnShift{withDrainingALB: r.bal, srv: srv}
	c := r.client(t, convox.Rack{Balancer: bal})
	ctx := t.Context()
	app := awstest.Name(t, "shop")
	deploy(t, r.awsRack, c, app, "", convox.RouteConfig{Path: "/shop"}) // R1, rolling
	route := app + "-web"
	canary := convox.CanarySteps(convox.CanaryStep{Percent: 50, Bake: time.Second})

	tests := []struct {
		name     string
		strategy convox.Strategy
		// crash makes the new release's tasks crash once traffic reaches them.
		crash bool
		want  weightedOutcome
	}{
		{"a canary moves all traffic to the new release in the second target group", canary, false, weightedOutcome{
			Active: "R2", ECS: "R2", Running: []string{"R2"},
			Weights: map[string]int{"": 0, "g": 100}, TargetGroups: []string{route + "-g"},
		}},
		{"a blue/green moves all traffic back to the default target group and removes the second", convox.BlueGreen(0), false, weightedOutcome{
			Active: "R3", ECS: "R3", Running: []string{"R3"},
			Weights: map[string]int{"": 100}, TargetGroups: []string{route},
		}},
		{"a canary whose release crashes while baking ends with all traffic on the old target group and the old release serving", canary, true, weightedOutcome{
			Failed: convox.StepBake, RolledBack: true,
			Active: "R3", ECS: "R3", Running: []string{"R3"},
			Weights: map[string]int{"": 100, "g": 0}, TargetGroups: []string{route},
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := fmt.Sprintf("v%d", i+2)
			img := r.fake.Push(app, tag, &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"VERSION=" + tag}})
			if tt.crash {
				bal.arm(img.Digest)
			}
			_, err := c.App(app).Deploy(ctx, convox.ReleaseSpec{Image: app + ":" + tag}, &convox.DeployOptions{Strategy: tt.strategy})
			var got weightedOutcome
			var de *convox.DeployError
			switch {
			case errors.As(err, &de):
				got.Failed, got.RolledBack = de.Step, de.RolledBack
			case err != nil:
				t.Fatalf("Deploy: %v", err)
			}
			srv.Settle()
			a, err := c.App(app).Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got.Active = a.Active
			st, err := r.sch.Status(ctx, app)
			if err != nil {
				t.Fatal(err)
			}
			got.ECS = st.Release
			for _, task := range st.Tasks {
				if task.State == providers.TaskRunning && !slices.Contains(got.Running, task.Release) {
					got.Running = append(got.Running, task.Release)
				}
			}
			slices.Sort(got.Running)
			if got.Weights, err = bal.Weights(ctx, route); err != nil {
				t.Fatal(err)
			}
			got.TargetGroups = targetGroups(t, r, app)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSchedulerConformanceOnECSAndTheALB runs the scheduler suite on ECS
// (the test server) with the ALB (the emulator) as its balancer, so that
// its binding cases, weighted target sets included, run against real
// target groups.
func TestSchedulerConformanceOnECSAndTheALB(t *testing.T) {
	r := newWeightedRack(t)
	crash := providers.Image{Repository: "000000000000.dkr.ecr.us-east-1.amazonaws.com/web", Digest: "sha256:" + strings.Repeat("c", 64)}
	r.srv.CrashImage(crash.Digest, 1)
	providertest.TestScheduler(t, providertest.SchedulerHarness{
		New: func(t *testing.T) providertest.SchedulerSetup {
			return providertest.SchedulerSetup{
				Scheduler: r.sch,
				Balancer:  r.bal,
				Image:     providers.Image{Repository: crash.Repository, Digest: "sha256:" + strings.Repeat("a", 64)},
				Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}, {Name: "worker", Count: 1}},
				Crash:     &crash,
			}
		},
	})
}
