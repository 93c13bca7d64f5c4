package albbalancer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
)

const certA = "arn:aws:acm:us-east-1:000000000000:certificate/a"
const certB = "arn:aws:acm:us-east-1:000000000000:certificate/b"

// result is a call's value and error; must fails the test on the error.
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// ensure ensures a route and deletes it when the test ends.
func (e *env) ensure(t *testing.T, s providers.RouteSpec) providers.Route {
	t.Helper()
	rt, err := e.b.EnsureRoute(t.Context(), s)
	if err != nil {
		t.Fatalf("EnsureRoute(%+v): %v", s, err)
	}
	t.Cleanup(func() { e.b.DeleteRoute(context.Background(), rt.ID) })
	return rt
}

// lb returns the test's load balancer as the emulator lists it.
func (e *env) lb(t *testing.T) types.LoadBalancer {
	t.Helper()
	out := try(e.client.DescribeLoadBalancers(t.Context(), &elbv2.DescribeLoadBalancersInput{Names: []string{e.opts.LoadBalancer}})).must(t)
	if len(out.LoadBalancers) != 1 {
		t.Fatalf("%d load balancers named %s, want 1", len(out.LoadBalancers), e.opts.LoadBalancer)
	}
	return out.LoadBalancers[0]
}

// view is what a route looks like on ELBv2.
type view struct {
	Listener    string // protocol:port of the listener holding its rule
	Rules       int    // rules forwarding to its target group, over every listener
	Hosts       []string
	Paths       []string
	Priority    bool // the rule's priority is a number within ELBv2's 1-50000 (bands are checked by TestPriorities)
	TargetType  types.TargetTypeEnum
	HealthCheck string // path interval timeout healthy unhealthy
	Dereg       string
	HTTP2       string
}

// observe reads route id's rules, target group and attributes.
func (e *env) observe(t *testing.T, id string) view {
	t.Helper()
	ctx := t.Context()
	lb := e.lb(t)
	var v view
	ls := try(e.client.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: lb.LoadBalancerArn})).must(t)
	tgs := try(e.client.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{id}})).must(t)
	if len(tgs.TargetGroups) != 1 {
		t.Fatalf("%d target groups named %s, want 1", len(tgs.TargetGroups), id)
	}
	tg := tgs.TargetGroups[0]
	for _, l := range ls.Listeners {
		rules := try(e.client.DescribeRules(ctx, &elbv2.DescribeRulesInput{ListenerArn: l.ListenerArn})).must(t)
		for _, r := range rules.Rules {
			if !slices.ContainsFunc(r.Actions, func(a types.Action) bool {
				return a.ForwardConfig != nil && slices.ContainsFunc(a.ForwardConfig.TargetGroups, func(tu types.TargetGroupTuple) bool {
					return aws.ToString(tu.TargetGroupArn) == aws.ToString(tg.TargetGroupArn)
				})
			}) {
				continue
			}
			v.Rules++
			v.Listener = fmt.Sprintf("%s:%d", l.Protocol, aws.ToInt32(l.Port))
			for _, c := range r.Conditions {
				switch aws.ToString(c.Field) {
				case "host-header":
					v.Hosts = append(v.Hosts, c.HostHeaderConfig.Values...)
				case "path-pattern":
					v.Paths = append(v.Paths, c.PathPatternConfig.Values...)
				}
			}
			p, _ := strconv.Atoi(aws.ToString(r.Priority))
			v.Priority = p >= 1 && p <= 50000
		}
	}
	v.TargetType = tg.TargetType
	v.HealthCheck = fmt.Sprintf("%s %d %d %d %d", aws.ToString(tg.HealthCheckPath), aws.ToInt32(tg.HealthCheckIntervalSeconds),
		aws.ToInt32(tg.HealthCheckTimeoutSeconds), aws.ToInt32(tg.HealthyThresholdCount), aws.ToInt32(tg.UnhealthyThresholdCount))
	attrs := try(e.client.DescribeTargetGroupAttributes(ctx, &elbv2.DescribeTargetGroupAttributesInput{TargetGroupArn: tg.TargetGroupArn})).must(t)
	for _, a := range attrs.Attributes {
		if aws.ToString(a.Key) == "deregistration_delay.timeout_seconds" {
			v.Dereg = aws.ToString(a.Value)
		}
	}
	lbAttrs := try(e.client.DescribeLoadBalancerAttributes(ctx, &elbv2.DescribeLoadBalancerAttributesInput{LoadBalancerArn: lb.LoadBalancerArn})).must(t)
	for _, a := range lbAttrs.Attributes {
		if aws.ToString(a.Key) == "routing.http2.enabled" {
			v.HTTP2 = aws.ToString(a.Value)
		}
	}
	return v
}

