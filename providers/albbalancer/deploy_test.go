package albbalancer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/internal/elbtest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/elbbalancer"
	"github.com/convox-go/convox/providers/fake"
)

// withALB is the ALB balancer with ECS's registration of tasks simulated:
// Health first registers the running tasks, as ECS would have.
type withALB struct {
	*albbalancer.Balancer
	att *elbtest.Attacher
}

func (w withALB) Health(ctx context.Context, id string) ([]providers.TargetHealth, error) {
	if err := w.att.Sync(ctx); err != nil {
		return nil, err
	}
	return w.Balancer.Health(ctx, id)
}

// withELB is the same for the classic balancer.
type withELB struct {
	*elbbalancer.Balancer
	att *elbtest.Attacher
}

func (w withELB) Health(ctx context.Context, id string) ([]providers.TargetHealth, error) {
	if err := w.att.Sync(ctx); err != nil {
		return nil, err
	}
	return w.Balancer.Health(ctx, id)
}

// awsRack is an ECS scheduler on the ECS test server, the ALB balancer on
// the emulator and the classic balancer on the classic ELB test server,
// with registry, logs and store from the fake rack.
type awsRack struct {
	fake      *fake.Rack
	sch       *ecsscheduler.Scheduler
	ecs       *ecs.Client
	alb       *env
	elbClient *elb.Client
	albBal    withALB
	elbBal    withELB
}

func newAWSRack(t *testing.T) *awsRack {
	t.Helper()
	alb := newEnv(t, nil) // skips without the emulator
	ecsSrv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	ecsClient := ecs.NewFromConfig(awstest.ConfigFor(ecsSrv.URL))
	elbSrv := elbtest.New(t)
	elbClient := elb.NewFromConfig(awstest.ConfigFor(elbSrv.URL))
	att := &elbtest.Attacher{ECS: ecsClient, Cluster: "rack", ELB: elbClient, ELBv2: alb.client}
	r := &awsRack{
		fake: fake.New(nil),
		sch: ecsscheduler.New(ecsClient, &ecsscheduler.Options{
			Cluster: "rack", Subnets: []string{"subnet-a"}, SecurityGroups: []string{"sg-1"},
			ExecutionRoleARN: "arn:aws:iam::000000000000:role/exec",
		}),
		ecs: ecsClient, alb: alb, elbClient: elbClient,
		albBal: withALB{alb.b, att},
		elbBal: withELB{elbbalancer.New(elbClient, &elbbalancer.Options{Subnets: []string{"subnet-a"}}), att},
	}
	return r
}

