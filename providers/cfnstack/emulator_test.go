package cfnstack_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cfnstack"
)

// rack is a Stack on moto with the clients a test checks through.
type rack struct {
	stack    *cfnstack.Stack
	ecs      *ecs.Client
	elb      *elbv2.Client
	logs     *cloudwatchlogs.Client
	cfn      *cloudformation.Client
	listener string
	cluster  string
	// calls counts the CloudFormation calls of the stack's client.
	calls *awstest.Counter
}

// network is the account's network and shared load balancer, which the
// stack mode expects to exist: made once per test through the EC2 and
// ELBv2 APIs.
func network(t *testing.T, cfg aws.Config) (subnets []string, sg, vpc, listener string) {
	t.Helper()
	subnets, sg = awstest.Subnets(t, cfg)
	vpc, listener = awstest.StackNetwork(t, cfg, subnets, sg, "alb")
	return subnets, sg, vpc, listener
}

// newRack returns a Stack on moto. cfnCfg, when not nil, changes the
// CloudFormation client's configuration (its transport).
func newRack(t *testing.T, cfnCfg func(*aws.Config)) *rack {
	t.Helper()
	return newRackWith(t, cfnCfg, nil)
}

// newRackWith is newRack with a change of the provider's ECS client's
// configuration too.
func newRackWith(t *testing.T, cfnCfg, ecsCfg func(*aws.Config)) *rack {
	t.Helper()
	return newRackOf(t, cfnCfg, ecsCfg, nil)
}

// newRackOf is newRackWith with a change of the provider's options too
// (when opts is not nil).
func newRackOf(t *testing.T, cfnCfg, ecsCfg func(*aws.Config), opts func(*cfnstack.Options)) *rack {
	t.Helper()
	cfg := awstest.EmulatorOf(t, awstest.Moto).Config()
	subnets, sg, vpc, listener := network(t, cfg)
	r := &rack{
		ecs: ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.APIOptions = append(o.APIOptions, awstest.MotoRunsFargateTasks) }), elb: elbv2.NewFromConfig(cfg), logs: cloudwatchlogs.NewFromConfig(cfg),
		listener: listener, cluster: awstest.Name(t, "cluster"), calls: awstest.NewCounter(),
	}
	// The provider's clients count their calls; the clients the test
	// checks through do not.
	c := cfg.Copy()
	c.APIOptions = append(c.APIOptions, r.calls.AddTo)
	counted := c.Copy()
	if cfnCfg != nil {
		cfnCfg(&c)
	}
	r.cfn = cloudformation.NewFromConfig(c)
	ecsCounted := counted.Copy()
	if ecsCfg != nil {
		ecsCfg(&ecsCounted)
	}
	o := &cfnstack.Options{
		Cluster: r.cluster, Region: awstest.Region, Subnets: subnets, SecurityGroups: []string{sg}, VPC: vpc,
		HTTPListener: listener, Domain: "apps.example.com", ExecutionRoleARN: "arn:aws:iam::123456789012:role/exec",
		PollInterval: 10 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond,
	}
	if opts != nil {
		opts(o)
	}
	r.stack = cfnstack.New(r.cfn, ecs.NewFromConfig(ecsCounted), elbv2.NewFromConfig(counted), o)
	return r
}

var (
	imageV1 = providers.Image{Repository: "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop", Digest: "sha256:" + strings.Repeat("1", 64)}
	imageV2 = providers.Image{Repository: imageV1.Repository, Digest: "sha256:" + strings.Repeat("2", 64)}
)

// mutating are the CloudFormation operations that change a stack.
var mutating = []string{"CreateStack", "UpdateStack", "DeleteStack", "CancelUpdateStack", "ContinueUpdateRollback", "CreateChangeSet", "ExecuteChangeSet", "DeleteChangeSet"}

// writes counts the mutating CloudFormation calls made since the last Reset.
func (r *rack) writes() map[string]int {
	out := map[string]int{}
	for op, n := range r.calls.Counts() {
		if slices.Contains(mutating, op) && n > 0 {
			out[op] = n
		}
	}
	return out
}

