package convox

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// Minimal providers for the chain's tests: each optional capability is a
// separate type, so a case can have it or not.

type baseScheduler struct{}

func (baseScheduler) Apply(context.Context, providers.Desired) (providers.Rollout, error) {
	return providers.Rollout{}, nil
}
func (baseScheduler) Status(context.Context, string) (providers.AppStatus, error) {
	return providers.AppStatus{}, nil
}
func (baseScheduler) Delete(context.Context, string) error { return nil }

type stagingScheduler struct{ baseScheduler }

func (stagingScheduler) Stage(context.Context, providers.Desired) (providers.Rollout, error) {
	return providers.Rollout{}, nil
}
func (stagingScheduler) PromoteStage(context.Context, string) error { return nil }
func (stagingScheduler) DiscardStage(context.Context, string) error { return nil }

type baseBalancer struct{}

func (baseBalancer) EnsureRoute(context.Context, providers.RouteSpec) (providers.Route, error) {
	return providers.Route{}, nil
}
func (baseBalancer) Health(context.Context, string) ([]providers.TargetHealth, error) {
	return nil, nil
}
func (baseBalancer) DeleteRoute(context.Context, string) error { return nil }

type weightedBalancer struct{ baseBalancer }

func (weightedBalancer) EnsureTargetSet(context.Context, string, string) (providers.Binding, error) {
	return providers.Binding{}, nil
}
func (weightedBalancer) SetWeights(context.Context, string, map[string]int) error { return nil }
func (weightedBalancer) Weights(context.Context, string) (map[string]int, error) {
	return nil, nil
}
func (weightedBalancer) DeleteTargetSet(context.Context, string, string) error { return nil }

type nopRegistry struct{}

func (nopRegistry) EnsureRepository(context.Context, string) (providers.Repository, error) {
	return providers.Repository{}, nil
}
func (nopRegistry) Resolve(context.Context, string) (providers.Image, error) {
	return providers.Image{}, nil
}
func (nopRegistry) Credentials(context.Context, string) (providers.Credentials, error) {
	return providers.Credentials{}, nil
}

type listingRegistry struct{ nopRegistry }

func (listingRegistry) ListImages(context.Context, string) ([]providers.Image, error) {
	return nil, nil
}

type deletingRegistry struct{ nopRegistry }

func (deletingRegistry) DeleteImage(context.Context, string, string) error { return nil }

type fullRegistry struct {
	listingRegistry
	deletingRegistry
}

func (fullRegistry) EnsureRepository(context.Context, string) (providers.Repository, error) {
	return providers.Repository{}, nil
}
func (fullRegistry) Resolve(context.Context, string) (providers.Image, error) {
	return providers.Image{}, nil
}
func (fullRegistry) Credentials(context.Context, string) (providers.Credentials, error) {
	return providers.Credentials{}, nil
}

type nopLogs struct{ providers.Logs }

// capabilities lists the capabilities sel.check finds, and whether the
// selection's scheduler calls offer staging.
func capabilities(sel selection) []string {
	all := []Capability{CapTaskRunner, CapCanceler, CapBatchStatus, CapWeightShifter, CapStager, CapLogTailer,
		CapLogSubscriber, CapImageLister, CapImageDeleter, CapChangePlanner, CapDriftDetector, CapEventReporter}
	var got []string
	for _, c := range all {
		if sel.check(c) == nil {
			got = append(got, string(c))
		}
	}
	if sel.balancer != nil {
		if _, ok := sel.balancer.(providers.WeightShifter); ok {
			got = append(got, "balancer is a WeightShifter")
		}
	}
	for name, b := range sel.balancers {
		if _, ok := b.(providers.WeightShifter); ok {
			got = append(got, "balancer "+name+" is a WeightShifter")
		}
	}
	if sel.sched.s != nil {
		if _, ok := sel.sched.stager(); ok {
			got = append(got, "scheduler calls stage")
		}
	}
	return got
}

