package convox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/convox-go/convox/internal/holder"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// DeployOptions tune one deploy. Nil or zero fields take defaults.
type DeployOptions struct {
	// Timeout bounds routes, apply and the wait (Options.Timeout when zero).
	Timeout time.Duration
	// FailFast aborts a deploy as soon as the evidence is clear.
	FailFast FailFastPolicy
	// Strategy is how the release replaces the serving one (Rolling when zero).
	Strategy Strategy
}

// FailFastPolicy says when a deploy stops waiting and compensates before
// its timeout, as soon as the evidence is clear. The zero value is the
// default policy.
type FailFastPolicy struct {
	// MaxStopped aborts the deploy once this many of the new release's
	// tasks have stopped (a crash loop). Zero means 3; negative disables.
	MaxStopped int
	// AllowEarlyExits disables aborting at the first task of the new
	// release that exits with a non-zero code within its process's health
	// grace window (providers.HealthCheck.Grace, or DefaultGrace when unset).
	AllowEarlyExits bool
	// MaxUnhealthy aborts the deploy once targets of the new release have
	// been reported unhealthy in this many consecutive observations (the
	// balancer's own threshold already applies to each report). Zero
	// means 3; negative disables.
	MaxUnhealthy int
}

// DefaultGrace is the health grace window of a process that sets none,
// for FailFastPolicy's early exits.
const DefaultGrace = 30 * time.Second

func (o *DeployOptions) withDefaults(c *Client) DeployOptions {
	var r DeployOptions
	if o != nil {
		r = *o
	}
	if r.Timeout <= 0 {
		r.Timeout = c.opts.Timeout
	}
	if r.FailFast.MaxStopped == 0 {
		r.FailFast.MaxStopped = 3
	}
	if r.FailFast.MaxUnhealthy == 0 {
		r.FailFast.MaxUnhealthy = 3
	}
	return r
}

// Deployment is an in-flight promotion. It runs in the background, bounded
// by its timeout, whether or not anybody waits for it. If the program
// exits first, the app's deploy lease expires after Options.LeaseTTL, or
// at once for a client on the same host, which can prove the program gone
// (its process id, start time and boot are in the lease); then Cancel
// (from any client) restores the previous release, and so does a new
// Promote before it takes the lease over.
type Deployment struct {
	// App and Release identify the promotion; Previous is the release
	// that was active when it started ("" for a first deploy).
	App      string
	Release  string
	Previous string

	c       *Client
	a       *AppClient
	opts    DeployOptions
	token   string
	summary string // the plan's one-line summary, for notifications
	start   time.Time
	cancel  context.CancelCauseFunc
	done    chan struct{}
	err     error

	// Weighted deploys: staged is set once the new release is staged,
	// switched once the scheduler was asked to make it the serving one.
	staged    *weightedPlan
	wasStaged bool // staged by a deployer whose lease this one took over
	switched  bool

	mu         sync.Mutex
	step       Step // the step in progress
	lastStatus *providers.AppStatus
	known      map[string]bool // IDs of the release's tasks at the first observation
}

// Done is closed when the deployment has finished.
func (d *Deployment) Done() <-chan struct{} { return d.done }

// Wait waits for the deployment to finish. It returns nil only when the
// promoted release is the active one and healthy; otherwise a *DeployError.
// If ctx ends first, Wait returns a *DeployError with InProgress set that
// matches ctx's error, and the deployment goes on.
func (d *Deployment) Wait(ctx context.Context) error {
	select {
	case <-d.done:
		return d.err
	case <-ctx.Done():
		return &DeployError{App: d.App, Release: d.Release, Previous: d.Previous, Step: d.currentStep(), Changed: true, InProgress: true,
			Reason: ctx.Err().Error(), Err: ctx.Err()}
	}
}

// currentStep returns the step the deployment is at.
func (d *Deployment) currentStep() Step {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.step == "" {
		return StepLease
	}
	return d.step
}

// stepEvent records that the deployment entered step and reports it.
func (d *Deployment) stepEvent(step Step, msg string) {
	d.mu.Lock()
	d.step = step
	d.mu.Unlock()
	d.c.emit(Event{Type: EventStep, App: d.App, Release: d.Release, Step: step, Message: msg})
}

// Cancel aborts the deployment, restores the previous release and waits
// until that is done. It returns nil when the previous release is serving
// again (or the deployment had already finished), otherwise the
// deployment's error.
func (d *Deployment) Cancel(ctx context.Context) error {
	d.cancel(errCanceled)
	select {
	case <-d.done:
	case <-ctx.Done():
		return wrapErr("Cancel", d.App, d.Release, ctx.Err())
	}
	var de *DeployError
	if d.err != nil && errors.As(d.err, &de) && !de.RolledBack && de.Canceled {
		return d.err
	}
	return nil
}

var errTimedOut = errors.New("deploy timed out")

// errLeaseLost: another deployer took the app's lease over (after it
// expired); it matches providers.ErrConflict.
var errLeaseLost = fmt.Errorf("the deploy lease was taken over by another deployer: %w", providers.ErrConflict)