func TestRouteResources(t *testing.T) {
	awstest.Endpoint(t)
	tests := []struct {
		name         string
		opts         func(*albbalancer.Options)
		spec         providers.RouteSpec
		want         view
		wantEndpoint string // "DNS" stands for the load balancer's DNS name
	}{
		{"the default route is a host rule under the domain on the HTTP listener", nil,
			providers.RouteSpec{Process: "web", Port: 8080},
			view{Listener: "HTTP:80", Rules: 1, Hosts: []string{"APP-web.apps.example.com"}, Priority: true, TargetType: "ip", HealthCheck: "/ 10 5 2 3", Dereg: "30", HTTP2: "true"},
			"http://APP-web.apps.example.com/"},
		{"host and path become the rule's conditions", nil,
			providers.RouteSpec{Process: "api", Port: 8080, Host: "shop.example.com", Path: "/api"},
			view{Listener: "HTTP:80", Rules: 1, Hosts: []string{"shop.example.com"}, Paths: []string{"/api", "/api/*"}, Priority: true, TargetType: "ip", HealthCheck: "/ 10 5 2 3", Dereg: "30", HTTP2: "true"},
			"http://shop.example.com/api/"},
		{"a path without host is reached at the load balancer's DNS name", nil,
			providers.RouteSpec{Process: "web", Port: 8080, Path: "/shop"},
			view{Listener: "HTTP:80", Rules: 1, Paths: []string{"/shop", "/shop/*"}, Priority: true, TargetType: "ip", HealthCheck: "/ 10 5 2 3", Dereg: "30", HTTP2: "true"},
			"http://DNS/shop/"},
		{"health check and deregistration delay reach the target group", nil,
			providers.RouteSpec{Process: "web", Port: 8080,
				Health:              providers.HealthCheck{Path: "/healthz", Interval: 15 * time.Second, Timeout: 4 * time.Second, Healthy: 3, Unhealthy: 4},
				DeregistrationDelay: 12 * time.Second},
			view{Listener: "HTTP:80", Rules: 1, Hosts: []string{"APP-web.apps.example.com"}, Priority: true, TargetType: "ip", HealthCheck: "/healthz 15 4 3 4", Dereg: "12", HTTP2: "true"},
			"http://APP-web.apps.example.com/"},
		{"the instance target type serves EC2 tasks", func(o *albbalancer.Options) { o.TargetType = albbalancer.TargetInstance },
			providers.RouteSpec{Process: "web", Port: 8080},
			view{Listener: "HTTP:80", Rules: 1, Hosts: []string{"APP-web.apps.example.com"}, Priority: true, TargetType: "instance", HealthCheck: "/ 10 5 2 3", Dereg: "30", HTTP2: "true"},
			"http://APP-web.apps.example.com/"},
		{"https goes on the HTTPS listener", nil,
			providers.RouteSpec{Process: "web", Port: 8080, Protocol: providers.HTTPS, Certificate: certA},
			view{Listener: "HTTPS:443", Rules: 1, Hosts: []string{"APP-web.apps.example.com"}, Priority: true, TargetType: "ip", HealthCheck: "/ 10 5 2 3", Dereg: "30", HTTP2: "true"},
			"https://APP-web.apps.example.com/"},
		{"http2 goes on the HTTPS listener with HTTP/2 on", func(o *albbalancer.Options) { o.Certificate = certA },
			providers.RouteSpec{Process: "web", Port: 8080, Protocol: providers.HTTP2},
			view{Listener: "HTTPS:443", Rules: 1, Hosts: []string{"APP-web.apps.example.com"}, Priority: true, TargetType: "ip", HealthCheck: "/ 10 5 2 3", Dereg: "30", HTTP2: "true"},
			"https://APP-web.apps.example.com/"},
		{"other listener ports appear in the endpoint", func(o *albbalancer.Options) { o.HTTPPort = 8000 },
			providers.RouteSpec{Process: "web", Port: 8080},
			view{Listener: "HTTP:8000", Rules: 1, Hosts: []string{"APP-web.apps.example.com"}, Priority: true, TargetType: "ip", HealthCheck: "/ 10 5 2 3", Dereg: "30", HTTP2: "true"},
			"http://APP-web.apps.example.com:8000/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			app := awstest.Name(t, "shop")
			tt.spec.App = app
			rt := e.ensure(t, tt.spec)
			want := tt.want
			want.Hosts = slices.Clone(want.Hosts)
			for i := range want.Hosts {
				want.Hosts[i] = strings.Replace(want.Hosts[i], "APP", app, 1)
			}
			if diff := cmp.Diff(want, e.observe(t, rt.ID)); diff != "" {
				t.Errorf("resources of route %s (-want +got):\n%s", rt.ID, diff)
			}
			endpoint := strings.NewReplacer("DNS", aws.ToString(e.lb(t).DNSName), "APP", app).Replace(tt.wantEndpoint)
			if diff := cmp.Diff(endpoint, rt.Endpoint); diff != "" {
				t.Errorf("endpoint (-want +got):\n%s", diff)
			}
		})
	}
}

