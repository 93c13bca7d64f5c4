package elbbalancer_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/elbtest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/elbbalancer"
	"github.com/convox-go/convox/providers/providertest"
)

const cert = "arn:aws:acm:us-east-1:000000000000:certificate/a"

// env is a balancer on the in-process classic ELB server, with its
// client's calls counted.
type env struct {
	srv    *elbtest.Server
	client *elb.Client
	calls  *awstest.Counter
	b      *elbbalancer.Balancer
	opts   elbbalancer.Options
}

func newEnv(t *testing.T, change func(*elbbalancer.Options)) *env {
	t.Helper()
	srv := elbtest.New(t)
	calls := awstest.NewCounter()
	cfg := awstest.ConfigFor(srv.URL)
	cfg.RetryMaxAttempts = 1 // injected faults reach the balancer
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	client := elb.NewFromConfig(cfg)
	opts := elbbalancer.Options{Subnets: []string{"subnet-a", "subnet-b"}, SecurityGroups: []string{"sg-1"}}
	if change != nil {
		change(&opts)
	}
	return &env{srv: srv, client: client, calls: calls, b: elbbalancer.New(client, &opts), opts: opts}
}

// emptyLists wraps a client so that it answers a lookup of a missing load
// balancer with an empty list, as emulators do, instead of AWS's
// LoadBalancerNotFound.
type emptyLists struct{ elbbalancer.API }

func (e emptyLists) DescribeLoadBalancers(ctx context.Context, in *elb.DescribeLoadBalancersInput, o ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error) {
	out, err := e.API.DescribeLoadBalancers(ctx, in, o...)
	if awserr.Code(err) == "LoadBalancerNotFound" {
		return &elb.DescribeLoadBalancersOutput{}, nil
	}
	return out, err
}

func (e emptyLists) DescribeTags(ctx context.Context, in *elb.DescribeTagsInput, o ...func(*elb.Options)) (*elb.DescribeTagsOutput, error) {
	out, err := e.API.DescribeTags(ctx, in, o...)
	if awserr.Code(err) == "LoadBalancerNotFound" {
		return &elb.DescribeTagsOutput{}, nil
	}
	return out, err
}

func TestConformance(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		name string
		b    providers.Balancer
	}{
		{"AWS answers", e.b},
		{"emulator answers", elbbalancer.New(emptyLists{e.client}, &e.opts)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			providertest.TestBalancer(t, providertest.BalancerHarness{
				New: func(t *testing.T) providers.Balancer { return tt.b },
			})
		})
	}
}

// view is what a route's load balancer looks like.
type view struct {
	Listeners []string // protocol:port->instance protocol:port cert
	Health    string   // target interval timeout healthy unhealthy
	Draining  string   // enabled timeout
	Tags      map[string]string
	Scheme    string
}

