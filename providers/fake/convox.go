package fake

// This file is the one place package fake imports the root package: the
// root's own tests are external tests (package convox_test) so that they
// can use a fake rack without an import cycle.

import (
	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
)

// ConvoxRack returns the convox.Rack made of r's providers, ready for
// convox.New: its Registry, Scheduler and Store, its Notifier, r.TaskLogs()
// as Logs (Options.TaskLogs when a test plugged another Logs provider into
// r, else r's own Logs), and its balancers — the default one alone in Rack.Balancer, or, when
// Options.Balancers names more, every balancer under its own name in
// Rack.Balancers (the default one first, so that apps get it unless their
// AppSpec names another).
//
//	c, err := convox.New(fake.New(nil).ConvoxRack(), nil)
func (r *Rack) ConvoxRack() convox.Rack {
	rk := convox.Rack{
		Registry: r.Registry(), Scheduler: r.Scheduler(), Logs: r.TaskLogs(), Store: r.Store(),
		Notifiers: []providers.Notifier{r.Notifier()},
	}
	bals := r.Balancers()
	if len(bals) == 1 {
		rk.Balancer = bals[0]
		return rk
	}
	for _, b := range bals {
		rk.Balancers = append(rk.Balancers, convox.Named[providers.Balancer]{Name: b.Name(), Provider: b})
	}
	return rk
}
