package providertest_test

import (
	"testing"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/providertest"
)

// TestControls runs the suites on the providers the mutants are made
// from, unmutated: each must pass, so that a mutant's failure is its bug.
func TestControls(t *testing.T) {
	t.Run("Store", func(t *testing.T) {
		providertest.TestStore(t, func(*testing.T) providers.Store { return newMemStore("") })
	})
	t.Run("Logs", func(t *testing.T) {
		providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return newMemLogs("") }})
	})
}
