package fake_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

func TestConvoxRack(t *testing.T) {
	plugged := fake.New(nil).Logs()
	tests := []struct {
		name          string
		opts          *fake.Options
		wantBalancer  bool     // Rack.Balancer is the rack's only balancer
		wantBalancers []string // names in Rack.Balancers
		wantLogs      func(r *fake.Rack) providers.Logs
	}{
		{
			name:         "a rack with one balancer has it as the default",
			wantBalancer: true,
			wantLogs:     func(r *fake.Rack) providers.Logs { return r.Logs() },
		},
		{
			name:          "a rack with several balancers names them all, the default first",
			opts:          &fake.Options{BalancerName: "elb", Balancers: []string{"alb", "nlb"}},
			wantBalancers: []string{"elb", "alb", "nlb"},
			wantLogs:      func(r *fake.Rack) providers.Logs { return r.Logs() },
		},
		{
			name:         "a plugged-in Logs provider is the rack's Logs",
			opts:         &fake.Options{TaskLogs: plugged},
			wantBalancer: true,
			wantLogs:     func(*fake.Rack) providers.Logs { return plugged },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fake.New(tc.opts)
			rk := r.ConvoxRack()
			if rk.Registry != providers.Registry(r.Registry()) || rk.Scheduler != providers.Scheduler(r.Scheduler()) ||
				rk.Store != providers.Store(r.Store()) || len(rk.Notifiers) != 1 || rk.Notifiers[0] != providers.Notifier(r.Notifier()) {
				t.Errorf("ConvoxRack() = %+v: want r's registry, scheduler, store and notifier", rk)
			}
			if rk.Logs != tc.wantLogs(r) {
				t.Errorf("ConvoxRack().Logs is not the expected provider")
			}
			if got := rk.Balancer != nil && rk.Balancer == providers.Balancer(r.Balancer()); got != tc.wantBalancer {
				t.Errorf("ConvoxRack().Balancer is the rack's default: %v, want %v", got, tc.wantBalancer)
			}
			var names []string
			for _, b := range rk.Balancers {
				names = append(names, b.Name)
				if b.Provider != providers.Balancer(r.BalancerNamed(b.Name)) {
					t.Errorf("ConvoxRack().Balancers[%q] is not the rack's balancer of that name", b.Name)
				}
			}
			if diff := cmp.Diff(tc.wantBalancers, names); diff != "" {
				t.Errorf("ConvoxRack().Balancers names (-want +got):\n%s", diff)
			}
			if err := rk.Check(); err != nil {
				t.Errorf("ConvoxRack().Check() = %v, want a valid rack", err)
			}
		})
	}
}
