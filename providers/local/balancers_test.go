package local

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/providertest"
)

// openMigrationRack opens a rack in dir (a new temporary directory when
// empty) with the additional balancer "alb", and closes it when the test
// ends.
func openMigrationRack(t *testing.T, dir string, opts *Options) *Rack {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if opts == nil {
		opts = testOptions()
		opts.Balancers = []string{"alb"}
	}
	r, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func namedBalancer(t *testing.T, r *Rack, name string) *Balancer {
	t.Helper()
	b, err := r.BalancerNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ensureRoute ensures the web route of app on balancer b.
func ensureRoute(t *testing.T, b *Balancer, app string) providers.Route {
	t.Helper()
	route, err := b.EnsureRoute(t.Context(), providers.RouteSpec{App: app, Process: "web", Port: 8080, Health: fastHealth, DeregistrationDelay: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return route
}

func TestConformanceOfAnAdditionalBalancer(t *testing.T) {
	r := openMigrationRack(t, "", nil)
	alb := namedBalancer(t, r, "alb")
	t.Run("Balancer", func(t *testing.T) {
		providertest.TestBalancer(t, providertest.BalancerHarness{New: func(t *testing.T) providers.Balancer { return alb }})
	})
	t.Run("Scheduler", func(t *testing.T) {
		img := pushTestImage(t, r, "conformance", "v1")
		crash := pushCrashImage(t, r, "conformance", "crash")
		providertest.TestScheduler(t, providertest.SchedulerHarness{
			New: func(t *testing.T) providertest.SchedulerSetup {
				return providertest.SchedulerSetup{
					Scheduler: r.Scheduler(),
					Image:     img,
					Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080, Health: fastHealth}, {Name: "worker", Count: 1}},
					Crash:     &crash,
					Balancer:  alb,
					Logs:      r.Logs(),
				}
			},
			Poll: 20 * time.Millisecond,
		})
	})
}

// boundedLoad sends GETs to one URL from a few workers, each at most a
// bounded number of times, until it is finished.
type boundedLoad struct {
	stop     chan struct{}
	results  chan map[string]int
	workers  int
	answered atomic.Int64 // requests answered so far
	exited   atomic.Int64 // workers that reached their bound
}

func startBoundedLoad(url string) *boundedLoad {
	l := &boundedLoad{stop: make(chan struct{}), results: make(chan map[string]int), workers: 3}
	for range l.workers {
		go func() {
			seen := map[string]int{}
			defer func() { l.results <- seen }()
			defer l.exited.Add(1)
			for range 3000 {
				select {
				case <-l.stop:
					return
				default:
				}
				seen[get(url+"/sleep?d=2ms")]++
				l.answered.Add(1)
			}
		}()
	}
	return l
}

// await returns once n more requests have been answered, or every worker
// has reached its bound.
func (l *boundedLoad) await(n int64) {
	want := l.answered.Load() + n
	for l.answered.Load() < want && l.exited.Load() < int64(l.workers) {
		time.Sleep(time.Millisecond)
	}
}

// finish stops the load and returns how many requests got each answer.
func (l *boundedLoad) finish() map[string]int {
	close(l.stop)
	total := map[string]int{}
	for range l.workers {
		for body, n := range <-l.results {
			total[body] += n
		}
	}
	return total
}

// targetsOf returns "target state" for each target of the route.
func targetsOf(t *testing.T, b *Balancer, routeID string) []string {
	t.Helper()
	hs, err := b.Health(t.Context(), routeID)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, h := range hs {
		out = append(out, h.Target+" "+string(h.State))
	}
	return out
}

// serving returns the running tasks' IDs and "address healthy" for each
// of their targets.
func serving(st providers.AppStatus) (ids, healthy []string) {
	ids, healthy = []string{}, []string{}
	for _, task := range st.Tasks {
		if task.State == providers.TaskRunning {
			ids = append(ids, task.ID)
			healthy = append(healthy, task.Address+" healthy")
		}
	}
	slices.Sort(healthy) // Health orders targets by address
	return ids, healthy
}

// TestOneProcessServedByTwoBalancers moves the web process of one app
// from a route of the default balancer to a route of "alb" as a balancer
// migration does: the same release is applied with the bindings [local],
// then [local alb], then [alb]. Clients of the old endpoint run from the
// start until both balancers serve; clients of the new endpoint from then
// until the end. No request fails.
func TestOneProcessServedByTwoBalancers(t *testing.T) {
	r := openMigrationRack(t, "", nil)
	alb := namedBalancer(t, r, "alb")
	img := pushTestImage(t, r, "web", "v1")
	oldRoute, newRoute := ensureRoute(t, r.Balancer(), "web"), ensureRoute(t, alb, "web")
	release := func(token string, bindings ...providers.Binding) providers.Desired {
		d := webDesired("web", "R1", img, oldRoute, 2, map[string]string{"MESSAGE": "v1"})
		d.Token, d.Bindings = token, map[string][]providers.Binding{"web": bindings}
		return d
	}
	check := func(name string, want, got any) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}

	ro, st := apply(t, r.Scheduler(), release("old", oldRoute.Binding))
	check("[local]: rollout", providers.RolloutCompleted, ro.State)
	ids, healthy := serving(st)
	check("[local]: running tasks", 2, len(ids))

	oldLoad := startBoundedLoad(oldRoute.Endpoint)
	oldLoad.await(100)
	ro, st = apply(t, r.Scheduler(), release("both", oldRoute.Binding, newRoute.Binding))
	check("[local alb]: rollout", providers.RolloutCompleted, ro.State)
	bothIDs, _ := serving(st)
	check("[local alb]: the tasks are attached in place, not restarted", ids, bothIDs)
	check("[local alb]: targets of the local route", healthy, targetsOf(t, r.Balancer(), oldRoute.ID))
	check("[local alb]: targets of the alb route", healthy, targetsOf(t, alb, newRoute.ID))

	oldLoad.await(100)
	newLoad := startBoundedLoad(newRoute.Endpoint)
	newLoad.await(100)
	oldAnswers := oldLoad.finish() // the clients have moved to the new endpoint

	ro, st = apply(t, r.Scheduler(), release("new", newRoute.Binding))
	check("[alb]: rollout", providers.RolloutCompleted, ro.State)
	newIDs, _ := serving(st)
	check("[alb]: the tasks are detached in place, not restarted", ids, newIDs)
	check("[alb]: targets of the local route, drained", []string{}, targetsOf(t, r.Balancer(), oldRoute.ID))
	check("[alb]: targets of the alb route", healthy, targetsOf(t, alb, newRoute.ID))
	newLoad.await(100)
	newAnswers := newLoad.finish()

	t.Logf("answers of the old endpoint %v, of the new one %v", oldAnswers, newAnswers)
	for name, answers := range map[string]map[string]int{"old endpoint": oldAnswers, "new endpoint": newAnswers} {
		if answers["v1"] == 0 {
			t.Errorf("%s: no request was answered: %v", name, answers)
		}
		for body, n := range answers {
			if body != "v1" {
				t.Errorf("%s: %d requests answered %q", name, n, body)
			}
		}
	}
}

func TestRackReopenServesEveryBalancer(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(dir, &Options{StopGrace: 5 * time.Second, Balancers: []string{"alb", "spare"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	r := first
	alb := namedBalancer(t, r, "alb")
	img := pushTestImage(t, r, "web", "v1")
	oldRoute, newRoute := ensureRoute(t, r.Balancer(), "web"), ensureRoute(t, alb, "web")
	d := webDesired("web", "R1", img, oldRoute, 1, map[string]string{"MESSAGE": "v1"})
	d.Bindings["web"] = append(d.Bindings["web"], newRoute.Binding)
	apply(t, r.Scheduler(), d)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened without naming "alb", the rack serves it again because it
	// has routes; "spare" had none and is forgotten.
	r = openTestRack(t, dir)
	waitRecovered(t, r.Scheduler(), "web")
	alb = namedBalancer(t, r, "alb")
	again, err := alb.EnsureRoute(t.Context(), providers.RouteSpec{App: "web", Process: "web", Port: 8080, Health: fastHealth, DeregistrationDelay: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, spareErr := r.BalancerNamed("spare")
	got := map[string]any{
		"balancers":          r.BalancerNames(),
		"alb endpoint":       again.Endpoint,
		"GET local endpoint": get(oldRoute.Endpoint),
		"GET alb endpoint":   get(newRoute.Endpoint),
		"spare is not found": errors.Is(spareErr, providers.ErrNotFound),
	}
	want := map[string]any{
		"balancers":          []string{BalancerName, "alb"},
		"alb endpoint":       newRoute.Endpoint,
		"GET local endpoint": "v1",
		"GET alb endpoint":   "v1",
		"spare is not found": true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after reopening (-want +got):\n%s", diff)
	}
}

func TestRackBalancerOptions(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		opts      Options
		wantErr   error
		wantNames []string
		// wantEndpoint, when set, is the endpoint of the web route of app
		// "web" on the balancer named endpointOf.
		endpointOf   string
		wantEndpoint string
	}{
		{name: "no additional balancer leaves the default one", wantNames: []string{"local"}},
		{name: "additional balancers follow the default one in lexical order", opts: Options{Balancers: []string{"elb", "alb"}}, wantNames: []string{"local", "alb", "elb"}},
		{name: "a repeated name is invalid", opts: Options{Balancers: []string{"alb", "alb"}}, wantErr: providers.ErrInvalid},
		{name: "the default balancer's name is invalid", opts: Options{Balancers: []string{BalancerName}}, wantErr: providers.ErrInvalid},
		{name: "a name that is not a resource name is invalid", opts: Options{Balancers: []string{"../alb"}}, wantErr: providers.ErrInvalid},
		{name: "a route port of an unknown balancer is invalid", opts: Options{RoutePorts: map[string]int{"alb/web/web": port}}, wantErr: providers.ErrInvalid},
		{name: "a malformed route port key is invalid", opts: Options{RoutePorts: map[string]int{"web": port}}, wantErr: providers.ErrInvalid},
		{
			name:       "a route port keyed by balancer fixes that balancer's route",
			opts:       Options{Balancers: []string{"alb"}, RoutePorts: map[string]int{"alb/web/web": port}},
			wantNames:  []string{"local", "alb"},
			endpointOf: "alb", wantEndpoint: fmt.Sprintf("http://127.0.0.1:%d", port),
		},
		{
			name:       "an app/process route port stays the default balancer's",
			opts:       Options{Balancers: []string{"alb"}, RoutePorts: map[string]int{"web/web": port}},
			wantNames:  []string{"local", "alb"},
			endpointOf: "local", wantEndpoint: fmt.Sprintf("http://127.0.0.1:%d", port),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(t.TempDir(), &tt.opts)
			if err == nil {
				defer r.Close()
			}
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.wantNames, r.BalancerNames()); diff != "" {
				t.Errorf("BalancerNames (-want +got):\n%s", diff)
			}
			if tt.endpointOf == "" {
				return
			}
			route := ensureRoute(t, namedBalancer(t, r, tt.endpointOf), "web")
			if diff := cmp.Diff(tt.wantEndpoint, route.Endpoint); diff != "" {
				t.Errorf("endpoint (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSchedulerBindingsOfTheRacksBalancers(t *testing.T) {
	r := openMigrationRack(t, "", nil)
	img := pushTestImage(t, r, "web", "v1")
	alb := namedBalancer(t, r, "alb")
	route := ensureRoute(t, alb, "web")
	tests := []struct {
		name    string
		binding providers.Binding
		wantErr error
	}{
		{"a binding of a balancer the rack lacks is invalid", providers.Binding{Balancer: "nlb", Kind: providers.BindingLocal, Target: route.Binding.Target}, providers.ErrInvalid},
		{"a target set exists on its own balancer only", providers.Binding{Balancer: BalancerName, Kind: providers.BindingLocal, Target: route.Binding.Target}, providers.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := webDesired("web", "R1", img, route, 1, nil)
			d.Bindings["web"] = []providers.Binding{tt.binding}
			_, err := r.Scheduler().Apply(context.Background(), d)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Apply error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.binding.Balancer) {
				t.Errorf("Apply error %q does not name balancer %q", err, tt.binding.Balancer)
			}
		})
	}
}