// Promote starts promoting a release: it takes the app's deploy lease (a
// concurrent deployer gets a *DeployError at StepLease matching
// providers.ErrConflict) and returns a Deployment that ensures routes,
// applies the release to the scheduler and waits for it in the
// background, detached from ctx. Bad input fails here with a *DeployError
// that changed nothing.
// A deploy left in flight by a deployer that is gone (its lease expired,
// or its process provably ended on this host) is compensated first, before
// Promote returns: what it replaced serves again, then this one starts.
func (a *AppClient) Promote(ctx context.Context, id string, opts *DeployOptions) (*Deployment, error) {
	o := opts.withDefaults(a.c)
	app, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, deployErr(a.name, id, StepPrepare, err)
	}
	rel, err := a.c.loadRelease(ctx, a.name, id)
	if err != nil {
		return nil, deployErr(a.name, id, StepPrepare, err)
	}
	id = releaseID(rel.Seq)
	sel, err := a.c.rack.selectFor(app.Spec)
	if err != nil {
		return nil, deployErr(a.name, id, StepPrepare, err)
	}
	if err := o.Strategy.validate(rel, sel); err != nil {
		return nil, deployErr(a.name, id, StepPrepare, err)
	}
	if err := rel.validate(sel.limits()); err != nil {
		return nil, deployErr(a.name, id, StepPrepare, err)
	}
	if o.Strategy.weighted() && app.Migration != nil {
		return nil, deployErr(a.name, id, StepPrepare, fmt.Errorf("%w: a %s deploy cannot run while the app migrates to balancer %q; finish or abort the migration first", providers.ErrConflict, o.Strategy, app.Migration.To))
	}
	if l := app.Lease; l != nil && l.expired(time.Now()) {
		// The deploy in flight was abandoned (its deployer crashed or lost
		// the store): restore what it replaced before starting this one.
		if err := a.takeOverAndCompensate(ctx, l.Token); err != nil && !errors.Is(err, providers.ErrConflict) {
			return nil, &DeployError{App: a.name, Release: id, Previous: app.Active, Step: StepLease, Changed: true,
				Reason: fmt.Sprintf("compensating the abandoned deploy of %s failed: %v", l.Release, err), Err: err}
		}
	}
	token := newToken()
	now := time.Now()
	self := holder.Self()
	var takenOver string
	app, err = a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		if d.Deleting {
			return fmt.Errorf("%w: app %q is being deleted", providers.ErrConflict, a.name)
		}
		takenOver = ""
		if l := d.Lease; l != nil && l.Token != token { // our own token: a retried write that had succeeded
			if !l.expired(now) {
				return fmt.Errorf("%w: a deploy of %s by %s is in progress since %s", providers.ErrConflict, l.Release, l.Holder, l.Started.Format(time.RFC3339))
			}
			takenOver = l.Holder
		}
		d.Lease = &leaseDoc{Token: token, Holder: a.c.opts.Holder, Process: &self, Release: id, Previous: d.Active, Started: now, Expires: now.Add(a.c.opts.LeaseTTL)}
		return nil
	})
	if err != nil {
		return nil, deployErr(a.name, id, StepLease, err)
	}
	dep := a.newDeployment(id, app.Lease, o)
	msg := fmt.Sprintf("promoting %s", id)
	if dep.Previous != "" {
		msg += fmt.Sprintf(" (active: %s)", dep.Previous)
	}
	if takenOver != "" {
		msg += fmt.Sprintf("; took over an expired lease of %s", takenOver)
	}
	a.c.emit(Event{Type: EventDeployStarted, App: a.name, Release: id, Step: StepLease, Message: msg})
	a.c.platformLog(ctx, a.name, id, msg)
	dep.summary = a.summary(ctx, dep.Previous, rel)
	a.c.notify(ctx, providers.Notification{Kind: providers.NotifyDeployStarted, App: a.name, Release: id, Previous: dep.Previous, Summary: dep.summary})

	base, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	dep.cancel = cancel
	go func() {
		// Untracked before done closes: once Wait returns, AppClient.Cancel
		// no longer finds the finished deployment in flight.
		defer close(dep.done)
		defer a.c.untrack(dep)
		defer cancel(nil)
		runCtx, stop := context.WithTimeoutCause(base, o.Timeout, errTimedOut)
		defer stop()
		dep.err = dep.run(runCtx)
	}()
	return dep, nil
}

// summary describes what promoting rel changes, for notifications.
func (a *AppClient) summary(ctx context.Context, previous string, rel *releaseDoc) string {
	var from *releaseDoc
	if previous != "" {
		var err error
		if from, err = a.c.loadRelease(ctx, a.name, previous); err != nil {
			return rel.Description
		}
	}
	s := diff(a.name, from, rel, releaseID(rel.Seq)).String()
	if rel.Description != "" {
		s = rel.Description + ": " + s
	}
	return s
}

func (a *AppClient) newDeployment(id string, l *leaseDoc, o DeployOptions) *Deployment {
	dep := &Deployment{
		App: a.name, Release: id, Previous: l.Previous,
		c: a.c, a: a, opts: o, token: l.Token, start: time.Now(), done: make(chan struct{}),
	}
	a.c.mu.Lock()
	a.c.inflight[a.name] = dep
	a.c.mu.Unlock()
	return dep
}

func (c *Client) untrack(d *Deployment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight[d.App] == d {
		delete(c.inflight, d.App)
	}
}

// stepError is a failure inside the deploy workflow.
type stepError struct {
	step   Step
	reason string
	err    error
}

func (e *stepError) Error() string { return e.reason }
func (e *stepError) Unwrap() error { return e.err }

func failStep(step Step, err error, format string, args ...any) *stepError {
	return &stepError{step: step, reason: fmt.Sprintf(format, args...), err: err}
}

// run drives the promotion to the end: success, or failure and compensation.
func (d *Deployment) run(ctx context.Context) error {
	serr := d.promote(ctx)
	if serr == nil {
		return d.succeed(ctx)
	}
	return d.fail(ctx, serr)
}

func (d *Deployment) promote(ctx context.Context) *stepError {
	rel, err := d.c.loadRelease(ctx, d.App, d.Release)
	if err != nil {
		return d.ctxOr(ctx, failStep(StepApply, err, "load release: %v", err))
	}
	d.stepEvent(StepRoutes, "ensuring routes")
	bindings, serr := d.ensureRoutes(ctx, rel)
	if serr != nil {
		return serr
	}
	sel, err := d.selection(ctx)
	if err != nil {
		return failStep(StepApply, err, "%v", err)
	}
	if d.opts.Strategy.weighted() {
		return d.promoteWeighted(ctx, rel, sel)
	}
	d.stepEvent(StepApply, fmt.Sprintf("applying %s to scheduler %s", d.Release, sel.spec.Scheduler))
	desired := rel.desired(d.token, bindings)
	if err := d.retry(ctx, StepApply, func(ctx context.Context) error {
		_, err := sel.scheduler.Apply(ctx, desired)
		return err
	}); err != nil {
		return d.ctxOr(ctx, failStep(StepApply, err, "apply: %v", err))
	}
	return d.wait(ctx, rel, sel)
}