// writes are the operations that change ELBv2 resources.
var writes = []string{"CreateLoadBalancer", "ModifyLoadBalancerAttributes", "CreateListener", "AddListenerCertificates",
	"CreateTargetGroup", "ModifyTargetGroup", "ModifyTargetGroupAttributes", "AddTags", "CreateRule", "ModifyRule",
	"SetRulePriorities", "DeleteRule", "DeleteTargetGroup"}

func writeCounts(c *awstest.Counter) map[string]int {
	m := map[string]int{}
	for _, op := range writes {
		if n := c.Count(op); n > 0 {
			m[op] = n
		}
	}
	return m
}

func TestEnsureRouteChangesOnlyWhatDiffers(t *testing.T) {
	shop := awstest.Name(t, "shop")
	e := newEnv(t, nil)
	base := providers.RouteSpec{App: shop, Process: "web", Port: 8080, Protocol: providers.HTTPS, Certificate: certA}
	e.ensure(t, base)
	tests := []struct {
		name   string
		change func(*providers.RouteSpec)
		want   map[string]int
	}{
		{"the same spec writes nothing", func(*providers.RouteSpec) {}, map[string]int{}},
		{"a new health check modifies the target group only",
			func(s *providers.RouteSpec) { s.Health.Path = "/up" }, map[string]int{"ModifyTargetGroup": 1}},
		{"a new deregistration delay sets the attribute only",
			func(s *providers.RouteSpec) { s.Health.Path = "/up"; s.DeregistrationDelay = time.Minute }, map[string]int{"ModifyTargetGroupAttributes": 1}},
		{"a new path modifies the rule's conditions and moves it to its band",
			func(s *providers.RouteSpec) {
				s.Health.Path = "/up"
				s.DeregistrationDelay = time.Minute
				s.Path = "/v2"
			},
			map[string]int{"ModifyRule": 1, "SetRulePriorities": 1}},
		{"a new port retags the target group",
			func(s *providers.RouteSpec) {
				s.Health.Path = "/up"
				s.DeregistrationDelay = time.Minute
				s.Path = "/v2"
				s.Port = 9090
			}, map[string]int{"AddTags": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.change(&s)
			e.calls.Reset()
			rt := try(e.b.EnsureRoute(t.Context(), s)).must(t)
			if diff := cmp.Diff(tt.want, writeCounts(e.calls)); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if rt.Binding.Port != s.Port {
				t.Errorf("binding port %d, want %d", rt.Binding.Port, s.Port)
			}
		})
	}
}