// service is what ECS says of one service.
type service struct {
	Status  string
	Desired int
	Image   string
	Env     map[string]string
}

// services describes the app's services through the ECS API.
func (r *rack) services(t *testing.T, app string, processes ...string) map[string]service {
	t.Helper()
	var names []string
	for _, p := range processes {
		names = append(names, providers.ResourceName(app, p, ""))
	}
	out, err := r.ecs.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(r.cluster), Services: names})
	if err != nil {
		t.Fatalf("DescribeServices: %v", err)
	}
	got := map[string]service{}
	for _, s := range out.Services {
		sv := service{Status: aws.ToString(s.Status), Desired: int(s.DesiredCount)}
		td, err := r.ecs.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: s.TaskDefinition})
		if err != nil {
			t.Fatalf("DescribeTaskDefinition %s: %v", aws.ToString(s.TaskDefinition), err)
		}
		if cs := td.TaskDefinition.ContainerDefinitions; len(cs) == 1 {
			sv.Image = aws.ToString(cs[0].Image)
			sv.Env = map[string]string{}
			for _, kv := range cs[0].Environment {
				sv.Env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
			}
		}
		got[strings.TrimPrefix(aws.ToString(s.ServiceName), app+"-")] = sv
	}
	return got
}

// release is the desired state of one release of the test app.
func release(app, id, token string, img providers.Image, env map[string]string, web, worker int, binding providers.Binding) providers.Desired {
	d := providers.Desired{
		App: app, Release: id, Token: token, Image: img, Env: env,
		Processes: []providers.Process{
			{Name: "web", Count: web, Port: 8080, CPU: 256, Memory: 512},
			{Name: "worker", Count: worker, CPU: 256, Memory: 512},
		},
	}
	if binding.Target != "" {
		d.Bindings = map[string][]providers.Binding{"web": {binding}}
	}
	return d
}

