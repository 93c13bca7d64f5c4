package fake_test

import (
	"testing"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/providertest"
)

func TestConformance(t *testing.T) {
	t.Run("Store", func(t *testing.T) {
		providertest.TestStore(t, func(t *testing.T) providers.Store { return fake.New(nil).Store() })
	})
}
