package fake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convox-go/convox/providers"
)

// Options configure a Rack. The zero value (or nil) is a working rack.
type Options struct {
	// Now is the rack's clock; nil means time.Now. Use Stepped for a
	// deterministic clock outside a testing/synctest bubble.
	Now func() time.Time

	// Hooks intercept provider calls; see also Rack.SetHooks.
	Hooks Hooks

	// CircuitBreaker, when positive, fails a rollout once that many of its
	// tasks have crashed, like the ECS deployment circuit breaker; zero
	// leaves a crash-looping rollout in progress forever.
	CircuitBreaker int

	// RegistryHost is the host of repository URIs; "" means
	// "registry.fake.test".
	RegistryHost string

	// BalancerName is the name of the default balancer (Rack.Balancer):
	// the Balancer field of the bindings it makes. "" means "fake".
	BalancerName string

	// Balancers names additional balancers of the rack (Rack.BalancerNamed),
	// for example "alb" beside a default "elb" while an app moves from one
	// to the other. Each has routes and target sets of its own; the rack's
	// Scheduler attaches tasks to the bindings of any of them. Names must be
	// unique, not empty and differ from BalancerName; New panics otherwise.
	Balancers []string

	// Limits are the scheduler's bounds (providers.Bounded); zero fields
	// take the defaults of providers.Limits.
	Limits providers.Limits
}

// Stepped returns a deterministic clock for Options.Now: its first call
// returns start and every call after returns step later than the one
// before. It is safe for concurrent use.
func Stepped(start time.Time, step time.Duration) func() time.Time {
	var n atomic.Int64
	return func() time.Time {
		return start.Add(time.Duration(n.Add(1)-1) * step)
	}
}

// Rack is one coherent in-memory rack. Its provider views (Registry,
// Scheduler, its Balancers, Logs, Store, Notifier) share its state. Create it
// with New.
type Rack struct {
	now          func() time.Time
	breaker      int
	registryHost string
	limits       providers.Limits

	mu    sync.Mutex
	hooks Hooks
	calls []*Call

	// scripts
	faults        map[string][]fault
	crash         map[string]bool
	failHealth    map[string]bool
	neverConverge map[string]bool
	exits         map[string]exitScript

	// provider state
	repos      map[string]*repo
	apps       map[string]*app
	oneoffs    map[string]*oneoffs
	taskSeq    int
	logs       map[string][]providers.LogEntry
	logSeq     int64
	tails      map[*tail]bool
	docs       map[string]providers.Doc
	docKeys    []string // the keys of docs, sorted
	docSeq     int64
	notes      []providers.Notification
	registry   *Registry
	scheduler  *Scheduler
	balancer   *Balancer            // the default balancer
	balancers  map[string]*Balancer // every balancer by name, the default included
	logsView   *Logs
	store      *Store
	notifierVw *Notifier
}

type fault struct {
	err error
	n   int
}

type exitScript struct {
	code   int
	output []string
}

