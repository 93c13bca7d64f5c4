package convox

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
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

type tailingLogs struct{ nopLogs }

func (tailingLogs) Tail(context.Context, providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
	return func(func(providers.LogEntry, error) bool) {}
}

type subscribingLogs struct{ nopLogs }

func (subscribingLogs) Subscribe(context.Context, string, providers.Subscription) (providers.Subscription, error) {
	return providers.Subscription{}, nil
}
func (subscribingLogs) Subscriptions(context.Context, string) ([]providers.Subscription, error) {
	return nil, nil
}
func (subscribingLogs) Unsubscribe(context.Context, string, string) error { return nil }

type fullLogs struct {
	tailingLogs
	subscribingLogs
}

func (fullLogs) Write(context.Context, []providers.LogEntry) error { return nil }
func (fullLogs) Read(context.Context, providers.LogQuery, string) (providers.LogPage, error) {
	return providers.LogPage{}, nil
}
func (fullLogs) Delete(context.Context, string) error { return nil }

// fullScheduler has every optional capability a scheduler can have.
type fullScheduler struct{ stagingScheduler }

func (fullScheduler) RunTask(context.Context, providers.RunSpec) (providers.Task, error) {
	return providers.Task{}, nil
}
func (fullScheduler) GetTask(context.Context, string, string) (providers.Task, error) {
	return providers.Task{}, nil
}
func (fullScheduler) StopTask(context.Context, string, string) error      { return nil }
func (fullScheduler) CancelRollout(context.Context, string, string) error { return nil }
func (fullScheduler) StatusMany(context.Context, []string) (map[string]providers.AppStatus, error) {
	return nil, nil
}
func (fullScheduler) PlanChanges(context.Context, providers.Desired) ([]providers.ResourceChange, error) {
	return nil, nil
}
func (fullScheduler) DetectDrift(context.Context, string) ([]providers.ResourceDrift, error) {
	return nil, nil
}
func (fullScheduler) RolloutEvents(context.Context, string, time.Time) ([]providers.PlatformEvent, error) {
	return nil, nil
}
func (fullScheduler) KeepSecret(context.Context, string, string, string) (string, error) {
	return "", nil
}