// ctxOr turns a failure caused by the deploy's context ending into a
// cancellation or timeout failure.
func (d *Deployment) ctxOr(ctx context.Context, serr *stepError) *stepError {
	if ctx.Err() == nil {
		return serr
	}
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errCanceled):
		return &stepError{step: serr.step, reason: "canceled", err: errCanceled}
	case errors.Is(cause, errTimedOut):
		reason := fmt.Sprintf("timed out after %s", d.opts.Timeout)
		err := fmt.Errorf("%w: %w", errTimedOut, context.DeadlineExceeded)
		// A provider error that was being retried when time ran out is
		// why the deploy timed out: keep it in the reason and the chain.
		if serr.err != nil && !errors.Is(serr.err, context.DeadlineExceeded) && !errors.Is(serr.err, context.Canceled) {
			reason += "; last error: " + serr.reason
			err = fmt.Errorf("%w: %w: %w", errTimedOut, context.DeadlineExceeded, serr.err)
		}
		return &stepError{step: serr.step, reason: reason, err: err}
	}
	return serr
}

func (d *Deployment) selection(ctx context.Context) (selection, error) {
	app, err := d.c.loadApp(ctx, d.App)
	if err != nil {
		return selection{}, err
	}
	return d.c.rack.selectFor(app.Spec)
}

// ensureRoutes ensures a route for every process of rel with a port, on
// the app's balancer and, while a balancer migration runs, on the target
// balancer too; it records them in the app document and returns the
// bindings of the target sets serving traffic (one per balancer).
func (d *Deployment) ensureRoutes(ctx context.Context, rel *releaseDoc) (map[string][]providers.Binding, *stepError) {
	app, err := d.c.loadApp(ctx, d.App)
	if err != nil {
		return nil, d.ctxOr(ctx, failStep(StepRoutes, err, "%v", err))
	}
	sel, err := d.c.rack.selectFor(app.Spec)
	if err != nil {
		return nil, failStep(StepRoutes, err, "%v", err)
	}
	routes, serr := d.ensureRoutesOn(ctx, rel, sel, sel.spec.Balancer, sel.balancer)
	if serr != nil {
		return nil, serr
	}
	var next map[string]routeDoc
	if m := app.Migration; m != nil {
		b := sel.balancers[m.To]
		if b == nil {
			return nil, failStep(StepRoutes, providers.ErrInvalid, "the app is migrating to balancer %q, which the rack no longer has", m.To)
		}
		if next, serr = d.ensureRoutesOn(ctx, rel, sel, m.To, b); serr != nil {
			return nil, serr
		}
	}
	merge := func(into map[string]routeDoc, from map[string]routeDoc) map[string]routeDoc {
		if into == nil {
			into = map[string]routeDoc{}
		}
		for p, r := range from {
			if old, ok := into[p]; ok && old.ID == r.ID {
				r.Live, r.LiveBinding = old.Live, old.LiveBinding
			}
			into[p] = r
		}
		return into
	}
	app, err = d.c.updateApp(ctx, d.App, func(a *appDoc) error {
		a.Routes = merge(a.Routes, routes)
		if a.Migration != nil && next != nil {
			a.Migration.Routes = merge(a.Migration.Routes, next)
		}
		return nil
	})
	if err != nil {
		return nil, d.ctxOr(ctx, failStep(StepRoutes, err, "record routes: %v", err))
	}
	bindings := map[string][]providers.Binding{}
	for p := range routes {
		bindings[p] = []providers.Binding{app.Routes[p].live()}
		if app.Migration != nil {
			if r, ok := app.Migration.Routes[p]; ok {
				bindings[p] = append(bindings[p], r.live())
			}
		}
	}
	return bindings, nil
}

// ensureRoutesOn ensures the routes of rel's processes on one balancer.
func (d *Deployment) ensureRoutesOn(ctx context.Context, rel *releaseDoc, sel selection, name string, bal providers.Balancer) (map[string]routeDoc, *stepError) {
	routes := map[string]routeDoc{}
	for _, p := range rel.Processes {
		if p.Port == 0 {
			continue
		}
		if bal == nil {
			return nil, failStep(StepRoutes, providers.ErrInvalid, "process %s has a port but the rack has no balancer", p.Name)
		}
		spec := providers.RouteSpec{
			App: d.App, Process: p.Name, Port: p.Port, Protocol: p.Route.Protocol,
			Host: p.Route.Host, Path: p.Route.Path, Certificate: p.Route.Certificate,
			Health: p.Health, DeregistrationDelay: p.Route.DeregistrationDelay,
		}
		var route providers.Route
		if err := d.retry(ctx, StepRoutes, func(ctx context.Context) error {
			var err error
			route, err = bal.EnsureRoute(ctx, spec)
			return err
		}); err != nil {
			return nil, d.ctxOr(ctx, failStep(StepRoutes, err, "ensure route of %s on balancer %s: %v", p.Name, name, err))
		}
		if route.Binding.Balancer == "" {
			route.Binding.Balancer = name
		}
		if acc, ok := sel.scheduler.(providers.BindingAcceptor); ok && !acc.AcceptsBinding(route.Binding.Kind) {
			return nil, failStep(StepRoutes, providers.ErrInvalid, "scheduler %s cannot attach process %s to a %s binding of balancer %s",
				sel.spec.Scheduler, p.Name, route.Binding.Kind, name)
		}
		routes[p.Name] = routeDoc{Balancer: name, ID: route.ID, Endpoint: route.Endpoint, Binding: route.Binding}
	}
	return routes, nil
}

