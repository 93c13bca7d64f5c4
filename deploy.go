package convox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
	// sel holds the app's providers once resolved; see selection.
	sel    *selection
	start  time.Time
	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error

	// Weighted deploys: staged is set once the new release is staged,
	// switched once the scheduler was asked to make it the serving one.
	staged    *weightedPlan
	wasStaged bool // staged by a deployer whose lease this one took over
	switched  bool

	mu         sync.Mutex
	step       Step // the step in progress
	lastStatus *providers.AppStatus
	known      map[string]bool // IDs of the release's tasks at the first observation
	platform   platformCursor  // the scheduler's rollout events reported so far
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

// setStep records that the deployment entered step.
func (d *Deployment) setStep(step Step) {
	d.mu.Lock()
	d.step = step
	d.mu.Unlock()
}

// stepEvent records that the deployment entered step and reports it.
func (d *Deployment) stepEvent(step Step, msg string) {
	d.setStep(step)
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
	app, rel, sel, err := a.prepare(ctx, id, o)
	if err != nil {
		return nil, err
	}
	id = releaseID(rel.Seq)
	if l := app.Lease; l != nil && l.expired(time.Now()) {
		// The deploy in flight was abandoned (its deployer crashed or lost
		// the store): restore what it replaced before starting this one.
		if err := a.takeOverAndCompensate(ctx, l.Token); err != nil && !errors.Is(err, providers.ErrConflict) {
			return nil, &DeployError{App: a.name, Release: id, Previous: app.Active, Step: StepLease, Changed: true,
				Reason: fmt.Sprintf("compensating the abandoned deploy of %s failed: %v", l.Release, err), Err: err}
		}
	}
	app, takenOver, err := a.takeLease(ctx, id)
	if err != nil {
		return nil, deployErr(a.name, id, StepLease, err)
	}
	dep := a.newDeployment(id, app.Lease, o)
	dep.sel = &sel
	msg := fmt.Sprintf("promoting %s", id)
	if dep.Previous != "" {
		msg += fmt.Sprintf(" (active: %s)", dep.Previous)
	}
	if takenOver != "" {
		msg += fmt.Sprintf("; took over an expired lease of %s", takenOver)
	}
	a.c.emit(Event{Type: EventDeployStarted, App: a.name, Release: id, Step: StepLease, Message: msg})
	dep.platformLog(ctx, msg)
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

// prepare loads the app and release id and resolves the app's providers,
// refusing a promotion they cannot carry out with a *DeployError at
// StepPrepare, before any change.
func (a *AppClient) prepare(ctx context.Context, id string, o DeployOptions) (*appDoc, *releaseDoc, selection, error) {
	app, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, nil, selection{}, deployErr(a.name, id, StepPrepare, err)
	}
	rel, err := a.c.loadRelease(ctx, a.name, id)
	if err != nil {
		return nil, nil, selection{}, deployErr(a.name, id, StepPrepare, err)
	}
	id = releaseID(rel.Seq)
	sel, err := a.c.rack.selectFor(app.Spec)
	if err == nil {
		err = o.Strategy.validate(rel, sel)
	}
	if err == nil {
		err = rel.validate(sel.limits())
	}
	if err == nil && o.Strategy.weighted() && app.Migration != nil {
		err = fmt.Errorf("%w: a %s deploy cannot run while the app migrates to balancer %q; finish or abort the migration first", providers.ErrConflict, o.Strategy, app.Migration.To)
	}
	if err != nil {
		return nil, nil, selection{}, deployErr(a.name, id, StepPrepare, err)
	}
	return app, rel, sel, nil
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
	return d.opts.Strategy.get().promote(ctx, d, rel, sel, bindings)
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

// selection returns the app's providers, resolved once per deployment
// (Promote resolves them; a deployment that takes over an abandoned
// lease resolves them at its first use).
func (d *Deployment) selection(ctx context.Context) (selection, error) {
	if d.sel != nil {
		return *d.sel, nil
	}
	app, err := d.c.loadApp(ctx, d.App)
	if err != nil {
		return selection{}, err
	}
	sel, err := d.c.rack.selectFor(app.Spec)
	if err != nil {
		return selection{}, err
	}
	d.sel = &sel
	return sel, nil
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
	sel, err := d.selection(ctx)
	if err != nil {
		return nil, d.ctxOr(ctx, failStep(StepRoutes, err, "%v", err))
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
		route, err := bal.EnsureRoute(d.at(ctx, StepRoutes), spec)
		if err != nil {
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