// New returns an empty rack configured by opts (nil means defaults).
func New(opts *Options) *Rack {
	var o Options
	if opts != nil {
		o = *opts
	}
	r := &Rack{
		now:           o.Now,
		breaker:       o.CircuitBreaker,
		registryHost:  o.RegistryHost,
		limits:        o.Limits.WithDefaults(),
		hooks:         o.Hooks,
		faults:        map[string][]fault{},
		crash:         map[string]bool{},
		failHealth:    map[string]bool{},
		neverConverge: map[string]bool{},
		exits:         map[string]exitScript{},
		repos:         map[string]*repo{},
		apps:          map[string]*app{},
		oneoffs:       map[string]*oneoffs{},
		logs:          map[string][]providers.LogEntry{},
		tails:         map[*tail]bool{},
		docs:          map[string]providers.Doc{},
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.registryHost == "" {
		r.registryHost = "registry.fake.test"
	}
	r.registry = &Registry{r: r}
	r.scheduler = &Scheduler{r: r}
	r.balancer = newBalancer(r, cmp.Or(o.BalancerName, "fake"))
	r.balancers = map[string]*Balancer{r.balancer.name: r.balancer}
	for _, name := range o.Balancers {
		if name == "" || r.balancers[name] != nil {
			panic(fmt.Sprintf("fake: Options.Balancers: balancer name %q is empty or given twice", name))
		}
		r.balancers[name] = newBalancer(r, name)
	}
	r.logsView = &Logs{r: r}
	r.store = &Store{r: r}
	r.notifierVw = &Notifier{r: r}
	return r
}

// Registry returns the rack's registry.
func (r *Rack) Registry() *Registry { return r.registry }

// Scheduler returns the rack's scheduler.
func (r *Rack) Scheduler() *Scheduler { return r.scheduler }

// Balancer returns the rack's default balancer, named
// Options.BalancerName.
func (r *Rack) Balancer() *Balancer { return r.balancer }

// BalancerNamed returns the rack's balancer with the name: the default one
// for Options.BalancerName, else one of Options.Balancers. An unknown name
// panics, as a mistake in a test's setup.
func (r *Rack) BalancerNamed(name string) *Balancer {
	b := r.balancers[name]
	if b == nil {
		panic(fmt.Sprintf("fake: the rack has no balancer named %q; name it in Options.Balancers", name))
	}
	return b
}

// Logs returns the rack's log store.
func (r *Rack) Logs() *Logs { return r.logsView }

// Store returns the rack's document store.
func (r *Rack) Store() *Store { return r.store }

// Notifier returns the rack's notifier, which records what it is sent
// (see Rack.Notifications).
func (r *Rack) Notifier() *Notifier { return r.notifierVw }

// Rack returns the rack the registry belongs to.
func (g *Registry) Rack() *Rack { return g.r }

// Rack returns the rack the scheduler belongs to.
func (s *Scheduler) Rack() *Rack { return s.r }

// Rack returns the rack the balancer belongs to.
func (b *Balancer) Rack() *Rack { return b.r }

// Rack returns the rack the log store belongs to.
func (l *Logs) Rack() *Rack { return l.r }

// Rack returns the rack the store belongs to.
func (s *Store) Rack() *Rack { return s.r }

// Rack returns the rack the notifier belongs to.
func (n *Notifier) Rack() *Rack { return n.r }

// SetHooks replaces the rack's hooks; calls already running keep the hooks
// they started with.
func (r *Rack) SetHooks(h Hooks) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = h
}

func (r *Rack) currentHooks() Hooks {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hooks
}

// Calls returns every provider call made so far, in the order the calls
// started, each with the error it returned (nil while still running).
func (r *Rack) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Call, len(r.calls))
	for i, c := range r.calls {
		out[i] = *c
		out[i].Args = slices.Clone(c.Args)
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (r *Rack) ResetCalls() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

// Notifications returns what the rack's Notifier delivered, in order.
func (r *Rack) Notifications() []providers.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.notes)
}

// Fail makes the next n calls of method ("Provider.Method", e.g.
// "Scheduler.Status" or "Store.Put") return err without any effect.
// Scripts for the same method queue up: after n failures the next script
// applies. n <= 0 removes the method's pending failures. An unknown method
// name panics.
func (r *Rack) Fail(method string, err error, n int) {
	mustMethod(method)
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= 0 {
		delete(r.faults, method)
		return
	}
	r.faults[method] = append(r.faults[method], fault{err: err, n: n})
}

// Throttle makes the next n calls of method return an error matching
// providers.ErrThrottled, as a rate-limited backend does. It is Fail with
// a throttling error.
func (r *Rack) Throttle(method string, n int) {
	r.Fail(method, fmt.Errorf("fake %s: rate exceeded: %w", method, providers.ErrThrottled), n)
}

// CrashLoop makes the tasks of every release whose ID, or whose image
// digest, equals match crash on start: each writes "panic: boom" and stops
// with ExitCode 2 and Reason "exit status 2". One-off tasks of such a
// release crash too unless ExitCode scripts them. Tasks already running
// are not affected.
func (r *Rack) CrashLoop(match string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.crash[match] = true
}