// retry runs fn until it succeeds, fails with a non-temporary error, or ctx ends.
func (d *Deployment) retry(ctx context.Context, step Step, fn func(context.Context) error) error {
	b := poll.Backoff{Initial: d.c.opts.PollInterval, Max: d.c.opts.MaxPollInterval}
	for {
		err := fn(ctx)
		if err == nil || !providers.IsTemporary(err) || ctx.Err() != nil {
			return err
		}
		d.c.emit(Event{Type: EventRetry, App: d.App, Release: d.Release, Step: step, Message: "retrying", Reason: err.Error()})
		if werr := b.Wait(ctx); werr != nil {
			return err
		}
	}
}

// observation is one look at the rollout.
type observation struct {
	status   providers.AppStatus
	progress Progress
	stopped  []providers.Task
	rollout  *providers.Rollout
	// unhealthy lists the release's targets a balancer reports unhealthy.
	unhealthy []providers.TargetHealth
}

// observe reads the scheduler status and route health for release id,
// counting the targets of the target set sets[process] (the live set when
// sets is nil).
func (c *Client) observe(ctx context.Context, sel selection, app *appDoc, rel *releaseDoc, token string, sets map[string]string) (observation, error) {
	var o observation
	st, err := c.status(ctx, sel, rel.App)
	if err != nil {
		return o, err
	}
	o.status = st
	id := releaseID(rel.Seq)
	for i := range st.Rollouts {
		if st.Rollouts[i].Token == token {
			o.rollout = &st.Rollouts[i]
			break
		}
	}
	for _, p := range rel.Processes {
		o.progress.Desired += p.Count
		for _, ps := range st.Processes {
			if ps.Name == p.Name && ps.Release == id {
				o.progress.Running += min(ps.Running, p.Count)
			}
		}
	}
	for _, t := range st.Tasks {
		if t.Release == id && t.State == providers.TaskStopped {
			o.stopped = append(o.stopped, t)
		}
	}
	o.progress.Stopped = len(o.stopped)
	for _, p := range rel.Processes {
		if p.Port == 0 || p.Count == 0 {
			continue
		}
		for _, r := range app.routesOf(p.Name) {
			b := sel.balancers[r.Balancer]
			if b == nil {
				return o, providers.Invalidf("route of process %s is on balancer %q, which the rack no longer has", p.Name, r.Balancer)
			}
			if err := c.limit(ctx, "balancer", r.Balancer); err != nil {
				return o, err
			}
			hs, err := b.Health(ctx, r.ID)
			if err != nil {
				return o, err
			}
			set, ok := sets[p.Name]
			if !ok {
				set = r.Live
			}
			// While the rollout is in flight, count only the release's own
			// targets (by task address, when the scheduler reports addresses) so
			// old tasks still serving do not count as new ones; once the
			// scheduler reports the release rolled out, every target is its.
			countAll := st.Release == id || !anyAddress(st.Tasks)
			own := map[string]bool{}
			for _, t := range st.Tasks {
				if t.Release == id && t.Process == p.Name && t.Address != "" && t.State == providers.TaskRunning {
					own[t.Address] = true
				}
			}
			healthy := 0
			for _, h := range hs {
				if h.Set != set || !countAll && !own[h.Target] {
					continue
				}
				switch h.State {
				case providers.TargetHealthy:
					healthy++
				case providers.TargetUnhealthy:
					o.unhealthy = append(o.unhealthy, h)
				}
			}
			o.progress.Targets += p.Count
			o.progress.Healthy += min(healthy, p.Count)
		}
	}
	return o, nil
}

// anyAddress reports whether the scheduler reports task addresses at all.
func anyAddress(ts []providers.Task) bool {
	return slices.ContainsFunc(ts, func(t providers.Task) bool { return t.Address != "" })
}

// converged reports whether the observation shows rel fully rolled out and
// healthy. When the scheduler reports this attempt's rollout, it must have
// completed too: re-promoting the serving release (to re-bind it, or to
// restore it) finds AppStatus.Release already equal to it.
func (o observation) converged(id string) bool {
	if o.rollout != nil && o.rollout.State != providers.RolloutCompleted {
		return false
	}
	return o.status.Release == id && o.progress.Running == o.progress.Desired && o.progress.Healthy == o.progress.Targets
}

// waitSpec says what a wait waits for.
type waitSpec struct {
	step    Step
	message string
	// sets selects the target set counted per process (nil: the live set).
	sets map[string]string
	// done reports success; nil waits until bake has passed.
	done func(observation) bool
	// bake, with done nil, is how long the release must stay healthy.
	bake time.Duration
}

// wait polls until the release converges, fails fast, or ctx ends.
func (d *Deployment) wait(ctx context.Context, rel *releaseDoc, sel selection) *stepError {
	return d.waitFor(ctx, rel, sel, waitSpec{
		step: StepWait, message: "waiting for tasks running and targets healthy",
		done: func(o observation) bool { return o.converged(d.Release) },
	})
}