func TestProtocolChangeMovesTheRuleAndKeepsWeights(t *testing.T) {
	shop := awstest.Name(t, "shop")
	e := newEnv(t, func(o *albbalancer.Options) { o.Certificate = certA })
	s := providers.RouteSpec{App: shop, Process: "web", Port: 8080}
	rt := e.ensure(t, s)
	try(e.b.EnsureTargetSet(t.Context(), rt.ID, "g")).must(t)
	if err := e.b.SetWeights(t.Context(), rt.ID, map[string]int{"": 80, "g": 20}); err != nil {
		t.Fatal(err)
	}
	s.Protocol = providers.HTTPS
	moved := try(e.b.EnsureRoute(t.Context(), s)).must(t)
	if diff := cmp.Diff(rt.ID, moved.ID); diff != "" {
		t.Errorf("route ID (-before +after):\n%s", diff)
	}
	v := e.observe(t, rt.ID)
	if diff := cmp.Diff("HTTPS:443 1", fmt.Sprint(v.Listener, " ", v.Rules)); diff != "" {
		t.Errorf("listener and rule count (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"": 80, "g": 20}, try(e.b.Weights(t.Context(), rt.ID)).must(t)); diff != "" {
		t.Errorf("weights after the move (-want +got):\n%s", diff)
	}
}

func TestCertificatesOfHTTPSRoutes(t *testing.T) {
	shop, blog, wiki := awstest.Name(t, "shop"), awstest.Name(t, "blog"), awstest.Name(t, "wiki")
	e := newEnv(t, nil)
	e.ensure(t, providers.RouteSpec{App: shop, Process: "web", Port: 8080, Protocol: providers.HTTPS, Certificate: certA})
	e.ensure(t, providers.RouteSpec{App: blog, Process: "web", Port: 8080, Protocol: providers.HTTPS, Certificate: certB})
	e.ensure(t, providers.RouteSpec{App: wiki, Process: "web", Port: 8080, Protocol: providers.HTTP2, Certificate: certB})
	ls := try(e.client.DescribeListeners(t.Context(), &elbv2.DescribeListenersInput{LoadBalancerArn: e.lb(t).LoadBalancerArn})).must(t)
	if len(ls.Listeners) != 1 {
		t.Fatalf("%d listeners, want the HTTPS one only", len(ls.Listeners))
	}
	// The first route's certificate became the listener's default; the
	// other was added once.
	if diff := cmp.Diff([]string{certB}, e.shim.addedCertificates(aws.ToString(ls.Listeners[0].ListenerArn))); diff != "" {
		t.Errorf("added certificates (-want +got):\n%s", diff)
	}
	_, err := newEnv(t, nil).b.EnsureRoute(t.Context(), providers.RouteSpec{App: shop, Process: "web", Port: 8080, Protocol: providers.HTTPS})
	if !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("first HTTPS route without any certificate: got %v, want ErrInvalid", err)
	}
}

func TestAdoption(t *testing.T) {
	awstest.Endpoint(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, e *env) albbalancer.API // returns the API the balancer uses
		byARN   bool
		wantErr error
		// wantCreates is the number of CreateLoadBalancer and CreateTargetGroup calls.
		wantCreates map[string]int
	}{
		{"an existing load balancer of the name is adopted, not duplicated",
			func(t *testing.T, e *env) albbalancer.API { e.createLB(t); return e.client },
			false, nil, map[string]int{"CreateTargetGroup": 1}},
		{"a load balancer given by ARN is adopted",
			func(t *testing.T, e *env) albbalancer.API { e.createLB(t); return e.client },
			true, nil, map[string]int{"CreateTargetGroup": 1}},
		{"a load balancer given by ARN that does not exist is not found",
			func(t *testing.T, e *env) albbalancer.API { return e.client },
			true, providers.ErrNotFound, map[string]int{}},
		{"a load balancer given by ARN that does not exist is not found when AWS says so",
			func(t *testing.T, e *env) albbalancer.API { return awsAnswers{e.client} },
			true, providers.ErrNotFound, map[string]int{}},
		{"a load balancer created by someone else meanwhile is adopted after the duplicate-name error",
			func(t *testing.T, e *env) albbalancer.API { e.createLB(t); return &hideFirst{API: e.client} },
			false, nil, map[string]int{"CreateLoadBalancer": 1, "CreateTargetGroup": 1}},
		{"a load balancer created by someone else meanwhile is adopted when AWS returns it",
			func(t *testing.T, e *env) albbalancer.API {
				e.createLB(t)
				return &hideFirst{API: awsAnswers{e.client}}
			},
			false, nil, map[string]int{"CreateLoadBalancer": 1, "CreateTargetGroup": 1}},
		{"a target group of the route created by someone else meanwhile is adopted after the duplicate-name error",
			func(t *testing.T, e *env) albbalancer.API {
				e.createLB(t)
				e.createTG(t, e.app+"-web", map[string]string{albbalancer.TagBalancer: e.opts.LoadBalancer, albbalancer.TagRoute: e.app + "-web"})
				h := &hideFirst{API: e.client}
				h.lbs.Store(true) // the load balancer exists: hide only the target group
				return h
			},
			false, nil, map[string]int{"CreateTargetGroup": 1}},
		{"a target group of the route's name that belongs to another route is a conflict",
			func(t *testing.T, e *env) albbalancer.API {
				e.createTG(t, e.app+"-web", map[string]string{albbalancer.TagBalancer: e.opts.LoadBalancer, albbalancer.TagRoute: "other-route"})
				return e.client
			},
			false, providers.ErrConflict, map[string]int{"CreateLoadBalancer": 1}},
		{"a target group of the route's name on another load balancer is a conflict",
			func(t *testing.T, e *env) albbalancer.API {
				e.createTG(t, e.app+"-web", map[string]string{albbalancer.TagBalancer: "other-rack", albbalancer.TagRoute: e.app + "-web"})
				return e.client
			},
			false, providers.ErrConflict, map[string]int{"CreateLoadBalancer": 1}},
		{"a target group of the route's name without tags is a conflict",
			func(t *testing.T, e *env) albbalancer.API { e.createTG(t, e.app+"-web", nil); return e.client },
			false, providers.ErrConflict, map[string]int{"CreateLoadBalancer": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			shop := awstest.Name(t, "shop")
			e.app = shop
			api := tt.prepare(t, e)
			opts := e.opts
			if tt.byARN {
				opts.LoadBalancer = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/" + e.opts.LoadBalancer + "/missing"
				if out, _ := e.client.DescribeLoadBalancers(t.Context(), &elbv2.DescribeLoadBalancersInput{Names: []string{e.opts.LoadBalancer}}); out != nil && len(out.LoadBalancers) == 1 {
					opts.LoadBalancer = aws.ToString(out.LoadBalancers[0].LoadBalancerArn)
				}
			}
			b := albbalancer.New(api, &opts)
			e.calls.Reset()
			rt, err := b.EnsureRoute(t.Context(), providers.RouteSpec{App: shop, Process: "web", Port: 8080})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("EnsureRoute: got %v, want %v", err, tt.wantErr)
			}
			creates := map[string]int{}
			for _, op := range []string{"CreateLoadBalancer", "CreateTargetGroup"} {
				if n := e.calls.Count(op); n > 0 {
					creates[op] = n
				}
			}
			if diff := cmp.Diff(tt.wantCreates, creates); diff != "" {
				t.Errorf("creates (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			t.Cleanup(func() { b.DeleteRoute(context.Background(), rt.ID) })
			e.lb(t) // exactly one load balancer of the name
			if !strings.HasSuffix(rt.Endpoint, "/") || rt.Binding.Target == "" {
				t.Errorf("route %+v, want an endpoint and a binding", rt)
			}
		})
	}
}