// ok drops the value of a (value, ok) pair.
func ok[T any](_ T, ok bool) bool { return ok }

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
		for name, ok := range map[string]bool{
			"TaskRunner":    ok(sel.sched.taskRunner()),
			"Canceler":      ok(sel.sched.canceler()),
			"BatchStatus":   ok(sel.sched.batchStatus()),
			"ChangePlanner": ok(sel.sched.changePlanner()),
			"DriftDetector": ok(sel.sched.driftDetector()),
			"EventReporter": ok(sel.sched.eventReporter()),
			"SecretKeeper":  ok(sel.sched.secretKeeper()),
		} {
			if ok {
				got = append(got, "scheduler calls "+name)
			}
		}
	}
	slices.Sort(got)
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
		logs      providers.Logs     // nopLogs when nil
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
		{name: "tailing logs", scheduler: baseScheduler{}, balancer: baseBalancer{}, logs: tailingLogs{}, want: []string{"LogTailer"}},
		{name: "subscribing logs", scheduler: baseScheduler{}, balancer: baseBalancer{}, logs: subscribingLogs{}, want: []string{"LogSubscriber"}},
		{name: "full logs", scheduler: baseScheduler{}, balancer: baseBalancer{}, logs: fullLogs{}, want: []string{"LogTailer", "LogSubscriber"}},
		{
			name: "full scheduler", scheduler: fullScheduler{}, balancer: baseBalancer{},
			want: []string{"TaskRunner", "Canceler", "BatchStatus", "Stager", "ChangePlanner", "DriftDetector", "EventReporter",
				"scheduler calls stage", "scheduler calls TaskRunner", "scheduler calls Canceler", "scheduler calls BatchStatus",
				"scheduler calls ChangePlanner", "scheduler calls DriftDetector", "scheduler calls EventReporter", "scheduler calls SecretKeeper"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.registry == nil {
				tc.registry = nopRegistry{}
			}
			if tc.logs == nil {
				tc.logs = nopLogs{}
			}
			slices.Sort(tc.want)
			raw := selection{spec: AppSpec{Registry: DefaultName, Scheduler: DefaultName, Balancer: DefaultName, Logs: DefaultName},
				registry: tc.registry, scheduler: tc.scheduler, balancer: tc.balancer, logs: tc.logs,
				balancers: map[string]providers.Balancer{DefaultName: tc.balancer}, sched: schedulerCalls{s: tc.scheduler}}
			r := Rack{Registry: tc.registry, Scheduler: tc.scheduler, Balancer: tc.balancer, Logs: tc.logs, Store: memStore{}}
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

// TestChainPolicies: each kind of provider retries a temporary error by
// its policy (a deploy step's calls until ctx ends, each retry an
// EventRetry; the store's a bounded number of times; a follow's reads
// silently; a notifier's never), and Calls accounts every attempt with
// the time spent in the call only.
func TestChainPolicies(t *testing.T) {
	unavailable := fmt.Errorf("provider: %w", providers.ErrUnavailable)
	invalid := fmt.Errorf("provider: %w", providers.ErrInvalid)
	type retry struct {
		App, Release string
		Step         Step
	}
	type result struct {
		Stats   CallStats
		Retries []retry // EventRetry events
		Err     error
	}
	const callTime = time.Second // each call takes this long
	tests := []struct {
		name string
		kind string
		o    op
		// scope makes the ctx of the call: a deploy step's, a follow's, or none.
		scope string
		errs  []error
		want  result
	}{
		{name: "scheduler at a step retries temporary errors", kind: KindScheduler, o: opApply, scope: "step", errs: []error{unavailable, unavailable},
			want: result{Stats: CallStats{Calls: 3, Errors: 2, Retries: 2}, Retries: []retry{{"web", "R1", StepApply}, {"web", "R1", StepApply}}}},
		{name: "scheduler at a step stops at another error", kind: KindScheduler, o: opApply, scope: "step", errs: []error{invalid},
			want: result{Stats: CallStats{Calls: 1, Errors: 1}, Err: providers.ErrInvalid}},
		{name: "scheduler outside a step runs once", kind: KindScheduler, o: opApply, errs: []error{unavailable},
			want: result{Stats: CallStats{Calls: 1, Errors: 1}, Err: providers.ErrUnavailable}},
		{name: "store retries without a scope", kind: KindStore, o: opGet, errs: []error{unavailable},
			want: result{Stats: CallStats{Calls: 2, Errors: 1, Retries: 1}}},
		{name: "store gives up after its attempts", kind: KindStore, o: opPut, scope: "step", errs: slices.Repeat([]error{unavailable}, retryAttempts+1),
			want: result{Stats: CallStats{Calls: retryAttempts, Errors: retryAttempts, Retries: retryAttempts - 1}, Err: providers.ErrUnavailable}},
		{name: "registry retries Resolve", kind: KindRegistry, o: opResolve, errs: []error{unavailable},
			want: result{Stats: CallStats{Calls: 2, Errors: 1, Retries: 1}}},
		{name: "registry runs other calls once", kind: KindRegistry, o: opDeleteImage, errs: []error{unavailable},
			want: result{Stats: CallStats{Calls: 1, Errors: 1}, Err: providers.ErrUnavailable}},
		{name: "logs in a follow retry silently", kind: KindLogs, o: opRead, scope: "follow", errs: []error{unavailable, unavailable, unavailable},
			want: result{Stats: CallStats{Calls: 4, Errors: 3, Retries: 3}}},
		{name: "notifier never retries, even at a step", kind: KindNotifier, o: opNotify, scope: "step", errs: []error{unavailable},
			want: result{Stats: CallStats{Calls: 1, Errors: 1}, Err: providers.ErrUnavailable}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var got result
				c, err := New(Rack{Registry: nopRegistry{}, Scheduler: baseScheduler{}, Logs: nopLogs{}, Store: memStore{}, Notifiers: []providers.Notifier{nopNotifier{}}}, &Options{
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
				var ch *chain
				for _, x := range c.chains {
					if x.kind == tc.kind {
						ch = x
					}
				}
				ctx := context.Background()
				switch tc.scope {
				case "step":
					ctx = (&Deployment{c: c, App: "web", Release: "R1"}).at(ctx, StepApply)
				case "follow":
					ctx = withFollowRetry(ctx, time.Millisecond, time.Second)
				}
				errs := tc.errs
				err = ch.do(ctx, tc.o, func() error {
					time.Sleep(callTime)
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
				calls := c.Calls()
				if len(calls) != 1 {
					t.Fatalf("Calls() = %+v, want the one operation called", calls)
				}
				got.Stats = calls[0]
				tc.want.Stats.Kind, tc.want.Stats.Provider, tc.want.Stats.Op = tc.kind, ch.name, opNames[tc.o]
				tc.want.Stats.Time = time.Duration(tc.want.Stats.Calls) * callTime
				if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
					t.Errorf("(-want +got)\n%s", diff)
				}
			})
		})
	}
}

type nopNotifier struct{}

func (nopNotifier) Notify(context.Context, providers.Notification) error { return nil }

// TestRateLimitsByKind: each provider waits for its kind's rate limit:
// schedulers and balancers RateLimit's by default, the other kinds none
// unless Options.RateLimits sets one, and a Rate of zero turns it off.
func TestRateLimitsByKind(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		kind  string
		calls int
		want  time.Duration // the time the calls waited for the limiter
	}{
		{name: "store unlimited by default", kind: KindStore, calls: 5},
		{name: "store limited by RateLimits", opts: Options{RateLimits: map[string]Rate{KindStore: {PerSecond: 1}}}, kind: KindStore, calls: 5, want: 4 * time.Second},
		{name: "scheduler limited by RateLimit", opts: Options{RateLimit: 2, RateBurst: 2}, kind: KindScheduler, calls: 4, want: time.Second},
		{name: "RateLimits replaces RateLimit", opts: Options{RateLimit: 2, RateLimits: map[string]Rate{KindScheduler: {PerSecond: 4, Burst: 1}}}, kind: KindScheduler, calls: 5, want: time.Second},
		{name: "a zero Rate turns the limit off", opts: Options{RateLimits: map[string]Rate{KindBalancer: {}}}, kind: KindBalancer, calls: 50},
		{name: "notifier limited by RateLimits", opts: Options{RateLimits: map[string]Rate{KindNotifier: {PerSecond: 10, Burst: 2}}}, kind: KindNotifier, calls: 12, want: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, err := New(Rack{Registry: nopRegistry{}, Scheduler: baseScheduler{}, Balancer: baseBalancer{}, Logs: nopLogs{}, Store: memStore{},
					Notifiers: []providers.Notifier{nopNotifier{}}}, &tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				var ch *chain
				for _, x := range c.chains {
					if x.kind == tc.kind {
						ch = x
					}
				}
				start := time.Now()
				for range tc.calls {
					if err := ch.do(context.Background(), opGet, func() error { return nil }); err != nil {
						t.Fatal(err)
					}
				}
				if got := time.Since(start); got != tc.want {
					t.Errorf("%d calls waited %s, want %s", tc.calls, got, tc.want)
				}
			})
		})
	}
}

// TestRateLimitsRefusesBadInput: New refuses RateLimits it cannot
// apply, naming the entry, before anything is called.
func TestRateLimitsRefusesBadInput(t *testing.T) {
	tests := []struct {
		name  string
		rates map[string]Rate
		want  string
	}{
		{name: "unknown kind", rates: map[string]Rate{"stores": {PerSecond: 1}}, want: `unknown kind of provider "stores"`},
		{name: "infinite rate", rates: map[string]Rate{KindStore: {PerSecond: math.Inf(1)}}, want: `RateLimits["store"] is +Inf calls per second`},
		{name: "NaN rate", rates: map[string]Rate{KindLogs: {PerSecond: math.NaN()}}, want: `RateLimits["logs"] is NaN calls per second`},
		{name: "huge burst", rates: map[string]Rate{KindScheduler: {PerSecond: 1, Burst: 1 << 30}}, want: `bursts of 1073741824`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Rack{Registry: nopRegistry{}, Scheduler: baseScheduler{}, Logs: nopLogs{}, Store: memStore{}},
				&Options{RateLimits: tc.rates})
			if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want ErrInvalid containing %q", err, tc.want)
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
