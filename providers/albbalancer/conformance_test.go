package albbalancer_test

import (
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
func TestConformanceOnMoto(t *testing.T) {
	e := awstest.EmulatorOf(t, awstest.Moto)
	cfg := e.Config()
	subnets, sg := awstest.Subnets(t, cfg)
	b := albbalancer.New(elbv2.NewFromConfig(cfg), &albbalancer.Options{
		LoadBalancer: awstest.Name(t, "alb"), Subnets: subnets, SecurityGroups: []string{sg}, Domain: "apps.example.com",
	})
	providertest.TestBalancer(t, providertest.BalancerHarness{
		New: func(t *testing.T) providers.Balancer { return b },
	})
}