// waitFor polls the scheduler and balancer until w.done holds (or, for a
// bake, until w.bake has passed with the release healthy throughout),
// failing fast on a failed rollout, on crash-looping tasks, and during a
// bake on an unhealthy target. Temporary errors are retried; others stop
// the wait at once. Each change of progress is reported as an event.
func (d *Deployment) waitFor(ctx context.Context, rel *releaseDoc, sel selection, w waitSpec) *stepError {
	b := poll.Backoff{Initial: d.c.opts.PollInterval, Max: d.c.opts.MaxPollInterval}
	start := time.Now()
	limit := d.opts.Timeout
	if w.done == nil {
		limit = w.bake
	}
	var last Progress
	first := true
	unhealthyRuns := 0
	d.mu.Lock()
	d.step = w.step
	d.mu.Unlock()
	platformEvents := d.c.platformEvents(sel.scheduler, d.App, d.Release, d.start) // the scheduler's own rollout events (platformevents.go)
	for {
		app, err := d.c.loadApp(ctx, d.App)
		if err == nil {
			if serr := d.checkLease(ctx, app); serr != nil {
				return serr
			}
		}
		var obs observation
		if err == nil {
			obs, err = d.c.observe(ctx, sel, app, rel, d.token, w.sets)
		}
		platformEvents(ctx, w.step)
		switch {
		case err != nil && ctx.Err() != nil:
			return d.ctxOr(ctx, failStep(w.step, err, "%v", err))
		case err != nil && providers.IsTemporary(err):
			d.c.emit(Event{Type: EventRetry, App: d.App, Release: d.Release, Step: w.step, Message: "observation failed; retrying", Reason: err.Error()})
		case err != nil:
			return failStep(w.step, err, "observe: %v", err)
		default:
			d.setStatus(obs.status)
			if w.done != nil && w.done(obs) {
				return nil
			}
			if r := obs.rollout; r != nil && (r.State == providers.RolloutFailed || r.State == providers.RolloutCanceled) {
				return failStep(w.step, providers.ErrUnhealthy, "rollout %s: %s", r.State, r.Reason)
			}
			crashed := d.crashes(obs.stopped)
			if max := d.opts.FailFast.MaxStopped; max > 0 && len(crashed) >= max {
				return failStep(w.step, providers.ErrUnhealthy, "%d tasks of %s stopped: %s", len(crashed), d.Release, summarizeStops(crashed))
			}
			if t, ok := earlyExit(crashed, rel); ok && !d.opts.FailFast.AllowEarlyExits {
				return failStep(w.step, providers.ErrUnhealthy, "task %s of %s exited within its health grace window (%s)", t.ID, summarizeStops([]providers.Task{t}), graceOf(t.Process, rel))
			}
			if len(obs.unhealthy) > 0 {
				unhealthyRuns++
			} else {
				unhealthyRuns = 0
			}
			if max := d.opts.FailFast.MaxUnhealthy; max > 0 && unhealthyRuns >= max {
				h := obs.unhealthy[0]
				return failStep(w.step, providers.ErrUnhealthy, "%d targets of %s failed health checks in %d observations in a row (%s: %s)", len(obs.unhealthy), d.Release, unhealthyRuns, h.Target, h.Reason)
			}
			p := obs.progress
			p.Stopped = len(crashed)
			if w.done == nil {
				if p.Healthy < p.Targets || p.Running < p.Desired {
					return failStep(w.step, providers.ErrUnhealthy, "%s became unhealthy while baking: %d/%d running, %d/%d targets healthy", d.Release, p.Running, p.Desired, p.Healthy, p.Targets)
				}
				if time.Since(start) >= w.bake {
					return nil
				}
			}
			p.Elapsed, p.Limit = time.Since(start), limit
			if first || p.Running != last.Running || p.Healthy != last.Healthy || p.Stopped != last.Stopped {
				first = false
				d.c.emit(Event{Type: EventWaiting, App: d.App, Release: d.Release, Step: w.step, Progress: &p, Message: w.message})
				b.Reset()
			}
			last = p
		}
		wait := b.Next()
		if w.done == nil {
			wait = min(wait, max(w.bake-time.Since(start), 0))
		}
		if err := poll.Sleep(ctx, wait); err != nil {
			return d.ctxOr(ctx, failStep(w.step, err, "waited: %v", err))
		}
	}
}

// checkLease verifies the lease is still this deployment's, honors a
// cancel request, and renews the lease when half its TTL has passed.
func (d *Deployment) checkLease(ctx context.Context, app *appDoc) *stepError {
	l := app.Lease
	if l == nil || l.Token != d.token {
		return failStep(StepWait, errLeaseLost, "the deploy lease was taken over by another deployer")
	}
	if l.Cancel {
		d.cancel(errCanceled)
		return &stepError{step: StepWait, reason: "canceled", err: errCanceled}
	}
	now := time.Now()
	if l.Expires.Sub(now) < d.c.opts.LeaseTTL/2 {
		l.Expires = now.Add(d.c.opts.LeaseTTL)
		if err := d.c.saveApp(ctx, app); err != nil && !errors.Is(err, providers.ErrConflict) {
			d.c.log.Warn("convox: renew deploy lease", "app", d.App, "err", err)
		}
	}
	return nil
}

func (d *Deployment) setStatus(st providers.AppStatus) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastStatus = &st
	if d.known == nil {
		d.known = map[string]bool{}
		for _, t := range st.Tasks {
			// Stopped tasks are an earlier attempt's; when the serving
			// release is promoted again its running tasks are the old ones.
			if t.Release == d.Release && (t.State == providers.TaskStopped || d.Previous == d.Release) {
				d.known[t.ID] = true
			}
		}
	}
}

// crashes keeps the stopped tasks that this attempt started: tasks known
// at the attempt's first observation do not count (crashes of an earlier
// attempt, and the running tasks of a serving release promoted again,
// which are stopped when replaced). Comparing task sets needs no clock;
// schedulers and their clients disagree about time.
func (d *Deployment) crashes(ts []providers.Task) []providers.Task {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []providers.Task
	for _, t := range ts {
		if !d.known[t.ID] {
			out = append(out, t)
		}
	}
	return out
}

// graceOf renders the health grace window of a process of rel.
func graceOf(process string, rel *releaseDoc) string {
	for _, p := range rel.Processes {
		if p.Name == process && p.Health.Grace > 0 {
			return "grace " + p.Health.Grace.String()
		}
	}
	return "grace " + DefaultGrace.String()
}

// earlyExit finds a task that exited with a non-zero code within its
// process's health grace window.
func earlyExit(ts []providers.Task, rel *releaseDoc) (providers.Task, bool) {
	for _, t := range ts {
		if t.ExitCode == nil || *t.ExitCode == 0 || t.Started.IsZero() || t.Stopped.IsZero() {
			continue
		}
		grace := DefaultGrace
		for _, p := range rel.Processes {
			if p.Name == t.Process && p.Health.Grace > 0 {
				grace = p.Health.Grace
			}
		}
		if t.Stopped.Sub(t.Started) <= grace {
			return t, true
		}
	}
	return providers.Task{}, false
}

