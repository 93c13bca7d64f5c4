package providertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// BalancerHarness supplies the balancer under test.
type BalancerHarness struct {
	// New returns the balancer. It is called once per case and may return
	// a shared balancer: every case uses app names of its own.
	New func(t *testing.T) providers.Balancer
	// Spec returns a valid route spec for an app's process; nil means
	// plain HTTP to port 8080 with the provider's default host and path.
	// Cases vary its Health and DeregistrationDelay.
	Spec func(app, process string) providers.RouteSpec
	// Skip names rules a backend cannot pass, each with the reason the
	// test prints when it skips it: the rule's name below TestBalancer,
	// as -run would match it ("EnsureRoute/a changed spec updates the
	// route in place"). Meant for emulators that depart from the service
	// they stand for; a provider that needs it on the service itself does
	// not keep the contract.
	Skip map[string]string
}

// TestBalancer checks the providers.Balancer contract, and the
// WeightShifter contract when the balancer implements it. Targets are
// checked with a scheduler, by TestScheduler.
//
// Each rule group is a subtest of its own (EnsureRoute, Health,
// DeleteRoute, Concurrency, Context, WeightShifter), runnable alone with
// -run.
func TestBalancer(t *testing.T, h BalancerHarness) {
	s := balancerSuite{h}
	t.Run("EnsureRoute", s.testEnsureRoute)
	t.Run("Health", s.testHealth)
	t.Run("DeleteRoute", s.testDeleteRoute)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("Context", s.testContext)
	t.Run("WeightShifter", s.testWeightShifter)
}

// balancerSuite is the harness the Balancer rule groups share.
type balancerSuite struct{ BalancerHarness }

// spec returns the harness's route spec for an app's process.
func (h balancerSuite) spec(app, process string) providers.RouteSpec {
	if h.Spec != nil {
		return h.Spec(app, process)
	}
	return providers.RouteSpec{App: app, Process: process, Port: 8080, Protocol: providers.HTTP}
}

// setup returns the balancer and a route of a new app, deleted when the
// case ends.
func (h balancerSuite) setup(t *testing.T) (providers.Balancer, providers.Route, providers.RouteSpec) {
	b := h.New(t)
	s := h.spec(uniqueName(), "web")
	rt, err := b.EnsureRoute(t.Context(), s)
	must(t, "EnsureRoute", err)
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		b.DeleteRoute(ctx, rt.ID)
	})
	return b, rt, s
}