// TestDeployScaleEnvRollbackDeleteOnMoto drives one app through the
// lifecycle the stack mode exists for and checks each step through the
// ECS, ELBv2 and CloudWatch Logs APIs, counting the CloudFormation writes
// of each step.
func TestDeployScaleEnvRollbackDeleteOnMoto(t *testing.T) {
	r := newRack(t, nil)
	ctx := t.Context()
	app := awstest.Name(t, "shop")
	spec := providers.RouteSpec{App: app, Process: "web", Port: 8080, Protocol: providers.HTTP, Health: providers.HealthCheck{Path: "/health"}}

	// deploy ensures the route and applies, as the root does, and returns
	// the CloudFormation writes it made.
	deploy := func(t *testing.T, d providers.Desired) map[string]int {
		t.Helper()
		r.calls.Reset()
		if _, err := r.stack.EnsureRoute(ctx, spec); err != nil {
			t.Fatalf("EnsureRoute: %v", err)
		}
		ro, err := r.stack.Apply(ctx, d)
		if err != nil {
			t.Fatalf("Apply %s: %v", d.Release, err)
		}
		if ro.Release != d.Release || ro.Token != d.Token {
			t.Errorf("Apply rollout = %+v, want release %s token %s", ro, d.Release, d.Token)
		}
		st, err := r.stack.Status(ctx, app)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		// moto completes a stack update within the UpdateStack call.
		if st.Release != d.Release || len(st.Rollouts) == 0 || st.Rollouts[0].ID != ro.ID || st.Rollouts[0].State != providers.RolloutCompleted {
			t.Errorf("Status after applying %s = %+v, want it the release with its rollout completed", d.Release, st)
		}
		return r.writes()
	}

	route, err := r.stack.EnsureRoute(ctx, spec)
	if err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	firstRouteWrites := r.writes()
	t.Run("the route is a target group and a listener rule of the stack", func(t *testing.T) {
		tgs, err := r.elb.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{route.Binding.Target}})
		if err != nil || len(tgs.TargetGroups) != 1 {
			t.Fatalf("DescribeTargetGroups %s: %v %v", route.Binding.Target, tgs, err)
		}
		tg := tgs.TargetGroups[0]
		if diff := cmp.Diff([]string{"/health", "ip"}, []string{aws.ToString(tg.HealthCheckPath), string(tg.TargetType)}); diff != "" {
			t.Errorf("target group health path and target type (-want +got):\n%s", diff)
		}
		rules, err := r.elb.DescribeRules(ctx, &elbv2.DescribeRulesInput{ListenerArn: aws.String(r.listener)})
		if err != nil {
			t.Fatal(err)
		}
		var hosts []string
		for _, rule := range rules.Rules {
			for _, a := range rule.Actions {
				if aws.ToString(a.TargetGroupArn) == route.Binding.Target {
					for _, c := range rule.Conditions {
						hosts = append(hosts, c.Values...)
					}
				}
			}
		}
		if diff := cmp.Diff([]string{app + "-web.apps.example.com"}, hosts); diff != "" {
			t.Errorf("hosts of the rule forwarding to the route's target group (-want +got):\n%s", diff)
		}
	})

	r1 := release(app, "R1", "t1", imageV1, map[string]string{"MODE": "a"}, 2, 1, route.Binding)
	deployWrites := deploy(t, r1)
	t.Run("deploy: each process is an ECS service running the release's image and environment", func(t *testing.T) {
		want := map[string]service{
			"web":    {Status: "ACTIVE", Desired: 2, Image: imageV1.Ref(), Env: map[string]string{"MODE": "a", "PORT": "8080"}},
			"worker": {Status: "ACTIVE", Desired: 1, Image: imageV1.Ref(), Env: map[string]string{"MODE": "a"}},
		}
		if diff := cmp.Diff(want, r.services(t, app, "web", "worker")); diff != "" {
			t.Errorf("services (-want +got):\n%s", diff)
		}
		groups, err := r.logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/convox/" + app)})
		if err != nil || len(groups.LogGroups) != 1 {
			t.Errorf("log group /convox/%s: %v %v, want it made by the stack", app, groups, err)
		}
	})

	r2 := release(app, "R2", "t2", imageV1, map[string]string{"MODE": "a"}, 3, 0, route.Binding)
	scaleWrites := deploy(t, r2)
	t.Run("scale: desired counts follow the formation", func(t *testing.T) {
		got := r.services(t, app, "web", "worker")
		if got["web"].Desired != 3 || got["worker"].Desired != 0 {
			t.Errorf("services after scaling = %+v, want web 3 and worker 0", got)
		}
	})

	r3 := release(app, "R3", "t3", imageV2, map[string]string{"MODE": "b", "NEW": "1"}, 3, 0, route.Binding)
	envWrites := deploy(t, r3)
	t.Run("env and image change: a new task definition with them", func(t *testing.T) {
		want := service{Status: "ACTIVE", Desired: 3, Image: imageV2.Ref(), Env: map[string]string{"MODE": "b", "NEW": "1", "PORT": "8080"}}
		if diff := cmp.Diff(want, r.services(t, app, "web")["web"]); diff != "" {
			t.Errorf("web after the change (-want +got):\n%s", diff)
		}
	})

	back := r1
	back.Token = "t4"
	rollbackWrites := deploy(t, back)
	t.Run("rollback: one update brings image, environment and formation back", func(t *testing.T) {
		want := map[string]service{
			"web":    {Status: "ACTIVE", Desired: 2, Image: imageV1.Ref(), Env: map[string]string{"MODE": "a", "PORT": "8080"}},
			"worker": {Status: "ACTIVE", Desired: 1, Image: imageV1.Ref(), Env: map[string]string{"MODE": "a"}},
		}
		if diff := cmp.Diff(want, r.services(t, app, "web", "worker")); diff != "" {
			t.Errorf("services after the rollback (-want +got):\n%s", diff)
		}
	})

	t.Run("CloudFormation writes per step", func(t *testing.T) {
		want := map[string]map[string]int{
			"first route": {"CreateStack": 1},
			"deploy":      {"UpdateStack": 1},
			"scale":       {"UpdateStack": 1},
			"env change":  {"UpdateStack": 1},
			"rollback":    {"UpdateStack": 1},
			"same token":  {},
		}
		r.calls.Reset()
		if _, err := r.stack.Apply(ctx, back); err != nil {
			t.Fatalf("Apply of the same token: %v", err)
		}
		got := map[string]map[string]int{
			"first route": firstRouteWrites, "deploy": deployWrites, "scale": scaleWrites,
			"env change": envWrites, "rollback": rollbackWrites, "same token": r.writes(),
		}
		t.Logf("CloudFormation writes: %v", got)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})

	t.Run("delete removes the stack, its log group, route and services", func(t *testing.T) {
		if err := r.stack.Delete(ctx, app); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := r.stack.Delete(ctx, app); err != nil {
			t.Errorf("second Delete: %v, want nil", err)
		}
		if _, err := r.stack.Status(ctx, app); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("Status after Delete: %v, want ErrNotFound", err)
		}
		if _, err := r.stack.Health(ctx, route.ID); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("Health after Delete: %v, want ErrNotFound", err)
		}
		groups, err := r.logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/convox/" + app)})
		if err != nil || len(groups.LogGroups) != 0 {
			t.Errorf("log groups after Delete: %v %v, want none", groups, err)
		}
		// moto departs from AWS here: its stack deletion removes only
		// resources whose moto model implements deletion (the log
		// group), so the services stay ACTIVE and the target group and
		// rule stay. AWS: "When you delete a stack, you delete the
		// stack and all its resources" (AWS CloudFormation User Guide,
		// Delete a stack); an ECS service's deletion scales it to zero
		// and deletes it. The stack itself is gone above, and the
		// services are checked to be the stack's, not left over from
		// another source.
		got := r.services(t, app, "web", "worker")
		if len(got) != 2 {
			t.Errorf("services on moto after Delete = %+v, want the two it leaves behind (see comment)", got)
		}
	})
}