func summarizeStops(ts []providers.Task) string {
	counts := map[string]int{}
	for _, t := range ts {
		r := t.Reason
		if r == "" && t.ExitCode != nil {
			r = fmt.Sprintf("exit code %d", *t.ExitCode)
		}
		if r == "" {
			r = "stopped"
		}
		counts[t.Process+": "+r]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return counts[keys[i]] > counts[keys[j]] || counts[keys[i]] == counts[keys[j]] && keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k
		if counts[k] > 1 {
			parts[i] += fmt.Sprintf(" (%d tasks)", counts[k])
		}
	}
	return strings.Join(parts, ", ")
}

// succeed records the release as active and healthy and releases the lease.
func (d *Deployment) succeed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.c.opts.CompensateTimeout)
	defer cancel()
	now := time.Now().UTC()
	if err := d.c.updateRelease(ctx, d.App, d.Release, func(r *releaseDoc) {
		r.Promoted, r.Healthy, r.Failed, r.Canceled, r.Reason = now, true, false, false, ""
	}); err != nil {
		return d.fail(ctx, failStep(StepActivate, err, "record release: %v", err))
	}
	if _, err := d.c.updateApp(ctx, d.App, func(a *appDoc) error {
		if a.Lease == nil || a.Lease.Token != d.token {
			return errLeaseLost
		}
		if a.Active != "" && a.Active != d.Release {
			a.History = append([]string{a.Active}, slices.DeleteFunc(a.History, func(id string) bool { return id == a.Active || id == d.Release })...)
			a.History = a.History[:min(len(a.History), maxHistory)]
		}
		a.Active, a.LastHealthy, a.Lease = d.Release, d.Release, nil
		return nil
	}); err != nil {
		return d.fail(ctx, failStep(StepActivate, err, "activate: %v", err))
	}
	msg := fmt.Sprintf("%s is active and healthy", d.Release)
	d.c.emit(Event{Type: EventDeploySucceeded, App: d.App, Release: d.Release, Step: StepActivate, Message: msg})
	d.c.platformLog(ctx, d.App, d.Release, msg)
	d.c.notify(ctx, providers.Notification{Kind: providers.NotifyDeploySucceeded, App: d.App, Release: d.Release, Previous: d.Previous, Summary: d.summary})
	return nil
}

// fail compensates a failed promotion: it restores the previous release
// (or stops the failed one on a first deploy), marks the release failed or
// canceled with the reason, releases the lease and returns a *DeployError.
// Compensation runs detached from cancellation, under its own bound.
func (d *Deployment) fail(ctx context.Context, serr *stepError) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.c.opts.CompensateTimeout)
	defer cancel()
	canceled := errors.Is(serr.err, errCanceled)
	lost := errors.Is(serr.err, errLeaseLost)
	de := &DeployError{App: d.App, Release: d.Release, Previous: d.Previous, Step: serr.step, Reason: serr.reason, Changed: true, Canceled: canceled, Err: serr.err}
	if canceled {
		de.Err = fmt.Errorf("%w: %w", errCanceled, context.Canceled)
	}
	d.mu.Lock()
	last := d.lastStatus
	d.mu.Unlock()
	if last != nil {
		st := *last
		de.LastStatus = &st
		var stopped []providers.Task
		for _, t := range st.Tasks {
			if t.Release == d.Release && t.State == providers.TaskStopped {
				stopped = append(stopped, t)
			}
		}
		de.StoppedTasks = d.crashes(stopped)
	}
	de.LastLogLines = d.c.lastLines(ctx, d.App, d.Release, d.start, 20)

	if canceled {
		d.c.emit(Event{Type: EventDeployFailed, App: d.App, Release: d.Release, Step: serr.step, Message: "deploy canceled", Reason: serr.reason})
		d.c.platformLog(ctx, d.App, d.Release, fmt.Sprintf("deploy of %s canceled at %s", d.Release, serr.step))
	} else {
		d.c.emit(Event{Type: EventDeployFailed, App: d.App, Release: d.Release, Step: serr.step, Message: "deploy failed", Reason: serr.reason})
		d.c.platformLog(ctx, d.App, d.Release, fmt.Sprintf("deploy of %s failed at %s: %s", d.Release, serr.step, serr.reason))
	}
	for _, l := range de.LastLogLines {
		d.c.log.Debug("convox: last log line of failed release", "app", d.App, "release", d.Release, "stream", l.Stream, "message", l.Message)
	}

	var errs []error
	if lost {
		// Another deployer owns the app now; it decides what runs.
		return de
	}
	if err := d.compensate(ctx); err != nil {
		errs = append(errs, fmt.Errorf("compensate: %w", err))
	} else {
		de.RolledBack = true
	}
	// The bookkeeping gets its own bound: a compensation that used up its
	// time must still record the failure and release the lease.
	ctx, cancelBook := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancelBook()
	if err := d.c.updateRelease(ctx, d.App, d.Release, func(r *releaseDoc) {
		r.Failed, r.Canceled, r.Reason = !canceled, canceled, serr.reason
	}); err != nil {
		errs = append(errs, fmt.Errorf("mark release failed: %w", err))
	}
	if _, err := d.c.updateApp(ctx, d.App, func(a *appDoc) error {
		if a.Lease != nil && a.Lease.Token == d.token {
			a.Lease = nil
		}
		return nil
	}); err != nil {
		errs = append(errs, fmt.Errorf("release lease: %w", err))
	}
	kind, msg := EventRolledBack, ""
	switch {
	case !de.RolledBack:
		msg = "compensation failed; the previous release may not be serving"
		kind = EventDeployFailed
	case d.Previous != "":
		msg = fmt.Sprintf("%s is serving again", d.Previous)
	default:
		msg = fmt.Sprintf("the processes of %s were stopped", d.Release)
	}
	if canceled {
		kind = EventCanceled
	}
	d.c.emit(Event{Type: kind, App: d.App, Release: d.Release, Step: StepCompensate, Message: msg, Reason: serr.reason})
	d.c.platformLog(ctx, d.App, d.Release, msg)
	d.c.notify(ctx, providers.Notification{Kind: providers.NotifyDeployFailed, App: d.App, Release: d.Release, Previous: d.Previous, Reason: serr.reason, RolledBack: de.RolledBack, Summary: d.summary})
	if len(errs) > 0 {
		return errors.Join(append([]error{de}, errs...)...)
	}
	return de
}

