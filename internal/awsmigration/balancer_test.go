package awsmigration_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/elbtest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/elbbalancer"
	"github.com/convox-go/convox/providers/fake"
)

// balancers is the balancer side of the harness: the classic ELB test
// server, the emulator's ELBv2 and the attacher that registers the ECS
// test server's tasks with both.
type balancers struct {
	elb   *elb.Client
	elbv2 *elbv2.Client
	att   *elbtest.Attacher
	// albs are the names of the emulator load balancers of "alb" and "alb2".
	albs map[string]string
}

func newBalancers(t *testing.T, h *harness) *balancers {
	srv := elbtest.New(t)
	b := &balancers{elb: elb.NewFromConfig(awstest.ConfigFor(srv.URL)), elbv2: elbv2.NewFromConfig(h.cfg),
		albs: map[string]string{"alb": awstest.Name(t, "alb"), "alb2": awstest.Name(t, "alb")}}
	b.att = &elbtest.Attacher{ECS: h.ecsClient(), Cluster: cluster, ELB: b.elb, ELBv2: b.elbv2}
	return b
}

// named returns new balancer providers: "elb" (a classic load balancer per
// routed process) and "alb" and "alb2" (two shared application load
// balancers), each registering the ECS tasks before it reports health.
func (b *balancers) named() []convox.Named[providers.Balancer] {
	alb := func(name string) providers.Balancer {
		return synced{albbalancer.New(b.elbv2, &albbalancer.Options{
			LoadBalancer: b.albs[name], Subnets: []string{"subnet-a", "subnet-b"}, SecurityGroups: []string{"sg-1"}, Domain: "apps.example.com",
		}), b.att}
	}
	return []convox.Named[providers.Balancer]{
		{Name: "elb", Provider: synced{elbbalancer.New(b.elb, &elbbalancer.Options{Subnets: []string{"subnet-a"}}), b.att}},
		{Name: "alb", Provider: alb("alb")},
		{Name: "alb2", Provider: alb("alb2")},
	}
}

// targetGroupsOf returns the names of the target groups on the emulator
// whose tags say they belong to the load balancer of balancer name.
func (b *balancers) targetGroupsOf(t *testing.T, name string) []string {
	t.Helper()
	var arns []string
	names := map[string]string{}
	p := elbv2.NewDescribeTargetGroupsPaginator(b.elbv2, &elbv2.DescribeTargetGroupsInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("DescribeTargetGroups: %v", err)
		}
		for _, g := range out.TargetGroups {
			arns = append(arns, aws.ToString(g.TargetGroupArn))
			names[aws.ToString(g.TargetGroupArn)] = aws.ToString(g.TargetGroupName)
		}
	}
	var got []string
	for chunk := range slices.Chunk(arns, 20) {
		out, err := b.elbv2.DescribeTags(t.Context(), &elbv2.DescribeTagsInput{ResourceArns: chunk})
		if err != nil {
			t.Fatalf("DescribeTags: %v", err)
		}
		for _, d := range out.TagDescriptions {
			for _, tag := range d.Tags {
				if aws.ToString(tag.Key) == albbalancer.TagBalancer && aws.ToString(tag.Value) == b.albs[name] {
					got = append(got, names[aws.ToString(d.ResourceArn)])
				}
			}
		}
	}
	return got
}

// endpoint returns where the web process of app is reached on the balancer
// name: the classic load balancer's DNS name, or the ALB route's host.
func (b *balancers) endpoint(t *testing.T, name, app string) string {
	t.Helper()
	if name != "elb" {
		return "http://" + app + "-web.apps.example.com/"
	}
	out, err := b.elb.DescribeLoadBalancers(t.Context(), &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{app + "-web"}})
	if err != nil || len(out.LoadBalancerDescriptions) != 1 {
		t.Fatalf("DescribeLoadBalancers(%s-web) = %v, %v", app, out, err)
	}
	return "http://" + aws.ToString(out.LoadBalancerDescriptions[0].DNSName) + "/"
}

func pick(bs []convox.Named[providers.Balancer], name string) providers.Balancer {
	for _, b := range bs {
		if b.Name == name {
			return b.Provider
		}
	}
	return nil
}

// serviceBalancers returns what the app's web service is attached to, as
// "classic:<name>" and "target-group:<name>" in the service's order, and
// its launch type.
func serviceBalancers(t *testing.T, h *harness, app string) ([]string, ecstypes.LaunchType) {
	t.Helper()
	out, err := h.ecsClient().DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{app + "_web"}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("DescribeServices(%s-web) = %v, %v", app, out, err)
	}
	var got []string
	for _, lb := range out.Services[0].LoadBalancers {
		switch {
		case lb.LoadBalancerName != nil:
			got = append(got, "classic:"+*lb.LoadBalancerName)
		case lb.TargetGroupArn != nil:
			// arn:...:targetgroup/<name>/<id>
			parts := strings.Split(*lb.TargetGroupArn, "/")
			got = append(got, "target-group:"+parts[len(parts)-2])
		}
	}
	return got, out.Services[0].LaunchType
}

