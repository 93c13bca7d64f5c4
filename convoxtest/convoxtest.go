// Package convoxtest builds SDK clients over fake racks (package
// providers/fake) for tests, in one call:
//
//	r := fake.New(nil)
//	c := convoxtest.NewClient(t, r, nil)
//
// It is the glue between package convox and package fake, and lives apart
// from both: package fake cannot import convox, because convox's own tests
// import fake (and providers never import the root package).
package convoxtest

import (
	"testing"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// Rack returns a convox.Rack of every provider of r: its Registry,
// Scheduler, Store and Notifier, r.TaskLogs() as Logs (Options.TaskLogs
// when the test plugged another Logs provider into r, else r's own Logs),
// and its balancers. A rack with one balancer has it as Rack.Balancer; a
// rack with several (fake.Options.Balancers) has them all in
// Rack.Balancers, by name, the default one first, so an app that names no
// balancer gets the default.
func Rack(r *fake.Rack) convox.Rack {
	rk := convox.Rack{
		Registry:  r.Registry(),
		Scheduler: r.Scheduler(),
		Logs:      r.TaskLogs(),
		Store:     r.Store(),
		Notifiers: []providers.Notifier{r.Notifier()},
	}
	bs := r.Balancers()
	if len(bs) == 1 {
		rk.Balancer = bs[0]
		return rk
	}
	for _, b := range bs {
		rk.Balancers = append(rk.Balancers, convox.Named[providers.Balancer]{Name: b.Name(), Provider: b})
	}
	return rk
}

// NewClient returns a Client over Rack(r) configured by opts (nil means
// defaults). A Client that cannot be created fails the test at once.
func NewClient(t testing.TB, r *fake.Rack, opts *convox.Options) *convox.Client {
	t.Helper()
	c, err := convox.New(Rack(r), opts)
	if err != nil {
		t.Fatalf("convoxtest: convox.New: %v", err)
	}
	return c
}