// createLB creates the test's load balancer directly.
func (e *env) createLB(t *testing.T) {
	t.Helper()
	try(e.client.CreateLoadBalancer(t.Context(), &elbv2.CreateLoadBalancerInput{Name: aws.String(e.opts.LoadBalancer), Subnets: e.opts.Subnets})).must(t)
}

// createTG creates a target group directly, with tags.
func (e *env) createTG(t *testing.T, name string, tags map[string]string) {
	t.Helper()
	in := &elbv2.CreateTargetGroupInput{Name: aws.String(name), Port: aws.Int32(80), Protocol: types.ProtocolEnumHttp, TargetType: types.TargetTypeEnumIp, VpcId: aws.String("vpc-1")}
	for k, v := range tags {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out := try(e.client.CreateTargetGroup(t.Context(), in)).must(t)
	t.Cleanup(func() {
		e.client.DeleteTargetGroup(context.Background(), &elbv2.DeleteTargetGroupInput{TargetGroupArn: out.TargetGroups[0].TargetGroupArn})
	})
}

func TestRoutesOfTwoAppsWithTheSameHostAndPathConflict(t *testing.T) {
	shop, blog := awstest.Name(t, "shop"), awstest.Name(t, "blog")
	e := newEnv(t, nil)
	e.ensure(t, providers.RouteSpec{App: shop, Process: "web", Port: 8080, Host: "www.example.com", Path: "/"})
	_, err := e.b.EnsureRoute(t.Context(), providers.RouteSpec{App: blog, Process: "web", Port: 8080, Host: "WWW.example.com"})
	if !errors.Is(err, providers.ErrConflict) {
		t.Errorf("EnsureRoute of a second route for www.example.com: got %v, want ErrConflict", err)
	}
}

func TestHealthReportsEveryTargetSet(t *testing.T) {
	shop := awstest.Name(t, "shop")
	e := newEnv(t, nil)
	rt := e.ensure(t, providers.RouteSpec{App: shop, Process: "web", Port: 8080})
	set := try(e.b.EnsureTargetSet(t.Context(), rt.ID, "g")).must(t)
	register := func(tg string, ips ...string) {
		var ts []types.TargetDescription
		for _, ip := range ips {
			ts = append(ts, types.TargetDescription{Id: aws.String(ip), Port: aws.Int32(8080)})
		}
		try(e.client.RegisterTargets(t.Context(), &elbv2.RegisterTargetsInput{TargetGroupArn: aws.String(tg), Targets: ts})).must(t)
	}
	register(set.Target, "10.0.1.1")
	register(rt.Binding.Target, "10.0.0.2", "10.0.0.1")
	e.calls.Reset()
	got := try(e.b.Health(t.Context(), rt.ID)).must(t)
	want := []providers.TargetHealth{
		{Target: "10.0.0.1:8080", State: providers.TargetHealthy},
		{Target: "10.0.0.2:8080", State: providers.TargetHealthy},
		{Target: "10.0.1.1:8080", Set: "g", State: providers.TargetHealthy},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Health (-want +got):\n%s", diff)
	}
	// One observation costs one rule read and one health read per set.
	if diff := cmp.Diff(map[string]int{"DescribeRules": 1, "DescribeTargetHealth": 2}, e.calls.Counts()); diff != "" {
		t.Errorf("calls of Health (-want +got):\n%s", diff)
	}
}

func TestALoadBalancerDeletedBehindTheBalancersBackIsCreatedAgain(t *testing.T) {
	shop := awstest.Name(t, "shop")
	e := newEnv(t, nil)
	s := providers.RouteSpec{App: shop, Process: "web", Port: 8080}
	first := e.ensure(t, s)
	try(e.client.DeleteLoadBalancer(t.Context(), &elbv2.DeleteLoadBalancerInput{LoadBalancerArn: e.lb(t).LoadBalancerArn})).must(t)
	again := try(e.b.EnsureRoute(t.Context(), s)).must(t)
	if diff := cmp.Diff(first.ID, again.ID); diff != "" {
		t.Errorf("route ID (-first +again):\n%s", diff)
	}
	if v := e.observe(t, again.ID); v.Rules != 1 {
		t.Errorf("%d rules on the new load balancer, want 1", v.Rules)
	}
}

func TestDeleteRouteRemovesEveryTargetSet(t *testing.T) {
	shop := awstest.Name(t, "shop")
	e := newEnv(t, nil)
	rt := e.ensure(t, providers.RouteSpec{App: shop, Process: "web", Port: 8080})
	try(e.b.EnsureTargetSet(t.Context(), rt.ID, "g")).must(t)
	if err := e.b.DeleteRoute(t.Context(), rt.ID); err != nil {
		t.Fatal(err)
	}
	out := try(e.client.DescribeTargetGroups(t.Context(), &elbv2.DescribeTargetGroupsInput{Names: []string{shop + "-web", shop + "-web-g"}})).must(t)
	if len(out.TargetGroups) != 0 {
		t.Errorf("%d target groups left after DeleteRoute, want 0", len(out.TargetGroups))
	}
	ls := try(e.client.DescribeListeners(t.Context(), &elbv2.DescribeListenersInput{LoadBalancerArn: e.lb(t).LoadBalancerArn})).must(t)
	for _, l := range ls.Listeners {
		rules := try(e.client.DescribeRules(t.Context(), &elbv2.DescribeRulesInput{ListenerArn: l.ListenerArn})).must(t)
		if len(rules.Rules) != 1 {
			t.Errorf("listener %d keeps %d rules, want the default rule only", aws.ToInt32(l.Port), len(rules.Rules))
		}
	}
}

func TestEnsureRouteRejectsBadSpecsBeforeAnyCall(t *testing.T) {
	// A nil client: any call would panic.
	b := albbalancer.New(nil, nil)
	for _, tt := range []struct {
		name string
		spec providers.RouteSpec
	}{
		{"no host and no path without a domain", providers.RouteSpec{App: "shop", Process: "web", Port: 8080}},
		{"a bad host", providers.RouteSpec{App: "shop", Process: "web", Port: 8080, Host: "shop example"}},
		{"a bad path", providers.RouteSpec{App: "shop", Process: "web", Port: 8080, Path: "shop"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := b.EnsureRoute(t.Context(), tt.spec); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("EnsureRoute: got %v, want ErrInvalid", err)
			}
		})
	}
}
