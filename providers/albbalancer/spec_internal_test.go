package albbalancer

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awshealth"
	"github.com/convox-go/convox/providers"
)

func TestNormalize(t *testing.T) {
	b := New(nil, &Options{Domain: "apps.example.com"})
	base := providers.RouteSpec{App: "shop", Process: "web", Port: 8080}
	defaults := awshealth.Settings{Path: "/", Interval: 10, Timeout: 5, Healthy: 2, Unhealthy: 3}
	tests := []struct {
		name   string
		change func(*providers.RouteSpec)
		want   route
	}{
		{"no host and no path routes the default host under the domain", nil,
			route{id: "shop-web", app: "shop", process: "web", port: 8080, protocol: providers.HTTP, host: "shop-web.apps.example.com", health: defaults, dereg: 30}},
		{"a host is lowercased and used alone",
			func(s *providers.RouteSpec) { s.Host = "Shop.Example.COM" },
			route{id: "shop-web", app: "shop", process: "web", port: 8080, protocol: providers.HTTP, host: "shop.example.com", health: defaults, dereg: 30}},
		{"a path prefix matches itself and everything under it",
			func(s *providers.RouteSpec) { s.Path = "/api/" },
			route{id: "shop-web", app: "shop", process: "web", port: 8080, protocol: providers.HTTP, prefix: "/api", patterns: []string{"/api", "/api/*"}, health: defaults, dereg: 30}},
		{"path / without a host matches every path of every host",
			func(s *providers.RouteSpec) { s.Path = "/" },
			route{id: "shop-web", app: "shop", process: "web", port: 8080, protocol: providers.HTTP, patterns: []string{"/*"}, health: defaults, dereg: 30}},
		{"path / with a host is the whole host",
			func(s *providers.RouteSpec) { s.Host = "shop.example.com"; s.Path = "/" },
			route{id: "shop-web", app: "shop", process: "web", port: 8080, protocol: providers.HTTP, host: "shop.example.com", health: defaults, dereg: 30}},
		{"a path with a wildcard is used as given",
			func(s *providers.RouteSpec) { s.Path = "/img/*.png" },
			route{id: "shop-web", app: "shop", process: "web", port: 8080, protocol: providers.HTTP, prefix: "/img", patterns: []string{"/img/*.png"}, health: defaults, dereg: 30}},
		{"health check and deregistration delay are converted to whole seconds, rounding up",
			func(s *providers.RouteSpec) {
				s.Health = providers.HealthCheck{Path: "/healthz", Interval: 6500 * time.Millisecond, Timeout: 2 * time.Second, Healthy: 4, Unhealthy: 5}
				s.DeregistrationDelay = 1500 * time.Millisecond
			},
			route{id: "shop-web", app: "shop", process: "web", port: 8080, protocol: providers.HTTP, host: "shop-web.apps.example.com",
				health: awshealth.Settings{Path: "/healthz", Interval: 7, Timeout: 2, Healthy: 4, Unhealthy: 5}, dereg: 2}},
		{"https keeps its certificate",
			func(s *providers.RouteSpec) {
				s.Protocol = providers.HTTPS
				s.Certificate = "arn:aws:acm:us-east-1:1:certificate/x"
			},
			route{id: "shop-web", app: "shop", process: "web", port: 8080, protocol: providers.HTTPS, host: "shop-web.apps.example.com", cert: "arn:aws:acm:us-east-1:1:certificate/x", health: defaults, dereg: 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			if tt.change != nil {
				tt.change(&s)
			}
			got, err := b.normalize(s)
			if err != nil {
				t.Fatalf("normalize: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(route{})); diff != "" {
				t.Errorf("normalize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	base := providers.RouteSpec{App: "shop", Process: "web", Port: 8080}
	tests := []struct {
		name   string
		domain string
		change func(*providers.RouteSpec)
	}{
		{"no host and no path without a domain", "", nil},
		{"a host with a space", "d", func(s *providers.RouteSpec) { s.Host = "a b.example.com" }},
		{"a host with an empty label", "d", func(s *providers.RouteSpec) { s.Host = "a..example.com" }},
		{"a path not starting with /", "d", func(s *providers.RouteSpec) { s.Path = "api" }},
		{"a path with a forbidden character", "d", func(s *providers.RouteSpec) { s.Path = "/a b" }},
		{"a certificate that is not an ARN", "d", func(s *providers.RouteSpec) { s.Protocol = providers.HTTPS; s.Certificate = "mycert" }},
		{"a certificate on plain http", "d", func(s *providers.RouteSpec) { s.Certificate = "arn:aws:acm:x" }},
		{"a health check interval under 5s", "d", func(s *providers.RouteSpec) { s.Health.Interval = 4 * time.Second }},
		{"a health check timeout not shorter than the interval", "d", func(s *providers.RouteSpec) {
			s.Health.Interval = 5 * time.Second
			s.Health.Timeout = 5 * time.Second
		}},
		{"a healthy threshold over 10", "d", func(s *providers.RouteSpec) { s.Health.Healthy = 11 }},
		{"an unhealthy threshold of 1", "d", func(s *providers.RouteSpec) { s.Health.Unhealthy = 1 }},
		{"a health check path not starting with /", "d", func(s *providers.RouteSpec) { s.Health.Path = "healthz" }},
		{"a negative deregistration delay", "d", func(s *providers.RouteSpec) { s.DeregistrationDelay = -time.Second }},
		{"a deregistration delay over an hour", "d", func(s *providers.RouteSpec) { s.DeregistrationDelay = 61 * time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			if tt.change != nil {
				tt.change(&s)
			}
			_, err := New(nil, &Options{Domain: tt.domain}).normalize(s)
			if !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("normalize: got %v, want an error matching ErrInvalid", err)
			}
		})
	}
}

func TestPriorities(t *testing.T) {
	b := New(nil, &Options{Domain: "d"})
	mk := func(app, host, path string) route {
		r, err := b.normalize(providers.RouteSpec{App: app, Process: "web", Port: 80, Host: host, Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := func(r route) int {
		p, ok := r.allocate(map[int]bool{})
		if !ok {
			t.Fatalf("no priority for %s", r.id)
		}
		return p
	}
	// Each route must come before the next one: more specific first.
	order := []struct {
		rule string
		r    route
	}{
		{"host with a long path", mk("a", "x.example.com", "/api/v2")},
		{"host with a short path", mk("b", "x.example.com", "/api")},
		{"exact host", mk("c", "x.example.com", "")},
		{"wildcard host", mk("d", "*.example.com", "")},
		{"long path on any host", mk("e", "", "/static/img")},
		{"short path on any host", mk("f", "", "/static")},
		{"every path on any host", mk("g", "", "/")},
	}
	for i := 1; i < len(order); i++ {
		t.Run(order[i-1].rule+" before "+order[i].rule, func(t *testing.T) {
			if a, b := first(order[i-1].r), first(order[i].r); a >= b {
				t.Errorf("priorities %d and %d, want the first lower", a, b)
			}
		})
	}
	t.Run("a route gets the same priority every time its slot is free", func(t *testing.T) {
		r := mk("shop", "", "")
		if a, b := first(r), first(mk("shop", "", "")); a != b {
			t.Errorf("priorities %d and %d, want equal", a, b)
		}
	})
	t.Run("a taken slot moves the route to the next free one in its band", func(t *testing.T) {
		r := mk("shop", "", "")
		p := first(r)
		got, ok := r.allocate(map[int]bool{p: true})
		if !ok || got == p || !r.inBand(got) {
			t.Errorf("allocate with %d taken = %d, %v; want another priority in the band", p, got, ok)
		}
	})
	t.Run("a full band falls back to the rest of the route's class", func(t *testing.T) {
		r := mk("shop", "x.example.com", "/api")
		lo, hi, classLo, classHi := r.bands()
		taken := map[int]bool{}
		for p := lo; p <= hi; p++ {
			taken[p] = true
		}
		got, ok := r.allocate(taken)
		if !ok || got < classLo || got > classHi || (got >= lo && got <= hi) {
			t.Errorf("allocate with the band %d-%d full = %d, %v; want a free priority in %d-%d", lo, hi, got, ok, classLo, classHi)
		}
	})
	t.Run("every priority is within ELBv2's 1-50000", func(t *testing.T) {
		for _, o := range order {
			_, _, lo, hi := o.r.bands()
			if lo < 1 || hi > 50000 {
				t.Errorf("%s: class %d-%d", o.rule, lo, hi)
			}
		}
	})
}

func TestTargetHealthMapping(t *testing.T) {
	target := &types.TargetDescription{Id: aws.String("10.0.0.7"), Port: aws.Int32(8080)}
	tests := []struct {
		name string
		in   types.TargetHealth
		want providers.TargetHealth
	}{
		{"healthy is healthy",
			types.TargetHealth{State: types.TargetHealthStateEnumHealthy},
			providers.TargetHealth{Target: "10.0.0.7:8080", Set: "g", State: providers.TargetHealthy}},
		{"initial is initial with its reason",
			types.TargetHealth{State: types.TargetHealthStateEnumInitial, Reason: types.TargetHealthReasonEnumRegistrationInProgress, Description: aws.String("Target registration is in progress")},
			providers.TargetHealth{Target: "10.0.0.7:8080", Set: "g", State: providers.TargetInitial, Reason: "Elb.RegistrationInProgress: Target registration is in progress"}},
		{"unhealthy is unhealthy with its reason",
			types.TargetHealth{State: types.TargetHealthStateEnumUnhealthy, Reason: types.TargetHealthReasonEnumResponseCodeMismatch, Description: aws.String("Health checks failed with these codes: [502]")},
			providers.TargetHealth{Target: "10.0.0.7:8080", Set: "g", State: providers.TargetUnhealthy, Reason: "Target.ResponseCodeMismatch: Health checks failed with these codes: [502]"}},
		{"draining is draining",
			types.TargetHealth{State: types.TargetHealthStateEnumDraining, Reason: types.TargetHealthReasonEnumDeregistrationInProgress},
			providers.TargetHealth{Target: "10.0.0.7:8080", Set: "g", State: providers.TargetDraining, Reason: "Target.DeregistrationInProgress"}},
		{"unhealthy.draining is draining",
			types.TargetHealth{State: types.TargetHealthStateEnumUnhealthyDraining, Reason: types.TargetHealthReasonEnumFailedHealthChecks},
			providers.TargetHealth{Target: "10.0.0.7:8080", Set: "g", State: providers.TargetDraining, Reason: "Target.FailedHealthChecks"}},
		{"unused is unused",
			types.TargetHealth{State: types.TargetHealthStateEnumUnused, Reason: types.TargetHealthReasonEnumNotInUse},
			providers.TargetHealth{Target: "10.0.0.7:8080", Set: "g", State: providers.TargetUnused, Reason: "Target.NotInUse"}},
		{"unavailable is unhealthy",
			types.TargetHealth{State: types.TargetHealthStateEnumUnavailable, Reason: types.TargetHealthReasonEnumHealthCheckDisabled},
			providers.TargetHealth{Target: "10.0.0.7:8080", Set: "g", State: providers.TargetUnhealthy, Reason: "Target.HealthCheckDisabled"}},
		{"an unknown state is unhealthy and named",
			types.TargetHealth{State: "warming"},
			providers.TargetHealth{Target: "10.0.0.7:8080", Set: "g", State: providers.TargetUnhealthy, Reason: "unknown target state warming"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := targetHealth("g", types.TargetHealthDescription{Target: target, TargetHealth: &tt.in})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("targetHealth (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPercents(t *testing.T) {
	arn := func(name string) string {
		return "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/" + name + "/0123"
	}
	tests := []struct {
		name string
		in   []tuple
		want map[string]int
	}{
		{"a single target group takes everything whatever its weight",
			[]tuple{{arn("shop-web"), 1}}, map[string]int{"": 100}},
		{"weights written in percent read back unchanged",
			[]tuple{{arn("shop-web"), 90}, {arn("shop-web-g"), 10}}, map[string]int{"": 90, "g": 10}},
		{"weights in other proportions are scaled to percent",
			[]tuple{{arn("shop-web"), 1}, {arn("shop-web-g"), 3}}, map[string]int{"": 25, "g": 75}},
		{"a set with weight 0 is listed",
			[]tuple{{arn("shop-web"), 100}, {arn("shop-web-g"), 0}}, map[string]int{"": 100, "g": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, percents("shop-web", tt.in)); diff != "" {
				t.Errorf("percents (-want +got):\n%s", diff)
			}
		})
	}
}