// compensate restores what ran before the deploy, retrying until ctx ends:
// each attempt is bounded by a fifth of CompensateTimeout (at least 10s),
// so one hung or failed call costs an attempt, not the compensation.
// Every error but providers.ErrInvalid is retried, not only temporary ones: leaving
// the app half-deployed is worse than trying again.
func (d *Deployment) compensate(ctx context.Context) error {
	d.c.emit(Event{Type: EventCompensating, App: d.App, Release: d.Release, Step: StepCompensate,
		Message: map[bool]string{true: "restoring " + d.Previous, false: "stopping the failed release"}[d.Previous != ""]})
	b := poll.Backoff{Initial: d.c.opts.PollInterval, Max: d.c.opts.MaxPollInterval}
	per := max(d.c.opts.CompensateTimeout/5, 10*time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, per)
		err := d.compensateOnce(actx)
		cancel()
		if err == nil {
			return nil
		}
		// A refused desired state (providers.ErrInvalid) cannot succeed by retrying.
		if ctx.Err() != nil || errors.Is(err, providers.ErrInvalid) {
			return err
		}
		d.c.emit(Event{Type: EventRetry, App: d.App, Release: d.Release, Step: StepCompensate, Message: "compensation failed; retrying", Reason: err.Error()})
		if werr := b.Wait(ctx); werr != nil {
			return err
		}
	}
}

// compensateOnce re-applies the previous release and waits for it (or
// reverts a weighted deploy's staging), or stops the app's processes when
// there was no previous release.
func (d *Deployment) compensateOnce(ctx context.Context) error {
	sel, err := d.selection(ctx)
	if err != nil {
		return err
	}
	if (d.staged != nil || d.wasStaged) && !d.switched {
		return d.unstage(ctx, sel)
	}
	if d.switched && d.staged != nil {
		// The staged sets serve all traffic: restore the previous release there.
		if err := d.setLive(ctx, *d.staged); err != nil {
			return err
		}
	}
	if d.Previous == "" {
		return d.retry(ctx, StepCompensate, func(ctx context.Context) error { return sel.scheduler.Delete(ctx, d.App) })
	}
	if c, ok := sel.scheduler.(providers.Canceler); ok {
		if st, err := sel.scheduler.Status(ctx, d.App); err == nil {
			for _, r := range st.Rollouts {
				if r.Token == d.token && r.State == providers.RolloutInProgress {
					if err := c.CancelRollout(ctx, d.App, r.ID); err != nil {
						d.c.log.Warn("convox: cancel rollout", "app", d.App, "rollout", r.ID, "err", err)
					}
				}
			}
		}
	}
	prev, err := d.c.loadRelease(ctx, d.App, d.Previous)
	if err != nil {
		return err
	}
	bindings, serr := d.ensureRoutes(ctx, prev)
	if serr != nil {
		return serr
	}
	token := newToken()
	if err := d.retry(ctx, StepCompensate, func(ctx context.Context) error {
		_, err := sel.scheduler.Apply(ctx, prev.desired(token, bindings))
		return err
	}); err != nil {
		return err
	}
	b := poll.Backoff{Initial: d.c.opts.PollInterval, Max: d.c.opts.MaxPollInterval}
	for {
		app, err := d.c.loadApp(ctx, d.App)
		var obs observation
		if err == nil {
			obs, err = d.c.observe(ctx, sel, app, prev, token, nil)
		}
		switch {
		case err == nil && obs.converged(d.Previous):
			return nil
		case err != nil && !providers.IsTemporary(err):
			return err
		case err == nil && obs.rollout != nil && (obs.rollout.State == providers.RolloutFailed || obs.rollout.State == providers.RolloutCanceled):
			// Waiting longer cannot help; the next attempt applies again
			// (and stops there when the scheduler refuses the release).
			return fmt.Errorf("restoring %s: rollout %s: %s", d.Previous, obs.rollout.State, obs.rollout.Reason)
		}
		if werr := b.Wait(ctx); werr != nil {
			if err != nil {
				return err
			}
			return fmt.Errorf("restoring %s: %w; last seen %s", d.Previous, werr, obs.progress)
		}
	}
}

// lastLines returns up to n of the release's most recent process log
// lines since start, skipping the platform's own.
func (c *Client) lastLines(ctx context.Context, app, release string, start time.Time, n int) []providers.LogEntry {
	// Diagnostics must not eat the compensation's time.
	ctx, cancel := context.WithTimeout(ctx, c.opts.NotifyTimeout)
	defer cancel()
	doc, err := c.loadApp(ctx, app)
	if err != nil {
		return nil
	}
	sel, err := c.rack.selectFor(doc.Spec)
	if err != nil {
		return nil
	}
	var lines []providers.LogEntry
	token := ""
	for range 1000 {
		page, err := sel.logs.Read(ctx, providers.LogQuery{App: app, Release: release, Start: start.Add(-time.Minute)}, token)
		if err != nil {
			c.log.Warn("convox: read last log lines", "app", app, "release", release, "err", err)
			break
		}
		for _, e := range page.Entries {
			if e.Stream == providers.StreamPlatform {
				continue
			}
			lines = append(lines, e)
			if len(lines) > n {
				lines = slices.Delete(lines, 0, len(lines)-n)
			}
		}
		if page.Next == "" {
			break
		}
		token = page.Next
	}
	return lines
}