func (r *awsRack) client(t *testing.T, rack convox.Rack) *convox.Client {
	t.Helper()
	rack.Registry, rack.Scheduler, rack.Logs, rack.Store = r.fake.Registry(), r.sch, r.fake.Logs(), r.fake.Store()
	c, err := convox.New(rack, &convox.Options{PollInterval: time.Millisecond, MaxPollInterval: 10 * time.Millisecond,
		Timeout: time.Minute, OnEvent: func(ev convox.Event) { t.Log(ev) }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deploy creates app on the named balancer and deploys a web process to it.
func deploy(t *testing.T, r *awsRack, c *convox.Client, app, balancer string, route convox.RouteConfig) *convox.Release {
	t.Helper()
	r.fake.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
	if _, err := c.CreateApp(t.Context(), app, &convox.AppSpec{Balancer: balancer}); err != nil {
		t.Fatal(err)
	}
	rel, err := c.App(app).Deploy(t.Context(), convox.ReleaseSpec{Image: app + ":v1", Processes: []convox.Process{
		{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}, Route: route},
	}}, nil)
	if err != nil {
		t.Fatalf("Deploy %s: %v", app, err)
	}
	t.Cleanup(func() { c.DeleteApp(context.Background(), app) })
	return rel
}

type outcome struct {
	Status  convox.ReleaseStatus
	Healthy bool
}

func TestDeployThroughECSAndTheALB(t *testing.T) {
	r := newAWSRack(t)
	ctx := t.Context()
	c := r.client(t, convox.Rack{Balancer: r.albBal})
	app := awstest.Name(t, "shop")
	rel := deploy(t, r, c, app, "", convox.RouteConfig{Path: "/shop"})
	if diff := cmp.Diff(outcome{convox.StatusActive, true}, outcome{rel.Status, rel.Healthy}); diff != "" {
		t.Errorf("release (-want +got):\n%s", diff)
	}
	id := app + "-web"
	tg, err := r.alb.client.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	tgARN := aws.ToString(tg.TargetGroups[0].TargetGroupArn)

	t.Run("the app reports the load balancer's DNS name and its path", func(t *testing.T) {
		got, err := c.App(app).Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"web": "http://" + aws.ToString(r.alb.lb(t).DNSName) + "/shop/"}
		if diff := cmp.Diff(want, got.Endpoints); diff != "" {
			t.Errorf("endpoints (-want +got):\n%s", diff)
		}
	})

	t.Run("the ECS service runs on Fargate in the route's target group", func(t *testing.T) {
		out, err := r.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("rack"), Services: []string{app + "_web"}})
		if err != nil {
			t.Fatal(err)
		}
		svc := out.Services[0]
		want := []ecstypes.LoadBalancer{{TargetGroupArn: aws.String(tgARN), ContainerName: aws.String("web"), ContainerPort: aws.Int32(8080)}}
		if diff := cmp.Diff(want, svc.LoadBalancers, cmpopts.IgnoreUnexported(ecstypes.LoadBalancer{})); diff != "" {
			t.Errorf("service load balancers (-want +got):\n%s", diff)
		}
		if svc.LaunchType != ecstypes.LaunchTypeFargate {
			t.Errorf("launch type %s, want FARGATE", svc.LaunchType)
		}
	})

	t.Run("the tasks are healthy targets and the health check is the release's", func(t *testing.T) {
		hs, err := r.alb.b.Health(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var states []providers.TargetState
		for _, h := range hs {
			states = append(states, h.State)
		}
		if diff := cmp.Diff([]providers.TargetState{providers.TargetHealthy, providers.TargetHealthy}, states); diff != "" {
			t.Errorf("target states (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff("/health", aws.ToString(tg.TargetGroups[0].HealthCheckPath)); diff != "" {
			t.Errorf("health check path (-want +got):\n%s", diff)
		}
	})

	t.Run("the balancer and the scheduler offer weighted strategies", func(t *testing.T) {
		// Weighted deploys themselves run in staged_deploy_test.go.
		rk := convox.Rack{Registry: r.fake.Registry(), Scheduler: r.sch, Balancer: r.albBal, Logs: r.fake.Logs(), Store: r.fake.Store()}
		if err := rk.Check(convox.CapWeightShifter); err != nil {
			t.Errorf("Check(WeightShifter) on the ALB: %v", err)
		}
		if _, ok := any(r.sch).(providers.Stager); !ok {
			t.Errorf("the ECS scheduler does not stage")
		}
	})
}

func TestTwoAppsOnTwoBalancersOfOneRack(t *testing.T) {
	r := newAWSRack(t)
	ctx := t.Context()
	c := r.client(t, convox.Rack{Balancers: []convox.Named[providers.Balancer]{{Name: "elb", Provider: r.elbBal}, {Name: "alb", Provider: r.albBal}}})
	shop, blog := awstest.Name(t, "shop"), awstest.Name(t, "blog")
	deploy(t, r, c, shop, "alb", convox.RouteConfig{Path: "/shop"})
	deploy(t, r, c, blog, "elb", convox.RouteConfig{})

	elbOut, err := r.elbClient.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{blog + "-web"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		app          string
		wantBalancer string
		wantEndpoint string
	}{
		{shop, "alb", "http://" + aws.ToString(r.alb.lb(t).DNSName) + "/shop/"},
		{blog, "elb", "http://" + aws.ToString(elbOut.LoadBalancerDescriptions[0].DNSName) + "/"},
	}
	for _, tt := range tests {
		t.Run("the app on "+tt.wantBalancer+" reports that balancer's endpoint", func(t *testing.T) {
			got, err := c.App(tt.app).Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			type app struct {
				Balancer  string
				Endpoints map[string]string
			}
			want := app{tt.wantBalancer, map[string]string{"web": tt.wantEndpoint}}
			if diff := cmp.Diff(want, app{got.Providers.Balancer, got.Endpoints}); diff != "" {
				t.Errorf("app (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a canary of the app on the classic load balancer is refused for the balancer", func(t *testing.T) {
		_, err := c.App(blog).Deploy(ctx, convox.ReleaseSpec{Image: blog + ":v1"}, &convox.DeployOptions{Strategy: convox.Canary(10)})
		if !errors.Is(err, providers.ErrUnimplemented) || !strings.Contains(err.Error(), `balancer "elb" does not implement WeightShifter`) {
			t.Fatalf("canary Deploy: got %v, want ErrUnimplemented naming the balancer", err)
		}
	})
}