// TestBalancerMigrationOnECS moves an ECS app from one AWS balancer to
// another where that cannot work: two ALB balancers without namespaces
// name target groups by app and process alone, and target group names are
// unique per account and region, so on ECS "alb" → "alb2" cannot serve on
// both balancers at once, which the migration needs (with a namespace per
// balancer it works: TestALBToALBMigrationOnECS): StartBalancerMigration must fail, and must leave the
// app serving on its balancer as before, with nothing left on the new
// one, and deploys and rollback working. ("elb" → "alb" works:
// TestClassicELBToALBMigrationOnECS.)
func TestBalancerMigrationOnECS(t *testing.T) {
	awstest.Endpoint(t) // skips without the emulator
	tests := []struct {
		name     string
		from, to string
		// wantErr and wantReason describe the refusal.
		wantErr    error
		wantReason string
		// wantKind is the kind of load balancer the ECS service stays
		// attached to, and wantLaunch its launch type.
		wantKind   string
		wantLaunch ecstypes.LaunchType
	}{
		{
			name: "ALB to another ALB", from: "alb", to: "alb2",
			wantErr: providers.ErrConflict, wantReason: "exists and does not belong to route",
			wantKind: "target-group", wantLaunch: ecstypes.LaunchTypeFargate,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			bs := newBalancers(t, h)
			ctx := t.Context()
			fr := fake.New(nil)
			app := awstest.Name(t, "shop")
			fr.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
			fr.Push(app, "v2", &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"VERSION=2"}})
			named := bs.named()
			// The compensation of the refused re-deploy re-applies the same
			// refused bindings until CompensateTimeout ends (see the package
			// documentation), after which the failed deploy can no longer
			// release its lease; LeaseTTL is shorter, as by default, so that
			// the abort that follows takes the lease over.
			c := h.client(convox.Rack{Registry: fr.Registry(), Logs: fr.Logs(), Balancers: named},
				&convox.Options{PollInterval: 5 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond, Timeout: time.Minute,
					CompensateTimeout: 3 * time.Second, LeaseTTL: time.Second})
			if _, err := c.CreateApp(ctx, app, &convox.AppSpec{Balancer: tc.from}); err != nil {
				t.Fatal(err)
			}
			web := c.App(app)
			r1, err := web.Deploy(ctx, convox.ReleaseSpec{Image: app + ":v1", Processes: []convox.Process{
				{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}},
			}}, nil)
			if err != nil {
				t.Fatalf("deploy on %s: %v", tc.from, err)
			}
			before, err := web.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			route := app + "-web"
			if diff := cmp.Diff(map[string]string{"web": bs.endpoint(t, tc.from, app)}, before.Endpoints); diff != "" {
				t.Errorf("endpoints on %s (-want +got):\n%s", tc.from, diff)
			}
			old, next := pick(named, tc.from), pick(named, tc.to)
			if n := healthy(t, old, route); n != 2 {
				t.Fatalf("%d healthy targets on %s before the migration, want 2", n, tc.from)
			}

			m, err := web.StartBalancerMigration(ctx, tc.to, nil)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantReason) {
				t.Fatalf("StartBalancerMigration(%q) = %+v, %v; want %v naming %q", tc.to, m, err, tc.wantErr, tc.wantReason)
			}
			t.Logf("refused: %v", err)

			type state struct {
				Balancer, MigratingTo, Active string
				Endpoints, NextEndpoints      map[string]string
				Attached                      []string
				Launch                        ecstypes.LaunchType
				Healthy                       int
			}
			look := func() state {
				t.Helper()
				a, err := web.Get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				attached, launch := serviceBalancers(t, h, app)
				return state{a.Providers.Balancer, a.MigratingTo, a.Active, a.Endpoints, a.NextEndpoints, attached, launch, healthy(t, old, route)}
			}
			want := state{Balancer: tc.from, Active: r1.ID, Endpoints: before.Endpoints,
				Attached: []string{tc.wantKind + ":" + route}, Launch: tc.wantLaunch, Healthy: 2}
			if diff := cmp.Diff(want, look()); diff != "" {
				t.Errorf("after the refused start (-want +got):\n%s", diff)
			}
			if groups := bs.targetGroupsOf(t, tc.to); len(groups) != 0 {
				t.Errorf("target groups of %s after the refused start: %v, want none", tc.to, groups)
			}
			if tc.to == "alb" {
				if _, err := next.Health(ctx, route); !errors.Is(err, providers.ErrNotFound) {
					t.Errorf("route on %s after the refused start: Health = %v, want ErrNotFound", tc.to, err)
				}
			}
			if _, err := web.FinishBalancerMigration(ctx, nil); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("FinishBalancerMigration after the refused start = %v, want ErrNotFound", err)
			}
			if err := web.AbortBalancerMigration(ctx, nil); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("AbortBalancerMigration after the refused start = %v, want ErrNotFound", err)
			}

			// A new client, as after a crash, deploys and rolls back on the old balancer.
			c2 := h.client(convox.Rack{Registry: fr.Registry(), Logs: fr.Logs(), Balancers: bs.named()}, nil)
			web = c2.App(app)
			if _, err := web.Deploy(ctx, convox.ReleaseSpec{Image: app + ":v2"}, nil); err != nil {
				t.Fatalf("deploy after the refused start: %v", err)
			}
			rb, err := web.Rollback(ctx, convox.Previous(), nil)
			if err != nil {
				t.Fatalf("rollback after the refused start: %v", err)
			}
			want.Active = rb.ID
			if diff := cmp.Diff(want, look()); diff != "" {
				t.Errorf("after a deploy and a rollback (-want +got):\n%s", diff)
			}
			t.Logf("%s → %s refused; %s serves %s with %d healthy targets; rollback %s of %s", tc.from, tc.to, tc.from, before.Endpoints["web"], want.Healthy, rb.ID, rb.Parent)
		})
	}
}