// platformLog writes a platform event line into the app's logs.
func (c *Client) platformLog(ctx context.Context, app, release, msg string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.NotifyTimeout)
	defer cancel()
	doc, err := c.loadApp(ctx, app)
	if err != nil {
		return
	}
	sel, err := c.rack.selectFor(doc.Spec)
	if err != nil {
		return
	}
	e := providers.LogEntry{Time: time.Now().UTC(), App: app, Stream: providers.StreamPlatform, Process: providers.StreamPlatform, Release: release, Message: msg}
	if err := sel.logs.Write(ctx, []providers.LogEntry{e}); err != nil {
		c.log.Warn("convox: write platform log", "app", app, "err", err)
	}
}

// notify delivers n to every notifier, each bounded by NotifyTimeout; a
// failure is reported as an event and never fails the caller.
func (c *Client) notify(ctx context.Context, n providers.Notification) {
	if n.Time.IsZero() {
		n.Time = time.Now().UTC()
	}
	for i, nt := range c.rack.notifiers {
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.NotifyTimeout)
		err := nt.Notify(nctx, n)
		cancel()
		if err != nil {
			c.emit(Event{Type: EventNotifyFailed, App: n.App, Release: n.Release, Message: fmt.Sprintf("notifier %d failed", i), Reason: err.Error()})
		}
	}
}

// Cancel aborts the app's in-flight deploy and restores the previous
// release, returning once that is done. A deploy driven by this Client is
// stopped directly; one driven by another process is asked to stop through
// the store; one whose deployer died (its lease expired) is compensated
// here. With no deploy in flight it returns an error matching providers.ErrNotFound.
func (a *AppClient) Cancel(ctx context.Context) error {
	const op = "Cancel"
	a.c.mu.Lock()
	dep := a.c.inflight[a.name]
	a.c.mu.Unlock()
	if dep != nil {
		return dep.Cancel(ctx)
	}
	app, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return wrapErr(op, a.name, "", err)
	}
	l := app.Lease
	if l == nil {
		return &Error{Op: op, App: a.name, Err: fmt.Errorf("%w: no deploy of %s is in progress", providers.ErrNotFound, a.name)}
	}
	if l.expired(time.Now()) {
		return wrapErr(op, a.name, l.Release, a.takeOverAndCompensate(ctx, l.Token))
	}
	if _, err := a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		if d.Lease == nil || d.Lease.Token != l.Token {
			return nil // it finished meanwhile
		}
		d.Lease.Cancel = true
		return nil
	}); err != nil {
		return wrapErr(op, a.name, l.Release, err)
	}
	b := poll.Backoff{Initial: a.c.opts.PollInterval, Max: a.c.opts.MaxPollInterval}
	for {
		app, err := a.c.loadApp(ctx, a.name)
		if err != nil && !providers.IsTemporary(err) {
			return wrapErr(op, a.name, l.Release, err)
		}
		if err == nil {
			cur := app.Lease
			if cur == nil || cur.Token != l.Token {
				return nil
			}
			if cur.expired(time.Now()) {
				return wrapErr(op, a.name, l.Release, a.takeOverAndCompensate(ctx, l.Token))
			}
		}
		if err := b.Wait(ctx); err != nil {
			return wrapErr(op, a.name, l.Release, err)
		}
	}
}

// Recover compensates every deploy left in flight by a deployer that is
// gone (its lease expired, or its process provably ended on this host):
// each such app serves the release the store calls active again, and its
// lease is released. A program that opens a rack after a crash (a local
// rack reopened, a deploy server restarted) calls it once, so that what
// serves matches the store before anyone asks; Promote and Cancel do the
// same for their app. It returns the apps it compensated, in name order;
// the failures of several apps are joined.
func (c *Client) Recover(ctx context.Context) ([]string, error) {
	const op = "Recover"
	var names []string
	for app, err := range c.Apps(ctx) {
		if err != nil {
			return nil, wrapErr(op, "", "", err)
		}
		names = append(names, app.Name)
	}
	slices.Sort(names)
	var recovered []string
	var errs []error
	for _, name := range names {
		doc, err := c.loadApp(ctx, name)
		if errors.Is(err, providers.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			errs = append(errs, wrapErr(op, name, "", err))
			continue
		}
		l := doc.Lease
		if l == nil || !l.expired(time.Now()) {
			continue
		}
		switch err := c.App(name).takeOverAndCompensate(ctx, l.Token); {
		case errors.Is(err, providers.ErrConflict):
			// Another client took it over, or the deploy finished.
		case err != nil:
			errs = append(errs, wrapErr(op, name, l.Release, err))
		default:
			recovered = append(recovered, name)
		}
	}
	return recovered, errors.Join(errs...)
}

// takeOverAndCompensate takes an expired lease and compensates its deploy.
func (a *AppClient) takeOverAndCompensate(ctx context.Context, oldToken string) error {
	token := newToken()
	now := time.Now()
	app, err := a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		if d.Lease == nil || d.Lease.Token != oldToken {
			return fmt.Errorf("%w: the deploy finished or was taken over meanwhile", providers.ErrConflict)
		}
		self := holder.Self()
		d.Lease.Token, d.Lease.Holder, d.Lease.Process, d.Lease.Expires = token, a.c.opts.Holder, &self, now.Add(a.c.opts.LeaseTTL)
		return nil
	})
	if err != nil {
		return err
	}
	dep := a.newDeployment(app.Lease.Release, app.Lease, (*DeployOptions)(nil).withDefaults(a.c))
	dep.cancel = func(error) {}
	dep.wasStaged, dep.switched = app.Lease.Staged, app.Lease.Switched
	defer close(dep.done)
	defer a.c.untrack(dep)
	err = dep.fail(ctx, &stepError{step: StepWait, reason: "canceled after its deployer stopped", err: errCanceled})
	var de *DeployError
	if errors.As(err, &de) && de.RolledBack {
		return nil
	}
	return err
}