func (e *env) observe(t *testing.T, name string) view {
	t.Helper()
	ctx := t.Context()
	out, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	d := out.LoadBalancerDescriptions[0]
	var v view
	for _, ld := range d.ListenerDescriptions {
		l := ld.Listener
		v.Listeners = append(v.Listeners, strings.TrimSpace(aws.ToString(l.Protocol)+":"+itoa(l.LoadBalancerPort)+"->"+
			aws.ToString(l.InstanceProtocol)+":"+itoa(aws.ToInt32(l.InstancePort))+" "+aws.ToString(l.SSLCertificateId)))
	}
	h := d.HealthCheck
	v.Health = aws.ToString(h.Target) + " " + itoa(aws.ToInt32(h.Interval)) + " " + itoa(aws.ToInt32(h.Timeout)) + " " +
		itoa(aws.ToInt32(h.HealthyThreshold)) + " " + itoa(aws.ToInt32(h.UnhealthyThreshold))
	v.Scheme = aws.ToString(d.Scheme)
	attrs, err := e.client.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	cd := attrs.LoadBalancerAttributes.ConnectionDraining
	v.Draining = map[bool]string{true: "on ", false: "off "}[cd.Enabled] + itoa(aws.ToInt32(cd.Timeout))
	tags, err := e.client.DescribeTags(ctx, &elb.DescribeTagsInput{LoadBalancerNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	v.Tags = map[string]string{}
	for _, tag := range tags.TagDescriptions[0].Tags {
		v.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	return v
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

var routeTags = map[string]string{"convox:route": "shop-web", "convox:app": "shop", "convox:process": "web"}

func TestRouteResources(t *testing.T) {
	tests := []struct {
		name         string
		opts         func(*elbbalancer.Options)
		spec         providers.RouteSpec
		want         view
		wantEndpoint string // DNS stands for the load balancer's DNS name
	}{
		{"http forwards port 80 to the process port with the default health check", nil,
			providers.RouteSpec{App: "shop", Process: "web", Port: 8080},
			view{Listeners: []string{"HTTP:80->HTTP:8080"}, Health: "HTTP:8080/ 10 5 2 3", Draining: "on 30", Tags: routeTags, Scheme: "internet-facing"},
			"http://DNS/"},
		{"health check and deregistration delay come from the spec", nil,
			providers.RouteSpec{App: "shop", Process: "web", Port: 8080,
				Health:              providers.HealthCheck{Path: "/healthz", Interval: 20 * time.Second, Timeout: 3 * time.Second, Healthy: 4, Unhealthy: 5},
				DeregistrationDelay: 90 * time.Second},
			view{Listeners: []string{"HTTP:80->HTTP:8080"}, Health: "HTTP:8080/healthz 20 3 4 5", Draining: "on 90", Tags: routeTags, Scheme: "internet-facing"},
			"http://DNS/"},
		{"https terminates TLS with the route's certificate", nil,
			providers.RouteSpec{App: "shop", Process: "web", Port: 8080, Protocol: providers.HTTPS, Certificate: cert},
			view{Listeners: []string{"HTTPS:443->HTTP:8080 " + cert}, Health: "HTTP:8080/ 10 5 2 3", Draining: "on 30", Tags: routeTags, Scheme: "internet-facing"},
			"https://DNS/"},
		{"https without its own certificate uses the balancer's", func(o *elbbalancer.Options) { o.Certificate = cert },
			providers.RouteSpec{App: "shop", Process: "web", Port: 8080, Protocol: providers.HTTPS},
			view{Listeners: []string{"HTTPS:443->HTTP:8080 " + cert}, Health: "HTTP:8080/ 10 5 2 3", Draining: "on 30", Tags: routeTags, Scheme: "internet-facing"},
			"https://DNS/"},
		{"a host names the endpoint", nil,
			providers.RouteSpec{App: "shop", Process: "web", Port: 8080, Host: "Shop.Example.com"},
			view{Listeners: []string{"HTTP:80->HTTP:8080"}, Health: "HTTP:8080/ 10 5 2 3", Draining: "on 30", Tags: routeTags, Scheme: "internet-facing"},
			"http://shop.example.com/"},
		{"internal load balancers and other ports", func(o *elbbalancer.Options) {
			o.Internal = true
			o.HTTPPort = 8000
			o.Tags = map[string]string{"team": "web"}
		},
			providers.RouteSpec{App: "shop", Process: "web", Port: 8080},
			view{Listeners: []string{"HTTP:8000->HTTP:8080"}, Health: "HTTP:8080/ 10 5 2 3", Draining: "on 30",
				Tags: map[string]string{"convox:route": "shop-web", "convox:app": "shop", "convox:process": "web", "team": "web"}, Scheme: "internal"},
			"http://DNS:8000/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			rt, err := e.b.EnsureRoute(t.Context(), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, e.observe(t, rt.ID)); diff != "" {
				t.Errorf("load balancer (-want +got):\n%s", diff)
			}
			out, err := e.client.DescribeLoadBalancers(t.Context(), &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{rt.ID}})
			if err != nil {
				t.Fatal(err)
			}
			want := providers.Route{
				ID:       "shop-web",
				Endpoint: strings.Replace(tt.wantEndpoint, "DNS", aws.ToString(out.LoadBalancerDescriptions[0].DNSName), 1),
				Binding:  providers.Binding{Kind: providers.BindingClassicELB, Target: "shop-web", Port: 8080},
			}
			if diff := cmp.Diff(want, rt); diff != "" {
				t.Errorf("route (-want +got):\n%s", diff)
			}
		})
	}
}

var writes = []string{"CreateLoadBalancer", "CreateLoadBalancerListeners", "DeleteLoadBalancerListeners", "ConfigureHealthCheck", "ModifyLoadBalancerAttributes", "AddTags", "DeleteLoadBalancer"}

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
	e := newEnv(t, nil)
	base := providers.RouteSpec{App: "shop", Process: "web", Port: 8080}
	e.calls.Reset()
	if _, err := e.b.EnsureRoute(t.Context(), base); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"CreateLoadBalancer": 1, "ConfigureHealthCheck": 1, "ModifyLoadBalancerAttributes": 1}, writeCounts(e.calls)); diff != "" {
		t.Errorf("writes of the first EnsureRoute (-want +got):\n%s", diff)
	}
	tests := []struct {
		name    string
		change  func(*providers.RouteSpec)
		want    map[string]int
		wantLis []string
	}{
		{"the same spec writes nothing", func(*providers.RouteSpec) {}, map[string]int{}, []string{"HTTP:80->HTTP:8080"}},
		{"a new health check configures the health check only",
			func(s *providers.RouteSpec) { s.Health.Path = "/up" }, map[string]int{"ConfigureHealthCheck": 1}, []string{"HTTP:80->HTTP:8080"}},
		{"a new deregistration delay sets connection draining only",
			func(s *providers.RouteSpec) { s.Health.Path = "/up"; s.DeregistrationDelay = time.Minute },
			map[string]int{"ModifyLoadBalancerAttributes": 1}, []string{"HTTP:80->HTTP:8080"}},
		{"a new port replaces the listener on its port and moves the health check",
			func(s *providers.RouteSpec) {
				s.Health.Path = "/up"
				s.DeregistrationDelay = time.Minute
				s.Port = 9090
			},
			map[string]int{"DeleteLoadBalancerListeners": 1, "CreateLoadBalancerListeners": 1, "ConfigureHealthCheck": 1}, []string{"HTTP:80->HTTP:9090"}},
		{"a new protocol creates the new listener, then deletes the old one",
			func(s *providers.RouteSpec) {
				s.Health.Path = "/up"
				s.DeregistrationDelay = time.Minute
				s.Port = 9090
				s.Protocol = providers.HTTPS
				s.Certificate = cert
			},
			map[string]int{"CreateLoadBalancerListeners": 1, "DeleteLoadBalancerListeners": 1}, []string{"HTTPS:443->HTTP:9090 " + cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.change(&s)
			e.calls.Reset()
			rt, err := e.b.EnsureRoute(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, writeCounts(e.calls)); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLis, e.observe(t, rt.ID).Listeners); diff != "" {
				t.Errorf("listeners (-want +got):\n%s", diff)
			}
		})
	}
}