func (h balancerSuite) testEnsureRoute(t *testing.T) {
	h.run(t, "the same spec returns the same route", func(t *testing.T) {
		b, rt, s := h.setup(t)
		again, err := b.EnsureRoute(t.Context(), s)
		must(t, "second EnsureRoute", err)
		if diff := cmp.Diff(rt, again); diff != "" {
			t.Errorf("second EnsureRoute (-first +second):\n%s", diff)
		}
	})

	h.run(t, "the route has an ID, an endpoint and a binding to the process port", func(t *testing.T) {
		_, rt, s := h.setup(t)
		if rt.ID == "" || rt.Endpoint == "" {
			t.Errorf("EnsureRoute = %+v, want an ID and an Endpoint", rt)
		}
		if rt.Binding.Kind == "" || rt.Binding.Target == "" {
			t.Errorf("route binding %+v, want a Kind and a Target", rt.Binding)
		}
		if rt.Binding.Port != s.Port {
			t.Errorf("route binding port %d, want the process port %d", rt.Binding.Port, s.Port)
		}
	})

	h.run(t, "a changed spec updates the route in place", func(t *testing.T) {
		b, rt, s := h.setup(t)
		s.Health = providers.HealthCheck{Path: "/healthz", Interval: 10 * time.Second, Timeout: 5 * time.Second, Healthy: 2, Unhealthy: 3}
		s.DeregistrationDelay = 5 * time.Second
		updated, err := b.EnsureRoute(t.Context(), s)
		must(t, "EnsureRoute with a changed spec", err)
		if diff := cmp.Diff(rt.ID, updated.ID); diff != "" {
			t.Errorf("route ID after the update (-before +after):\n%s", diff)
		}
	})

	h.run(t, "distinct processes get distinct routes and bindings", func(t *testing.T) {
		b, rt, s := h.setup(t)
		other, err := b.EnsureRoute(t.Context(), h.spec(s.App, "admin"))
		must(t, "EnsureRoute of another process", err)
		t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			b.DeleteRoute(ctx, other.ID)
		})
		if other.ID == rt.ID || other.Binding.Target == rt.Binding.Target {
			t.Errorf("routes of web and admin share an ID or a binding target:\n%+v\n%+v", rt, other)
		}
	})

	h.run(t, "invalid specs return ErrInvalid", func(t *testing.T) {
		b := h.New(t)
		app := uniqueName()
		for _, tc := range []struct {
			name   string
			change func(*providers.RouteSpec)
		}{
			{"bad app name", func(s *providers.RouteSpec) { s.App = "Bad_App" }},
			{"empty process", func(s *providers.RouteSpec) { s.Process = "" }},
			{"bad process name", func(s *providers.RouteSpec) { s.Process = "Web" }},
			{"names too long together", func(s *providers.RouteSpec) { s.Process = "abcdefghijkl"; s.App = "abcdefghijklmnopqrst" }},
			{"port zero", func(s *providers.RouteSpec) { s.Port = 0 }},
			{"port out of range", func(s *providers.RouteSpec) { s.Port = 70000 }},
			{"unknown protocol", func(s *providers.RouteSpec) { s.Protocol = "gopher" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := h.spec(app, "web")
				tc.change(&s)
				_, err := b.EnsureRoute(t.Context(), s)
				wantErr(t, "EnsureRoute", err, providers.ErrInvalid)
			})
		}
	})
}

func (h balancerSuite) testHealth(t *testing.T) {
	h.run(t, "a route without tasks has no targets", func(t *testing.T) {
		b, rt, _ := h.setup(t)
		got, err := b.Health(t.Context(), rt.ID)
		must(t, "Health", err)
		if len(got) != 0 {
			t.Errorf("Health of a new route = %+v, want no targets", got)
		}
	})
}

func (h balancerSuite) testDeleteRoute(t *testing.T) {
	h.run(t, "is idempotent and leaves the route unknown", func(t *testing.T) {
		b, rt, _ := h.setup(t)
		must(t, "DeleteRoute", b.DeleteRoute(t.Context(), rt.ID))
		if err := b.DeleteRoute(t.Context(), rt.ID); err != nil {
			t.Errorf("second DeleteRoute: %v, want nil", err)
		}
		_, err := b.Health(t.Context(), rt.ID)
		wantErr(t, "Health of a deleted route", err, providers.ErrNotFound)
	})

	h.run(t, "a deleted route can be ensured again", func(t *testing.T) {
		b, rt, s := h.setup(t)
		must(t, "DeleteRoute", b.DeleteRoute(t.Context(), rt.ID))
		again, err := b.EnsureRoute(t.Context(), s)
		must(t, "EnsureRoute after DeleteRoute", err)
		if _, err := b.Health(t.Context(), again.ID); err != nil {
			t.Errorf("Health of the re-created route: %v", err)
		}
	})
}

