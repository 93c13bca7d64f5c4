package fake_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/providertest"
)

func TestConformanceOfAnAdditionalBalancer(t *testing.T) {
	opts := &fake.Options{BalancerName: "elb", Balancers: []string{"alb"}}
	t.Run("Balancer", func(t *testing.T) {
		providertest.TestBalancer(t, providertest.BalancerHarness{
			New: func(t *testing.T) providers.Balancer { return fake.New(opts).BalancerNamed("alb") },
		})
	})
	t.Run("Scheduler", func(t *testing.T) {
		setup := schedulerSetup(opts)
		providertest.TestScheduler(t, providertest.SchedulerHarness{New: func(t *testing.T) providertest.SchedulerSetup {
			s := setup(t)
			s.Balancer = s.Scheduler.(*fake.Scheduler).Rack().BalancerNamed("alb")
			return s
		}})
	})
}

// migration is a rack with balancers "elb" (the default) and "alb", each
// with a route of shop's web process.
type migration struct {
	rack     *fake.Rack
	img      providers.Image
	elb, alb providers.Route
}

func newMigration(t *testing.T) *migration {
	t.Helper()
	rack := fake.New(&fake.Options{BalancerName: "elb", Balancers: []string{"alb"}})
	m := &migration{rack: rack, img: rack.Push("shop", "v1", &fake.ImageConfig{Cmd: []string{"serve"}})}
	spec := providers.RouteSpec{App: "shop", Process: "web", Port: 8080}
	var err error
	if m.elb, err = rack.Balancer().EnsureRoute(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	if m.alb, err = rack.BalancerNamed("alb").EnsureRoute(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	return m
}

// desired is release R1 of shop, its web process bound to bindings, applied
// with token.
func (m *migration) desired(token string, bindings ...providers.Binding) providers.Desired {
	return providers.Desired{
		App: "shop", Release: "R1", Token: token, Image: m.img,
		Processes: []providers.Process{{Name: "web", Count: 1, Port: 8080}},
		Bindings:  map[string][]providers.Binding{"web": bindings},
	}
}

// balancersView is what one observation shows of the rollout and of the
// targets of both routes.
type balancersView struct {
	Rollout  providers.RolloutState
	ELB, ALB []string // "target state"
}

func (m *migration) observe(t *testing.T) balancersView {
	t.Helper()
	st, err := m.rack.Scheduler().Status(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	v := balancersView{Rollout: st.Rollouts[0].State}
	for _, side := range []struct {
		b     *fake.Balancer
		route providers.Route
		into  *[]string
	}{{m.rack.Balancer(), m.elb, &v.ELB}, {m.rack.BalancerNamed("alb"), m.alb, &v.ALB}} {
		hs, err := side.b.Health(t.Context(), side.route.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			*side.into = append(*side.into, fmt.Sprintf("%s %s", h.Target, h.State))
		}
	}
	return v
}

// TestOneProcessServedByTwoBalancers moves shop's web process from the elb
// route to the alb route as a balancer migration does: bindings [elb],
// then [elb alb], then [alb], each applied as a rollout of the same
// release. Each observation is one step of the step model.
func TestOneProcessServedByTwoBalancers(t *testing.T) {
	m := newMigration(t)
	const (
		a = "10.0.0.1:8080 " // the task bound to [elb]
		b = "10.0.0.2:8080 " // the task bound to [elb alb]
		c = "10.0.0.3:8080 " // the task bound to [alb]
	)
	inProgress, completed := providers.RolloutInProgress, providers.RolloutCompleted
	phases := []struct {
		name     string
		bindings []providers.Binding
		steps    []balancersView
	}{
		{
			name:     "bound to elb only, the task is a target of elb only",
			bindings: []providers.Binding{m.elb.Binding},
			steps: []balancersView{
				{Rollout: inProgress, ELB: []string{a + "initial"}},
				{Rollout: inProgress, ELB: []string{a + "healthy"}},
				{Rollout: inProgress, ELB: []string{a + "healthy"}},
				{Rollout: completed, ELB: []string{a + "healthy"}},
			},
		},
		{
			name:     "bound to elb and alb, the new task joins both while the old one serves elb",
			bindings: []providers.Binding{m.elb.Binding, m.alb.Binding},
			steps: []balancersView{
				{Rollout: inProgress, ELB: []string{a + "healthy", b + "initial"}, ALB: []string{b + "initial"}},
				{Rollout: inProgress, ELB: []string{a + "healthy", b + "healthy"}, ALB: []string{b + "healthy"}},
				{Rollout: inProgress, ELB: []string{a + "draining", b + "healthy"}, ALB: []string{b + "healthy"}},
				{Rollout: completed, ELB: []string{b + "healthy"}, ALB: []string{b + "healthy"}},
			},
		},
		{
			name:     "bound to alb only, elb drains once alb has a healthy new target",
			bindings: []providers.Binding{m.alb.Binding},
			steps: []balancersView{
				{Rollout: inProgress, ELB: []string{b + "healthy"}, ALB: []string{b + "healthy", c + "initial"}},
				{Rollout: inProgress, ELB: []string{b + "healthy"}, ALB: []string{b + "healthy", c + "healthy"}},
				{Rollout: inProgress, ELB: []string{b + "draining"}, ALB: []string{b + "draining", c + "healthy"}},
				{Rollout: completed, ALB: []string{c + "healthy"}},
			},
		},
	}
	for i, ph := range phases {
		if _, err := m.rack.Scheduler().Apply(t.Context(), m.desired(fmt.Sprint("t", i+1), ph.bindings...)); err != nil {
			t.Fatalf("%s: Apply: %v", ph.name, err)
		}
		for j, want := range ph.steps {
			if diff := cmp.Diff(want, m.observe(t)); diff != "" {
				t.Fatalf("%s: observation %d (-want +got):\n%s", ph.name, j+1, diff)
			}
		}
	}
}

func TestBindingsOfTheRacksBalancers(t *testing.T) {
	tests := []struct {
		name    string
		binding func(t *testing.T, m *migration) providers.Binding
		wantErr error
	}{
		{"a binding of the default balancer is accepted", func(t *testing.T, m *migration) providers.Binding { return m.elb.Binding }, nil},
		{"a binding of an additional balancer is accepted", func(t *testing.T, m *migration) providers.Binding { return m.alb.Binding }, nil},
		{"a binding of a balancer the rack lacks is invalid", func(t *testing.T, m *migration) providers.Binding {
			b := m.alb.Binding
			b.Balancer = "nlb"
			return b
		}, providers.ErrInvalid},
		{"a binding names a target set of its own balancer only", func(t *testing.T, m *migration) providers.Binding {
			b, err := m.rack.BalancerNamed("alb").EnsureTargetSet(t.Context(), m.alb.ID, "g")
			if err != nil {
				t.Fatal(err)
			}
			b.Balancer = "elb"
			return b
		}, providers.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMigration(t)
			_, err := m.rack.Scheduler().Apply(t.Context(), m.desired("t1", tc.binding(t, m)))
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Errorf("Apply = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestBalancersAreSeparate(t *testing.T) {
	m := newMigration(t)
	ctx := t.Context()
	elb, alb := m.rack.Balancer(), m.rack.BalancerNamed("alb")
	m.rack.ResetCalls()
	if err := elb.DeleteRoute(ctx, m.elb.ID); err != nil {
		t.Fatal(err)
	}
	_, elbErr := elb.Health(ctx, m.elb.ID)
	albHealth, albErr := alb.Health(ctx, m.alb.ID)
	var calls []string
	for _, c := range m.rack.Calls() {
		calls = append(calls, c.Balancer+" "+c.Name())
	}
	got := map[string]any{
		"names":                   []string{elb.Name(), alb.Name()},
		"BalancerNamed(elb)":      m.rack.BalancerNamed("elb") == elb,
		"endpoints":               []string{m.elb.Endpoint, m.alb.Endpoint},
		"binding balancers":       []string{m.elb.Binding.Balancer, m.alb.Binding.Balancer},
		"elb health after delete": errors.Is(elbErr, providers.ErrNotFound),
		"alb health after delete": fmt.Sprint(albHealth, albErr),
		"calls":                   calls,
	}
	want := map[string]any{
		"names":                   []string{"elb", "alb"},
		"BalancerNamed(elb)":      true,
		"endpoints":               []string{"http://shop-web.fake.test", "http://shop-web.alb.fake.test"},
		"binding balancers":       []string{"elb", "alb"},
		"elb health after delete": true,
		"alb health after delete": "[] <nil>",
		"calls":                   []string{"elb Balancer.DeleteRoute", "elb Balancer.Health", "alb Balancer.Health"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("two balancers of one rack (-want +got):\n%s", diff)
	}
}

func TestBalancerNamesAreChecked(t *testing.T) {
	tests := []struct {
		name string
		run  func()
	}{
		{"a duplicate name in Options.Balancers panics", func() { fake.New(&fake.Options{Balancers: []string{"alb", "alb"}}) }},
		{"Options.Balancers repeating the default name panics", func() { fake.New(&fake.Options{Balancers: []string{"fake"}}) }},
		{"an empty name in Options.Balancers panics", func() { fake.New(&fake.Options{Balancers: []string{""}}) }},
		{"BalancerNamed of an unknown name panics", func() { fake.New(nil).BalancerNamed("alb") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				tc.run()
			}()
			if recovered == nil {
				t.Errorf("no panic")
			}
		})
	}
}
