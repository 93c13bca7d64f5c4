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

	// Hooks intercept provider calls. They are the rack's first, innermost
	// hook layer; Rack.AddHooks adds more around them.
	Hooks Hooks

	// TaskLogs, when set, is the Logs provider the scheduler's tasks write
	// their output to (start lines, crashes, one-off task output) in place
	// of the rack's own Logs, as a real scheduler's tasks write to whatever
	// log backend the rack is configured with. Set it when a test plugs
	// another Logs provider into the rack, so that what the SDK reads back
	// (DeployError.LastLogLines, an app's logs) holds the tasks' output.
	// Entries are written with Time, App, Stream, Process, Release and
	// Message set and no ID, after the rack's lock is released and before
	// the scheduler call that produced them returns; a write error does not
	// fail that call and is kept for Rack.TaskLogErrors.
	TaskLogs providers.Logs

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

	mu     sync.Mutex
	layers []*hookLayer // first added first
	hooks  Hooks        // the composition of layers
	calls  []*Call

	// scripts, oldest first; each is removed by the function that added it
	faults        map[string][]*fault
	crash         []*matchScript
	failHealth    []*matchScript
	neverConverge []*matchScript
	exits         []*exitScript

	// task output bound for Options.TaskLogs
	taskLogs    providers.Logs
	outbox      []providers.LogEntry
	taskLogErrs []error

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
	balOrder   []*Balancer          // the default, then Options.Balancers in order
	logsView   *Logs
	store      *Store
	notifierVw *Notifier
}

type fault struct {
	err error
	n   int
}

// matchScript selects the apps or releases a scripted fault applies to.
type matchScript struct {
	match string
	// app matches the app name instead of the release ID or image digest.
	app bool
}

func (s *matchScript) matches(app, release, digest string) bool {
	if s.app {
		return s.match == app
	}
	return s.match == release || (digest != "" && s.match == digest)
}

type exitScript struct {
	match  string
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
		now:          o.Now,
		breaker:      o.CircuitBreaker,
		registryHost: o.RegistryHost,
		limits:       o.Limits.WithDefaults(),
		layers:       []*hookLayer{{h: o.Hooks}},
		hooks:        o.Hooks,
		faults:       map[string][]*fault{},
		taskLogs:     o.TaskLogs,
		repos:        map[string]*repo{},
		apps:         map[string]*app{},
		oneoffs:      map[string]*oneoffs{},
		logs:         map[string][]providers.LogEntry{},
		tails:        map[*tail]bool{},
		docs:         map[string]providers.Doc{},
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
	r.balOrder = []*Balancer{r.balancer}
	for _, name := range o.Balancers {
		if name == "" || r.balancers[name] != nil {
			panic(fmt.Sprintf("fake: Options.Balancers: balancer name %q is empty or given twice", name))
		}
		b := newBalancer(r, name)
		r.balancers[name] = b
		r.balOrder = append(r.balOrder, b)
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

// Balancers returns every balancer of the rack: the default one first,
// then those of Options.Balancers in their order.
func (r *Rack) Balancers() []*Balancer { return slices.Clone(r.balOrder) }

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
// "Scheduler.Status" or "Store.Put") return err without any effect, and
// returns a function that removes what is left of this script. Scripts for
// the same method queue up: after n failures the next script applies.
// n <= 0 removes the method's pending failures (and returns a function
// that does nothing). An unknown method name panics.
func (r *Rack) Fail(method string, err error, n int) (undo func()) {
	mustMethod(method)
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= 0 {
		delete(r.faults, method)
		return func() {}
	}
	f := &fault{err: err, n: n}
	r.faults[method] = append(r.faults[method], f)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		q := r.faults[method]
		if i := slices.Index(q, f); i >= 0 {
			q = slices.Delete(q, i, i+1)
		}
		if len(q) == 0 {
			delete(r.faults, method)
		} else {
			r.faults[method] = q
		}
	}
}

// Throttle makes the next n calls of method return an error matching
// providers.ErrThrottled, as a rate-limited backend does. It is Fail with
// a throttling error, and returns Fail's undo.
func (r *Rack) Throttle(method string, n int) (undo func()) {
	return r.Fail(method, fmt.Errorf("fake %s: rate exceeded: %w", method, providers.ErrThrottled), n)
}

// addScript appends s to *list and returns the function that removes it
// again (once; later calls do nothing).
func addScript[T any](r *Rack, list *[]*T, s *T) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, s)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if i := slices.Index(*list, s); i >= 0 {
			*list = slices.Delete(*list, i, i+1)
		}
	}
}

