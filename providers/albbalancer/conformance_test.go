package albbalancer_test

import (
	"testing"

	"github.com/convox-go/convox/providers"
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
