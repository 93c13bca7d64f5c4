package albbalancer_test

import (
	"testing"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/providertest"
)

func TestConformance(t *testing.T) {
	e := newEnv(t, nil)
	providertest.TestBalancer(t, providertest.BalancerHarness{
		New: func(t *testing.T) providers.Balancer { return e.b },
	})
}