// TestChainKeepsCapabilities: the providers as the Client calls them
// offer exactly the capabilities the rack's providers offer.
func TestChainKeepsCapabilities(t *testing.T) {
	tests := []struct {
		name      string
		scheduler providers.Scheduler
		balancer  providers.Balancer
		registry  providers.Registry // nopRegistry when nil
		want      []string
	}{
		{name: "base", scheduler: baseScheduler{}, balancer: baseBalancer{}},
		{
			name: "weighted balancer", scheduler: baseScheduler{}, balancer: weightedBalancer{},
			want: []string{"WeightShifter", "balancer is a WeightShifter", "balancer default is a WeightShifter"},
		},
		{
			name: "staging scheduler", scheduler: stagingScheduler{}, balancer: baseBalancer{},
			want: []string{"Stager", "scheduler calls stage"},
		},
		{
			name: "both", scheduler: stagingScheduler{}, balancer: weightedBalancer{},
			want: []string{"WeightShifter", "Stager", "balancer is a WeightShifter", "balancer default is a WeightShifter", "scheduler calls stage"},
		},
		{name: "listing registry", scheduler: baseScheduler{}, balancer: baseBalancer{}, registry: listingRegistry{}, want: []string{"ImageLister"}},
		{name: "deleting registry", scheduler: baseScheduler{}, balancer: baseBalancer{}, registry: deletingRegistry{}, want: []string{"ImageDeleter"}},
		{name: "full registry", scheduler: baseScheduler{}, balancer: baseBalancer{}, registry: fullRegistry{}, want: []string{"ImageLister", "ImageDeleter"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.registry == nil {
				tc.registry = nopRegistry{}
			}
			raw := selection{spec: AppSpec{Registry: DefaultName, Scheduler: DefaultName, Balancer: DefaultName, Logs: DefaultName},
				registry: tc.registry, scheduler: tc.scheduler, balancer: tc.balancer, logs: nopLogs{},
				balancers: map[string]providers.Balancer{DefaultName: tc.balancer}, sched: schedulerCalls{s: tc.scheduler}}
			r := Rack{Registry: tc.registry, Scheduler: tc.scheduler, Balancer: tc.balancer, Logs: nopLogs{}, Store: memStore{}}
			checked, err := r.resolve()
			if err != nil {
				t.Fatal(err)
			}
			resolved, err := checked.selectFor(AppSpec{})
			if err != nil {
				t.Fatal(err)
			}
			c, err := New(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			wrapped, err := c.rack.selectFor(AppSpec{})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := wrapped.balancer.(*balancerCalls); !ok {
				if _, ok := wrapped.balancer.(*weightedBalancerCalls); !ok {
					t.Fatalf("the client's balancer is a %T, not wrapped", wrapped.balancer)
				}
			}
			if diff := cmp.Diff(tc.want, capabilities(raw)); diff != "" {
				t.Errorf("rack's providers (-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, capabilities(resolved)); diff != "" {
				t.Errorf("providers Rack.Check sees (-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, capabilities(wrapped)); diff != "" {
				t.Errorf("client's providers (-want +got)\n%s", diff)
			}
		})
	}
}

// TestChainRetries: a call made at a deploy step retries temporary errors,
// each retry an EventRetry naming the step; other calls run once.
func TestChainRetries(t *testing.T) {
	unavailable := fmt.Errorf("scheduler: %w", providers.ErrUnavailable)
	invalid := fmt.Errorf("scheduler: %w", providers.ErrInvalid)
	type retry struct {
		App, Release string
		Step         Step
	}
	type result struct {
		Calls   int
		Retries []retry
		Err     error
	}
	tests := []struct {
		name   string
		atStep bool
		errs   []error
		want   result
	}{
		{name: "at a step, temporary errors", atStep: true, errs: []error{unavailable, unavailable},
			want: result{Calls: 3, Retries: []retry{{"web", "R1", StepApply}, {"web", "R1", StepApply}}}},
		{name: "at a step, other error", atStep: true, errs: []error{invalid}, want: result{Calls: 1, Err: providers.ErrInvalid}},
		{name: "outside a step", errs: []error{unavailable}, want: result{Calls: 1, Err: providers.ErrUnavailable}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got result
			c, err := New(Rack{Registry: nopRegistry{}, Scheduler: baseScheduler{}, Logs: nopLogs{}, Store: memStore{}}, &Options{
				PollInterval: time.Millisecond, RateLimit: -1,
				OnEvent: func(e Event) {
					if e.Type == EventRetry {
						got.Retries = append(got.Retries, retry{e.App, e.Release, e.Step})
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.atStep {
				ctx = (&Deployment{c: c, App: "web", Release: "R1"}).at(ctx, StepApply)
			}
			errs := tc.errs
			err = c.rack.schedChains[DefaultName].do(ctx, opApply, func() error {
				got.Calls++
				if len(errs) == 0 {
					return nil
				}
				err := errs[0]
				errs = errs[1:]
				return err
			})
			if tc.want.Err != nil && errors.Is(err, tc.want.Err) {
				got.Err = tc.want.Err
			} else {
				got.Err = err
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// flakyRegistry fails its first Resolve calls with errs.
type flakyRegistry struct {
	nopRegistry
	errs  []error
	calls int
}

func (f *flakyRegistry) Resolve(context.Context, string) (providers.Image, error) {
	f.calls++
	if len(f.errs) == 0 {
		return providers.Image{Digest: "sha256:1"}, nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return providers.Image{}, err
}

// TestRegistryResolveRetries: the client's registries retry a temporary
// error of Resolve and give up on others at once.
func TestRegistryResolveRetries(t *testing.T) {
	unavailable := fmt.Errorf("registry: %w", providers.ErrUnavailable)
	notFound := fmt.Errorf("registry: %w", providers.ErrNotFound)
	type result struct {
		Calls  int
		Digest string
		Err    bool
	}
	tests := []struct {
		name string
		errs []error
		want result
	}{
		{name: "temporary", errs: []error{unavailable}, want: result{Calls: 2, Digest: "sha256:1"}},
		{name: "not found", errs: []error{notFound}, want: result{Calls: 1, Err: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := &flakyRegistry{errs: tc.errs}
			c, err := New(Rack{Registry: reg, Scheduler: baseScheduler{}, Logs: nopLogs{}, Store: memStore{}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sel, err := c.rack.selectFor(AppSpec{})
			if err != nil {
				t.Fatal(err)
			}
			img, err := sel.registry.Resolve(context.Background(), "web:v1")
			got := result{Calls: reg.calls, Digest: img.Digest, Err: err != nil}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