func (h balancerSuite) testConcurrency(t *testing.T) {
	h.run(t, "concurrent EnsureRoute of one spec makes one route", func(t *testing.T) {
		b := h.New(t)
		s := h.spec(uniqueName(), "web")
		const callers = 10
		got := make([]providers.Route, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				var err error
				if got[i], err = b.EnsureRoute(t.Context(), s); err != nil {
					t.Errorf("EnsureRoute %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			b.DeleteRoute(ctx, got[0].ID)
		})
		for i := 1; i < callers; i++ {
			if diff := cmp.Diff(got[0], got[i]); diff != "" {
				t.Errorf("caller %d (-caller 0 +caller %d):\n%s", i, i, diff)
			}
		}
	})
}

func (h balancerSuite) testContext(t *testing.T) {
	h.run(t, "canceled context fails every method with context.Canceled", func(t *testing.T) {
		b, rt, s := h.setup(t)
		type method struct {
			name string
			call func(ctx context.Context) error
		}
		calls := []method{
			{"EnsureRoute", func(ctx context.Context) error { _, err := b.EnsureRoute(ctx, s); return err }},
			{"Health", func(ctx context.Context) error { _, err := b.Health(ctx, rt.ID); return err }},
			{"DeleteRoute", func(ctx context.Context) error { return b.DeleteRoute(ctx, rt.ID) }},
		}
		if w, ok := b.(providers.WeightShifter); ok {
			calls = append(calls,
				method{"EnsureTargetSet", func(ctx context.Context) error { _, err := w.EnsureTargetSet(ctx, rt.ID, "g"); return err }},
				method{"SetWeights", func(ctx context.Context) error { return w.SetWeights(ctx, rt.ID, map[string]int{"": 100}) }},
				method{"Weights", func(ctx context.Context) error { _, err := w.Weights(ctx, rt.ID); return err }},
				method{"DeleteTargetSet", func(ctx context.Context) error { return w.DeleteTargetSet(ctx, rt.ID, "g") }},
			)
		}
		for _, tc := range calls {
			t.Run(tc.name, func(t *testing.T) { checkCanceled(t, tc.call) })
		}
		if _, err := b.Health(t.Context(), rt.ID); err != nil {
			t.Errorf("Health after a canceled DeleteRoute: %v, want the route still there", err)
		}
	})
}

func (h balancerSuite) testWeightShifter(t *testing.T) {
	if _, ok := h.New(t).(providers.WeightShifter); !ok {
		t.Skip("the balancer does not implement providers.WeightShifter")
	}
	shifter := func(t *testing.T) (providers.WeightShifter, providers.Route) {
		b, rt, _ := h.setup(t)
		return b.(providers.WeightShifter), rt
	}
	weights := func(t *testing.T, w providers.WeightShifter, id string) map[string]int {
		t.Helper()
		got, err := w.Weights(t.Context(), id)
		must(t, "Weights", err)
		return got
	}

	h.run(t, "Weights/a new route sends everything to the default set", func(t *testing.T) {
		w, rt := shifter(t)
		if diff := cmp.Diff(map[string]int{"": 100}, weights(t, w, rt.ID)); diff != "" {
			t.Errorf("Weights (-want +got):\n%s", diff)
		}
	})

	h.run(t, "EnsureTargetSet/is idempotent and binds a set of its own with no weight", func(t *testing.T) {
		w, rt := shifter(t)
		first, err := w.EnsureTargetSet(t.Context(), rt.ID, "g")
		must(t, "EnsureTargetSet", err)
		second, err := w.EnsureTargetSet(t.Context(), rt.ID, "g")
		must(t, "second EnsureTargetSet", err)
		if diff := cmp.Diff(first, second); diff != "" {
			t.Errorf("second EnsureTargetSet (-first +second):\n%s", diff)
		}
		if first.Target == rt.Binding.Target || first.Kind != rt.Binding.Kind || first.Port != rt.Binding.Port {
			t.Errorf("set binding %+v, want the route binding's kind and port and a target of its own (route binding %+v)", first, rt.Binding)
		}
		if diff := cmp.Diff(map[string]int{"": 100, "g": 0}, weights(t, w, rt.ID)); diff != "" {
			t.Errorf("Weights (-want +got):\n%s", diff)
		}
	})

	h.run(t, "EnsureTargetSet/invalid set names return ErrInvalid", func(t *testing.T) {
		w, rt := shifter(t)
		for _, set := range []string{"", "long", "G", "1a"} {
			_, err := w.EnsureTargetSet(t.Context(), rt.ID, set)
			wantErr(t, "EnsureTargetSet("+set+")", err, providers.ErrInvalid)
		}
	})

	h.run(t, "SetWeights/splits traffic between sets", func(t *testing.T) {
		w, rt := shifter(t)
		_, err := w.EnsureTargetSet(t.Context(), rt.ID, "g")
		must(t, "EnsureTargetSet", err)
		for _, want := range []map[string]int{{"": 90, "g": 10}, {"": 50, "g": 50}, {"": 0, "g": 100}, {"": 100, "g": 0}} {
			must(t, "SetWeights", w.SetWeights(t.Context(), rt.ID, want))
			if diff := cmp.Diff(want, weights(t, w, rt.ID)); diff != "" {
				t.Errorf("Weights after SetWeights(%v) (-want +got):\n%s", want, diff)
			}
		}
	})

	h.run(t, "SetWeights/weights out of 0-100 or not summing to 100 return ErrInvalid and change nothing", func(t *testing.T) {
		w, rt := shifter(t)
		_, err := w.EnsureTargetSet(t.Context(), rt.ID, "g")
		must(t, "EnsureTargetSet", err)
		for _, bad := range []map[string]int{{"": 90}, {"": 50, "g": 51}, {"": 101, "g": -1}, {"": 0, "g": 0}} {
			wantErr(t, "SetWeights", w.SetWeights(t.Context(), rt.ID, bad), providers.ErrInvalid)
		}
		if diff := cmp.Diff(map[string]int{"": 100, "g": 0}, weights(t, w, rt.ID)); diff != "" {
			t.Errorf("Weights after refused changes (-want +got):\n%s", diff)
		}
	})

	h.run(t, "SetWeights/an unknown set returns ErrNotFound", func(t *testing.T) {
		w, rt := shifter(t)
		wantErr(t, "SetWeights", w.SetWeights(t.Context(), rt.ID, map[string]int{"": 90, "x": 10}), providers.ErrNotFound)
	})

	h.run(t, "DeleteTargetSet/a weighted set returns ErrConflict", func(t *testing.T) {
		w, rt := shifter(t)
		_, err := w.EnsureTargetSet(t.Context(), rt.ID, "g")
		must(t, "EnsureTargetSet", err)
		must(t, "SetWeights", w.SetWeights(t.Context(), rt.ID, map[string]int{"": 80, "g": 20}))
		wantErr(t, "DeleteTargetSet of a weighted set", w.DeleteTargetSet(t.Context(), rt.ID, "g"), providers.ErrConflict)
		if diff := cmp.Diff(map[string]int{"": 80, "g": 20}, weights(t, w, rt.ID)); diff != "" {
			t.Errorf("Weights after the refused delete (-want +got):\n%s", diff)
		}
	})

	h.run(t, "DeleteTargetSet/removes a set without weight and is idempotent", func(t *testing.T) {
		w, rt := shifter(t)
		_, err := w.EnsureTargetSet(t.Context(), rt.ID, "g")
		must(t, "EnsureTargetSet", err)
		must(t, "DeleteTargetSet", w.DeleteTargetSet(t.Context(), rt.ID, "g"))
		if err := w.DeleteTargetSet(t.Context(), rt.ID, "g"); err != nil {
			t.Errorf("second DeleteTargetSet: %v, want nil", err)
		}
		if diff := cmp.Diff(map[string]int{"": 100}, weights(t, w, rt.ID)); diff != "" {
			t.Errorf("Weights after DeleteTargetSet (-want +got):\n%s", diff)
		}
	})

	h.run(t, "WeightShifter/an unknown route returns ErrNotFound", func(t *testing.T) {
		w, rt := shifter(t)
		must(t, "DeleteRoute", w.(providers.Balancer).DeleteRoute(t.Context(), rt.ID))
		_, err := w.EnsureTargetSet(t.Context(), rt.ID, "g")
		wantErr(t, "EnsureTargetSet", err, providers.ErrNotFound)
		wantErr(t, "SetWeights", w.SetWeights(t.Context(), rt.ID, map[string]int{"": 100}), providers.ErrNotFound)
		_, err = w.Weights(t.Context(), rt.ID)
		wantErr(t, "Weights", err, providers.ErrNotFound)
	})
}

// run runs one rule as a subtest, unless the harness skips it.
func (h balancerSuite) run(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		if why, ok := skipped(t, h.Skip); ok {
			t.Skip(why)
		}
		f(t)
	})
}
