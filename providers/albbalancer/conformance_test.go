package albbalancer_test

import (
	"errors"
	"testing"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/providertest"
)

// TestConformance runs the balancer suite twice: on the emulator's own
// answers (empty lists for missing resources, duplicate-name errors for a
// repeated create) and on AWS's (not-found errors, the existing resource
// for a repeated identical create).
func TestConformance(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		name string
		b    providers.Balancer
	}{
		{"emulator answers", e.b},
		{"AWS answers", e.withAPI(awsAnswers{e.client})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			providertest.TestBalancer(t, providertest.BalancerHarness{
				New: func(t *testing.T) providers.Balancer { return tt.b },
			})
		})
	}
}

// TestConformanceOnMoto runs the balancer suite on moto, whose ELBv2
// needs real subnets (it has EC2) and serves every operation the
// balancer calls.
// Each run is without a namespace and in one.
func TestConformanceOnMoto(t *testing.T) {
	e := awstest.EmulatorOf(t, awstest.Moto)
	cfg := e.Config()
	subnets, sg := awstest.Subnets(t, cfg)
	for _, ns := range []string{"", "rack-a"} {
		t.Run("namespace "+ns, func(t *testing.T) {
			b := albbalancer.New(elbv2.NewFromConfig(cfg), &albbalancer.Options{
				LoadBalancer: awstest.Name(t, "alb"), Subnets: subnets, SecurityGroups: []string{sg}, Domain: "apps.example.com", Namespace: ns,
			})
			providertest.TestBalancer(t, providertest.BalancerHarness{
				New: func(t *testing.T) providers.Balancer { return b },
			})
		})
	}
}

// TestTwoRacksRouteOneAppSideBySide checks, on moto, that two racks
// (two load balancers in their own namespaces) in one account route an
// app of the same name each to target groups of their own, and that
// deleting one's route leaves the other's.
func TestTwoRacksRouteOneAppSideBySide(t *testing.T) {
	e := awstest.EmulatorOf(t, awstest.Moto)
	cfg := e.Config()
	subnets, sg := awstest.Subnets(t, cfg)
	client := elbv2.NewFromConfig(cfg)
	app := awstest.Name(t, "shop")
	rack := func(ns string) *albbalancer.Balancer {
		return albbalancer.New(client, &albbalancer.Options{
			LoadBalancer: awstest.Name(t, "alb"), Subnets: subnets, SecurityGroups: []string{sg}, Domain: ns + ".example.com", Namespace: ns,
		})
	}
	a, b := rack("rack-a"), rack("rack-b")
	spec := providers.RouteSpec{App: app, Process: "web", Port: 8080}
	ra, err := a.EnsureRoute(t.Context(), spec)
	if err != nil {
		t.Fatalf("rack a: %v", err)
	}
	rb, err := b.EnsureRoute(t.Context(), spec)
	if err != nil {
		t.Fatalf("rack b: %v", err)
	}
	if ra.ID == rb.ID || ra.Binding.Target == rb.Binding.Target {
		t.Fatalf("both racks route %s to %s / %s: want target groups of their own", app, ra.Binding.Target, rb.Binding.Target)
	}
	if ra.Endpoint != "http://"+app+"-web.rack-a.example.com/" {
		t.Errorf("rack a endpoint = %q, want the readable default host", ra.Endpoint)
	}
	if err := a.DeleteRoute(t.Context(), ra.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Health(t.Context(), rb.ID); err != nil {
		t.Errorf("rack b's route after rack a deleted its own: %v", err)
	}
	if _, err := a.Health(t.Context(), ra.ID); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("rack a's deleted route: Health = %v, want ErrNotFound", err)
	}
	if err := b.DeleteRoute(t.Context(), rb.ID); err != nil {
		t.Fatal(err)
	}
}