// TestRouteContract checks the balancer side on moto: the same spec makes
// no write, a changed spec updates the stack in place, invalid specs fail
// before any call, DeleteRoute of the last route deletes the stack.
func TestRouteContract(t *testing.T) {
	r := newRack(t, nil)
	ctx := t.Context()
	app := awstest.Name(t, "route")
	spec := providers.RouteSpec{App: app, Process: "web", Port: 8080, Protocol: providers.HTTP}
	first, err := r.stack.EnsureRoute(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	r.calls.Reset()
	again, err := r.stack.EnsureRoute(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("second EnsureRoute (-first +second):\n%s", diff)
	}
	if w := r.writes(); len(w) != 0 {
		t.Errorf("EnsureRoute of an unchanged route wrote %v, want nothing", w)
	}
	// moto departs from AWS here: it models no CloudFormation update of
	// a target group and drops a changed one from the stack's resources,
	// so the stack reports no target group output afterwards. AWS updates
	// HealthCheckPath in place ("Update requires: No interruption", AWS
	// CloudFormation User Guide, AWS::ElasticLoadBalancingV2::TargetGroup)
	// and the route keeps its ID and target group. The provider reports
	// the missing output instead of inventing a binding.
	spec.Health.Path = "/ready"
	if _, err := r.stack.EnsureRoute(ctx, spec); !errors.Is(err, providers.ErrUnavailable) {
		t.Errorf("EnsureRoute of a changed spec on moto = %v, want the missing target group reported (ErrUnavailable)", err)
	}
	spec.Health.Path = ""

	for _, tc := range []struct {
		name   string
		change func(*providers.RouteSpec)
	}{
		{"bad app name", func(s *providers.RouteSpec) { s.App = "Bad_App" }},
		{"port zero", func(s *providers.RouteSpec) { s.Port = 0 }},
		{"unknown protocol", func(s *providers.RouteSpec) { s.Protocol = "gopher" }},
		{"https without an HTTPS listener", func(s *providers.RouteSpec) { s.Protocol = providers.HTTPS }},
		{"a certificate of the route's own", func(s *providers.RouteSpec) { s.Certificate = "arn:aws:acm:us-east-1:123456789012:certificate/x" }},
	} {
		t.Run("invalid: "+tc.name, func(t *testing.T) {
			s := spec
			tc.change(&s)
			r.calls.Reset()
			if _, err := r.stack.EnsureRoute(ctx, s); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("EnsureRoute = %v, want ErrInvalid", err)
			}
			if n := len(r.calls.Counts()); n != 0 {
				t.Errorf("calls before the error: %v, want none", r.calls)
			}
		})
	}

	if err := r.stack.DeleteRoute(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.stack.DeleteRoute(ctx, first.ID); err != nil {
		t.Errorf("second DeleteRoute: %v", err)
	}
	if _, err := r.stack.Health(ctx, first.ID); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Health of a deleted route: %v, want ErrNotFound", err)
	}
	if _, err := r.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(r.stack.StackName(app))}); err == nil {
		t.Errorf("the stack of an app whose last route was deleted still exists")
	}
}