// hideFirst answers the first lookup of a load balancer "none", as when a
// concurrent writer creates it between the lookup and the create.
type hideFirst struct {
	elbbalancer.API
	done atomic.Bool
}

func (h *hideFirst) DescribeLoadBalancers(ctx context.Context, in *elb.DescribeLoadBalancersInput, o ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error) {
	if h.done.CompareAndSwap(false, true) {
		return &elb.DescribeLoadBalancersOutput{}, nil
	}
	return h.API.DescribeLoadBalancers(ctx, in, o...)
}

func TestExistingLoadBalancers(t *testing.T) {
	spec := providers.RouteSpec{App: "shop", Process: "web", Port: 8080}
	precreate := func(t *testing.T, e *env, port int32, tags map[string]string) {
		t.Helper()
		in := &elb.CreateLoadBalancerInput{
			LoadBalancerName: aws.String("shop-web"), Subnets: []string{"subnet-z"},
			Listeners: []types.Listener{{Protocol: aws.String("HTTP"), LoadBalancerPort: 80, InstanceProtocol: aws.String("HTTP"), InstancePort: aws.Int32(port)}},
		}
		for k, v := range tags {
			in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		if _, err := e.client.CreateLoadBalancer(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		prepare     func(t *testing.T, e *env) elbbalancer.API
		wantErr     error
		wantCreates int
	}{
		{"a load balancer of the route is adopted and reconciled, not duplicated",
			func(t *testing.T, e *env) elbbalancer.API { precreate(t, e, 9999, routeTags); return e.client }, nil, 0},
		{"a load balancer created meanwhile with other settings is adopted after DuplicateLoadBalancerName",
			func(t *testing.T, e *env) elbbalancer.API {
				precreate(t, e, 9999, routeTags)
				return &hideFirst{API: e.client}
			}, nil, 1},
		{"a load balancer of the name that belongs to something else is a conflict",
			func(t *testing.T, e *env) elbbalancer.API {
				precreate(t, e, 8080, map[string]string{"team": "other"})
				return e.client
			},
			providers.ErrConflict, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			b := elbbalancer.New(tt.prepare(t, e), &e.opts)
			e.calls.Reset()
			_, err := b.EnsureRoute(t.Context(), spec)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("EnsureRoute: got %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantCreates, e.calls.Count("CreateLoadBalancer")); diff != "" {
				t.Errorf("CreateLoadBalancer calls (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff([]string{"HTTP:80->HTTP:8080"}, e.observe(t, "shop-web").Listeners); diff != "" {
				t.Errorf("listeners after adoption (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("deleting a route whose load balancer belongs to something else is a conflict", func(t *testing.T) {
		e := newEnv(t, nil)
		precreate(t, e, 8080, nil)
		if err := e.b.DeleteRoute(t.Context(), "shop-web"); !errors.Is(err, providers.ErrConflict) {
			t.Errorf("DeleteRoute: got %v, want ErrConflict", err)
		}
	})
}

func TestHealthMapsInstanceStates(t *testing.T) {
	e := newEnv(t, nil)
	rt, err := e.b.EnsureRoute(t.Context(), providers.RouteSpec{App: "shop", Process: "web", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	states := []struct {
		id    string
		state elbtest.InstanceState
		want  providers.TargetHealth
	}{
		{"i-1", elbtest.InService,
			providers.TargetHealth{Target: "i-1", State: providers.TargetHealthy}},
		{"i-2", elbtest.InstanceState{State: "OutOfService", ReasonCode: "Instance", Description: "Instance has failed at least the UnhealthyThreshold number of health checks consecutively."},
			providers.TargetHealth{Target: "i-2", State: providers.TargetUnhealthy, Reason: "Instance: Instance has failed at least the UnhealthyThreshold number of health checks consecutively."}},
		{"i-3", elbtest.InstanceState{State: "OutOfService", ReasonCode: "ELB", Description: "Instance registration is still in progress."},
			providers.TargetHealth{Target: "i-3", State: providers.TargetInitial, Reason: "ELB: Instance registration is still in progress."}},
		{"i-4", elbtest.InstanceState{State: "InService", ReasonCode: "N/A", Description: "Instance deregistration currently in progress."},
			providers.TargetHealth{Target: "i-4", State: providers.TargetDraining, Reason: "Instance deregistration currently in progress."}},
		{"i-5", elbtest.InstanceState{State: "Unknown", ReasonCode: "ELB", Description: "A transient error occurred. Please try again later."},
			providers.TargetHealth{Target: "i-5", State: providers.TargetInitial, Reason: "ELB: A transient error occurred. Please try again later."}},
		{"i-6", elbtest.InstanceState{State: "Warming", ReasonCode: "N/A", Description: "N/A"},
			providers.TargetHealth{Target: "i-6", State: providers.TargetUnhealthy, Reason: "unknown instance state Warming"}},
	}
	var instances []types.Instance
	var want []providers.TargetHealth
	for _, s := range states {
		if err := e.srv.SetInstanceState(rt.ID, s.id, s.state); err != nil {
			t.Fatal(err)
		}
		instances = append(instances, types.Instance{InstanceId: aws.String(s.id)})
		want = append(want, s.want)
	}
	if _, err := e.client.RegisterInstancesWithLoadBalancer(t.Context(), &elb.RegisterInstancesWithLoadBalancerInput{LoadBalancerName: aws.String(rt.ID), Instances: instances}); err != nil {
		t.Fatal(err)
	}
	got, err := e.b.Health(t.Context(), rt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Health (-want +got):\n%s", diff)
	}
}

func TestErrorsMapToSentinels(t *testing.T) {
	spec := providers.RouteSpec{App: "shop", Process: "web", Port: 8080}
	tests := []struct {
		name   string
		op     string
		code   string
		status int
		want   error
	}{
		{"throttling is ErrThrottled", "DescribeLoadBalancers", "Throttling", http.StatusBadRequest, providers.ErrThrottled},
		{"a throttled dependency is ErrThrottled", "CreateLoadBalancer", "DependencyThrottle", http.StatusBadRequest, providers.ErrThrottled},
		{"access denied is ErrPermission", "CreateLoadBalancer", "AccessDenied", http.StatusForbidden, providers.ErrPermission},
		{"a missing certificate is ErrInvalid", "CreateLoadBalancer", "CertificateNotFound", http.StatusBadRequest, providers.ErrInvalid},
		{"too many load balancers is ErrInvalid", "CreateLoadBalancer", "TooManyLoadBalancers", http.StatusBadRequest, providers.ErrInvalid},
		{"an unavailable service is ErrUnavailable", "ConfigureHealthCheck", "ServiceUnavailable", http.StatusServiceUnavailable, providers.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.srv.FailNext(tt.op, tt.code, tt.status)
			_, err := e.b.EnsureRoute(t.Context(), spec)
			if !errors.Is(err, tt.want) {
				t.Fatalf("EnsureRoute: got %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(tt.code, awserr.Code(err)); diff != "" {
				t.Errorf("the SDK error is not reachable (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnsureRouteRejectsBadSpecsBeforeAnyCall(t *testing.T) {
	b := elbbalancer.New(nil, nil) // any call would panic
	base := providers.RouteSpec{App: "shop", Process: "web", Port: 8080}
	for _, tt := range []struct {
		name   string
		change func(*providers.RouteSpec)
	}{
		{"http2, which classic load balancers do not speak", func(s *providers.RouteSpec) { s.Protocol = providers.HTTP2; s.Certificate = cert }},
		{"a path, which classic load balancers cannot route by", func(s *providers.RouteSpec) { s.Path = "/api" }},
		{"https without any certificate", func(s *providers.RouteSpec) { s.Protocol = providers.HTTPS }},
		{"a certificate that is not an ARN", func(s *providers.RouteSpec) { s.Protocol = providers.HTTPS; s.Certificate = "mine" }},
		{"a certificate on plain http", func(s *providers.RouteSpec) { s.Certificate = cert }},
		{"a bad host", func(s *providers.RouteSpec) { s.Host = "shop example" }},
		{"a health check timeout over 60s", func(s *providers.RouteSpec) {
			s.Health.Interval = 90 * time.Second
			s.Health.Timeout = 61 * time.Second
		}},
		{"a health check timeout not under the interval", func(s *providers.RouteSpec) { s.Health.Interval = 5 * time.Second; s.Health.Timeout = 5 * time.Second }},
		{"an unhealthy threshold over 10", func(s *providers.RouteSpec) { s.Health.Unhealthy = 11 }},
		{"a deregistration delay over an hour", func(s *providers.RouteSpec) { s.DeregistrationDelay = 2 * time.Hour }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.change(&s)
			if _, err := b.EnsureRoute(t.Context(), s); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("EnsureRoute: got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestBalancerIsNotAWeightShifter(t *testing.T) {
	var b providers.Balancer = elbbalancer.New(nil, nil)
	if _, ok := b.(providers.WeightShifter); ok {
		t.Error("a classic load balancer claims to split traffic")
	}
}

// TestConformanceOnMoto runs the balancer suite on moto's classic ELB,
// an implementation independent of the package's own test server,
// without a namespace and in one.
func TestConformanceOnMoto(t *testing.T) {
	e := awstest.EmulatorOf(t, awstest.Moto)
	cfg := e.Config()
	subnets, sg := awstest.Subnets(t, cfg)
	for _, ns := range []string{"", "rack-a"} {
		t.Run("namespace "+ns, func(t *testing.T) {
			b := elbbalancer.New(elb.NewFromConfig(cfg), &elbbalancer.Options{Subnets: subnets, SecurityGroups: []string{sg}, Namespace: ns})
			providertest.TestBalancer(t, providertest.BalancerHarness{
				New: func(t *testing.T) providers.Balancer { return b },
			})
		})
	}
}

// TestTwoRacksRouteOneAppSideBySide checks that two racks in their own
// namespaces give an app of the same name load balancers of their own.
func TestTwoRacksRouteOneAppSideBySide(t *testing.T) {
	srv := elbtest.New(t)
	client := elb.NewFromConfig(awstest.ConfigFor(srv.URL))
	a := elbbalancer.New(client, &elbbalancer.Options{Subnets: []string{"subnet-1"}, Namespace: "rack-a"})
	b := elbbalancer.New(client, &elbbalancer.Options{Subnets: []string{"subnet-1"}, Namespace: "rack-b"})
	spec := providers.RouteSpec{App: "shop", Process: "web", Port: 8080}
	ra, err := a.EnsureRoute(t.Context(), spec)
	if err != nil {
		t.Fatalf("rack a: %v", err)
	}
	rb, err := b.EnsureRoute(t.Context(), spec)
	if err != nil {
		t.Fatalf("rack b: %v", err)
	}
	if ra.ID == rb.ID || ra.Endpoint == rb.Endpoint {
		t.Fatalf("both racks route shop-web to %s (%s) / %s (%s): want load balancers of their own", ra.ID, ra.Endpoint, rb.ID, rb.Endpoint)
	}
	if err := a.DeleteRoute(t.Context(), ra.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Health(t.Context(), rb.ID); err != nil {
		t.Errorf("rack b's route after rack a deleted its own: %v", err)
	}
	bad := elbbalancer.New(client, &elbbalancer.Options{Subnets: []string{"subnet-1"}, Namespace: "Rack/A"})
	if _, err := bad.EnsureRoute(t.Context(), spec); !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("EnsureRoute in namespace %q = %v, want ErrInvalid", "Rack/A", err)
	}
}