// anyMatch reports whether a script of list matches; r.mu is held.
func anyMatch(list []*matchScript, app, release, digest string) bool {
	return slices.ContainsFunc(list, func(s *matchScript) bool { return s.matches(app, release, digest) })
}

// CrashLoop makes the tasks of every release whose ID, or whose image
// digest, equals match crash on start: each writes "panic: boom" and stops
// with ExitCode 2 and Reason "exit status 2". One-off tasks of such a
// release crash too unless ExitCode scripts them. Tasks already running
// are not affected. The returned function ends the script: tasks started
// after it run (a crash-looping rollout still in progress starts its
// replacement tasks on the next observation, and they run).
func (r *Rack) CrashLoop(match string) (undo func()) {
	return addScript(r, &r.crash, &matchScript{match: match})
}

// FailHealth makes the balancer report the targets of the running tasks of
// every release whose ID, or whose image digest, equals match unhealthy
// ("Health checks failed"), at once, including targets already serving, so
// a rollout of the release stays in progress at the drain step and a bake
// watching its health sees it fail. The returned function ends the script:
// the targets are healthy again from the next observation on, and a
// rollout held at the drain step goes on.
func (r *Rack) FailHealth(match string) (undo func()) {
	return addScript(r, &r.failHealth, &matchScript{match: match})
}

// NeverConverge keeps every rollout of the app, staged ones included, at
// the start step: its tasks stay pending, as when a scheduler cannot place
// them. It stalls the SDK's own rollback of the app too; to stall one
// release and let a rollback to another converge, use
// NeverConvergeRelease. The returned function ends the script: the next
// observation of a stalled rollout goes on from the start step.
func (r *Rack) NeverConverge(app string) (undo func()) {
	return addScript(r, &r.neverConverge, &matchScript{match: app, app: true})
}

// NeverConvergeRelease keeps the rollouts of every release whose ID, or
// whose image digest, equals match at the start step, as NeverConverge
// does for a whole app. Rollouts of other releases of the same app are not
// affected, so a deploy of release R2 scripted this way fails and the
// SDK's rollback to R1 converges. The returned function ends the script.
func (r *Rack) NeverConvergeRelease(match string) (undo func()) {
	return addScript(r, &r.neverConverge, &matchScript{match: match})
}

// ExitCode scripts one-off tasks (TaskRunner.RunTask) whose token, or
// whose command joined by single spaces, equals match: each writes the
// output lines, one log entry per line, and stops with code. Unscripted
// one-off tasks write nothing and exit 0. When scripts for the same match
// overlap, the most recent applies. A task takes its script when RunTask
// starts it; the returned function removes the script for tasks started
// after it.
func (r *Rack) ExitCode(match string, code int, output ...string) (undo func()) {
	return addScript(r, &r.exits, &exitScript{match: match, code: code, output: slices.Clone(output)})
}

// exitScriptFor returns the newest exit script for match; r.mu is held.
func (r *Rack) exitScriptFor(match string) *exitScript {
	for i := len(r.exits) - 1; i >= 0; i-- {
		if r.exits[i].match == match {
			return r.exits[i]
		}
	}
	return nil
}

// TaskLogErrors returns the errors Options.TaskLogs returned for the
// tasks' output, oldest first.
func (r *Rack) TaskLogErrors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.taskLogErrs)
}

// TaskLogs returns the Logs provider the rack's tasks write to:
// Options.TaskLogs when set, else the rack's own Logs.
func (r *Rack) TaskLogs() providers.Logs {
	if r.taskLogs != nil {
		return r.taskLogs
	}
	return r.logsView
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
	if q[0].n--; q[0].n <= 0 {
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
	r.flushTaskLogs(ctx)
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

// flushTaskLogs writes the task output gathered for Options.TaskLogs,
// outside the rack's lock (the provider may call back into the rack) and
// not bound by the caller's cancellation: the output was produced whether
// or not the caller still waits for it.
func (r *Rack) flushTaskLogs(ctx context.Context) {
	if r.taskLogs == nil {
		return
	}
	r.mu.Lock()
	batch := r.outbox
	r.outbox = nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := r.taskLogs.Write(context.WithoutCancel(ctx), batch); err != nil {
		r.mu.Lock()
		r.taskLogErrs = append(r.taskLogErrs, err)
		r.mu.Unlock()
	}
}