// TestChangesPlanWithoutChangingOnMoto checks the plan capability: a new
// app's plan adds every resource without a change set; an existing app's
// plan comes from a change set that is deleted afterwards, and nothing
// changes.
func TestChangesPlanWithoutChangingOnMoto(t *testing.T) {
	r := newRack(t, nil)
	ctx := t.Context()
	app := awstest.Name(t, "plan")
	t.Cleanup(func() { r.stack.Delete(context.WithoutCancel(ctx), app) })
	r1 := release(app, "R1", "t1", imageV1, nil, 1, 1, providers.Binding{})

	r.calls.Reset()
	changes, err := r.stack.Changes(ctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for _, c := range changes {
		if c.Action != "Add" {
			t.Errorf("plan of a new app: %+v, want only Add", c)
		}
		added = append(added, c.Type)
	}
	slices.Sort(added)
	// web has a port and no route yet: the deploy would make its route
	// first, and the plan shows it.
	want := []string{"AWS::ECS::Service", "AWS::ECS::Service", "AWS::ECS::TaskDefinition", "AWS::ECS::TaskDefinition",
		"AWS::ElasticLoadBalancingV2::ListenerRule", "AWS::ElasticLoadBalancingV2::TargetGroup", "AWS::Logs::LogGroup"}
	if diff := cmp.Diff(want, added); diff != "" {
		t.Errorf("resource types a new app's plan adds (-want +got):\n%s", diff)
	}
	if w := r.writes(); len(w) != 0 {
		t.Errorf("plan of a new app wrote %v, want nothing", w)
	}

	if _, err := r.stack.Apply(ctx, r1); err != nil {
		t.Fatal(err)
	}
	r2 := release(app, "R2", "t2", imageV2, nil, 1, 1, providers.Binding{})
	r.calls.Reset()
	changes, err = r.stack.Changes(ctx, r2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"CreateChangeSet": 1, "DeleteChangeSet": 1}, r.writes()); diff != "" {
		t.Errorf("writes of a plan (-want +got):\n%s", diff)
	}
	// moto departs from AWS here: its change sets list every resource
	// of the new template as Add. AWS lists what differs: "Add" for the
	// new task definitions, "Modify" for the services that use them and
	// "Remove" for the old task definitions ("Change sets show you how
	// your changes might impact your running resources", AWS
	// CloudFormation User Guide, Update stacks using change sets).
	var resources []string
	for _, c := range changes {
		resources = append(resources, c.Resource)
	}
	if !slices.Contains(resources, "ServiceOfweb") || !slices.ContainsFunc(resources, func(id string) bool { return strings.HasPrefix(id, "TaskOfwebV") }) {
		t.Errorf("plan of a new image = %+v, want the web service and a web task definition in it", changes)
	}
	sets, err := r.cfn.ListChangeSets(ctx, &cloudformation.ListChangeSetsInput{StackName: aws.String(r.stack.StackName(app))})
	if err != nil || len(sets.Summaries) != 0 {
		t.Errorf("change sets after the plan: %+v %v, want none", sets, err)
	}
	if got := r.services(t, app, "web")["web"].Image; got != imageV1.Ref() {
		t.Errorf("web's image after a plan = %s, want R1's (a plan changes nothing)", got)
	}
}
