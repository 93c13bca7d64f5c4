package local

import (
	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
)

// ConvoxRack returns the convox.Rack made of r's providers, ready for
// convox.New: its Registry, Scheduler, Logs and Store, and its balancers —
// the default one alone in Rack.Balancer, or, when Options.Balancers names
// more, every balancer under its own name in Rack.Balancers (the default
// one first, so that apps get it unless their AppSpec names another).
//
//	rack, err := local.Open(dir, nil)
//	...
//	defer rack.Close()
//	c, err := convox.New(rack.ConvoxRack(), nil)
func (r *Rack) ConvoxRack() convox.Rack {
	rk := convox.Rack{Registry: r.Registry(), Scheduler: r.Scheduler(), Logs: r.Logs(), Store: r.Store()}
	names := r.BalancerNames()
	if len(names) == 1 {
		rk.Balancer = r.Balancer()
		return rk
	}
	for _, name := range names {
		b, err := r.BalancerNamed(name)
		if err != nil {
			continue // BalancerNames lists only balancers the rack serves
		}
		rk.Balancers = append(rk.Balancers, convox.Named[providers.Balancer]{Name: name, Provider: b})
	}
	return rk
}