// FailHealth makes the balancer report the targets of the release's
// running tasks unhealthy ("Health checks failed"), at once, including
// targets already serving, so a rollout of the release stays in progress
// at the drain step and a bake watching its health sees it fail.
func (r *Rack) FailHealth(release string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failHealth[release] = true
}

// NeverConverge keeps the app's rollouts at the start step: their tasks
// stay pending, as when a scheduler cannot place them.
func (r *Rack) NeverConverge(app string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.neverConverge[app] = true
}

// ExitCode scripts one-off tasks (TaskRunner.RunTask) whose token, or
// whose command joined by single spaces, equals match: each writes the
// output lines, one log entry per line, and stops with code. Unscripted
// one-off tasks write nothing and exit 0.
func (r *Rack) ExitCode(match string, code int, output ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exits[match] = exitScript{code: code, output: slices.Clone(output)}
}

// methods lists every "Provider.Method" a rack records and Fail accepts.
var methods = map[string]bool{
	"Registry.EnsureRepository": true, "Registry.Resolve": true, "Registry.Credentials": true,
	"Registry.ListImages": true, "Registry.DeleteImage": true,
	"Scheduler.Apply": true, "Scheduler.Status": true, "Scheduler.Delete": true,
	"Scheduler.StatusMany": true, "Scheduler.CancelRollout": true,
	"Scheduler.RunTask": true, "Scheduler.GetTask": true, "Scheduler.StopTask": true,
	"Scheduler.Stage": true, "Scheduler.PromoteStage": true, "Scheduler.DiscardStage": true,
	"Balancer.EnsureRoute": true, "Balancer.Health": true, "Balancer.DeleteRoute": true,
	"Balancer.EnsureTargetSet": true, "Balancer.SetWeights": true, "Balancer.Weights": true,
	"Balancer.DeleteTargetSet": true,
	"Logs.Write":               true, "Logs.Read": true, "Logs.Delete": true, "Logs.Tail": true,
	"Store.Get": true, "Store.Put": true, "Store.Delete": true, "Store.List": true,
	"Notifier.Notify": true,
}

func mustMethod(method string) {
	if !methods[method] {
		known := make([]string, 0, len(methods))
		for m := range methods {
			known = append(known, m)
		}
		slices.Sort(known)
		panic(fmt.Sprintf("fake: unknown method %q; use one of %s", method, strings.Join(known, ", ")))
	}
}

// enter is the first step of every method's implementation, inside the
// hooks: it honors a canceled context and consumes a scripted failure.
func (r *Rack) enter(ctx context.Context, method string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.faults[method]
	if len(q) == 0 {
		return nil
	}
	err := q[0].err
	if q[0].n--; q[0].n == 0 {
		q = q[1:]
	}
	if len(q) == 0 {
		delete(r.faults, method)
	} else {
		r.faults[method] = q
	}
	return err
}

func (r *Rack) record(c Call) *Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &c
	r.calls = append(r.calls, p)
	return p
}

// do runs one provider call: it records c, then runs the Call hook (if
// any) around run, which holds the typed hook and the implementation.
func do[R any](r *Rack, ctx context.Context, c Call, run func(context.Context) (R, error)) (R, error) {
	rec := r.record(c)
	h := r.currentHooks().Call
	var res R
	var err error
	if h != nil {
		err = h(ctx, c, func(ctx context.Context) error {
			var e error
			res, e = run(ctx)
			return e
		})
	} else {
		res, err = run(ctx)
	}
	r.mu.Lock()
	rec.Err = err
	r.mu.Unlock()
	if err != nil {
		var zero R
		return zero, err
	}
	return res, nil
}

// do0 is do for methods that return only an error.
func do0(r *Rack, ctx context.Context, c Call, run func(context.Context) error) error {
	_, err := do(r, ctx, c, func(ctx context.Context) (struct{}, error) { return struct{}{}, run(ctx) })
	return err
}
