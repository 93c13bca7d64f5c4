package elbbalancer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/internal/elbtest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/elbbalancer"
	"github.com/convox-go/convox/providers/fake"
)

// attached is the balancer with ECS's registration of tasks simulated:
// Health first registers the running tasks, as ECS would have.
type attached struct {
	*elbbalancer.Balancer
	att *elbtest.Attacher
}

func (a attached) Health(ctx context.Context, id string) ([]providers.TargetHealth, error) {
	if err := a.att.Sync(ctx); err != nil {
		return nil, err
	}
	return a.Balancer.Health(ctx, id)
}

func TestDeployThroughECSAndAClassicLoadBalancer(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, nil)
	ecsSrv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	ecsClient := ecs.NewFromConfig(awstest.ConfigFor(ecsSrv.URL))
	sch := ecsscheduler.New(ecsClient, &ecsscheduler.Options{
		Cluster: "rack", Subnets: []string{"subnet-a"}, SecurityGroups: []string{"sg-1"},
		ExecutionRoleARN: "arn:aws:iam::000000000000:role/exec",
	})
	bal := attached{Balancer: e.b, att: &elbtest.Attacher{ECS: ecsClient, Cluster: "rack", ELB: e.client}}
	fr := fake.New(nil)
	fr.Push("shop", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
	c, err := convox.New(convox.Rack{Registry: fr.Registry(), Scheduler: sch, Balancer: bal, Logs: fr.Logs(), Store: fr.Store()},
		&convox.Options{PollInterval: time.Millisecond, MaxPollInterval: 10 * time.Millisecond, Timeout: time.Minute, OnEvent: func(ev convox.Event) { t.Log(ev) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(ctx, "shop", nil); err != nil {
		t.Fatal(err)
	}
	spec := convox.ReleaseSpec{Image: "shop:v1", Processes: []convox.Process{{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}}}}

	rel, err := c.App("shop").Deploy(ctx, spec, nil)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	type outcome struct {
		Status  convox.ReleaseStatus
		Healthy bool
	}
	if diff := cmp.Diff(outcome{convox.StatusActive, true}, outcome{rel.Status, rel.Healthy}); diff != "" {
		t.Errorf("release (-want +got):\n%s", diff)
	}

	t.Run("the app reports the load balancer's endpoint", func(t *testing.T) {
		app, err := c.App("shop").Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{"shop-web"}})
		if err != nil {
			t.Fatal(err)
		}
		d := aws.ToString(out.LoadBalancerDescriptions[0].DNSName)
		if diff := cmp.Diff(map[string]string{"web": "http://" + d + "/"}, app.Endpoints); diff != "" {
			t.Errorf("endpoints (-want +got):\n%s", diff)
		}
	})

	t.Run("the ECS service runs on EC2 behind the classic load balancer", func(t *testing.T) {
		out, err := ecsClient.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("rack"), Services: []string{"shop_web"}})
		if err != nil {
			t.Fatal(err)
		}
		svc := out.Services[0]
		want := []ecstypes.LoadBalancer{{LoadBalancerName: aws.String("shop-web"), ContainerName: aws.String("web"), ContainerPort: aws.Int32(8080)}}
		if diff := cmp.Diff(want, svc.LoadBalancers, cmpopts.IgnoreUnexported(ecstypes.LoadBalancer{})); diff != "" {
			t.Errorf("service load balancers (-want +got):\n%s", diff)
		}
		if svc.LaunchType != ecstypes.LaunchTypeEc2 {
			t.Errorf("launch type %s, want EC2", svc.LaunchType)
		}
	})

	t.Run("every task is a healthy instance of the load balancer", func(t *testing.T) {
		hs, err := e.b.Health(ctx, "shop-web")
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
		if diff := cmp.Diff("HTTP:8080/health 10 5 2 3", e.observe(t, "shop-web").Health); diff != "" {
			t.Errorf("health check (-want +got):\n%s", diff)
		}
	})

	t.Run("a canary is refused before any change", func(t *testing.T) {
		before := ecsSrv.Calls("UpdateService") + ecsSrv.Calls("CreateService")
		_, err := c.App("shop").Deploy(ctx, spec, &convox.DeployOptions{Strategy: convox.Canary(10)})
		if !errors.Is(err, providers.ErrUnimplemented) {
			t.Fatalf("canary Deploy: got %v, want ErrUnimplemented", err)
		}
		if after := ecsSrv.Calls("UpdateService") + ecsSrv.Calls("CreateService"); after != before {
			t.Errorf("the refused canary changed %d services", after-before)
		}
		app, err := c.App("shop").Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rel.ID, app.Active); diff != "" {
			t.Errorf("active release (-want +got):\n%s", diff)
		}
	})

	t.Run("deleting the app deletes its load balancer", func(t *testing.T) {
		if err := c.DeleteApp(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Health(ctx, "shop-web"); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("Health after DeleteApp: got %v, want ErrNotFound", err)
		}
	})
}
