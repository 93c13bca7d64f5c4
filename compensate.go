package convox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/convox-go/convox/providers"
)

// fail compensates a failed promotion: it restores the previous release
// (or stops the failed one on a first deploy), marks the release failed or
// canceled with the reason, releases the lease and returns a *DeployError.
// Compensation runs detached from cancellation, under its own bound.
func (d *Deployment) fail(ctx context.Context, serr *stepError) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.c.opts.CompensateTimeout)
	defer cancel()
	canceled := errors.Is(serr.err, errCanceled)
	de := d.failure(ctx, serr, canceled)
	if errors.Is(serr.err, errLeaseLost) {
		// Another deployer owns the app now; it decides what runs.
		return de
	}
	var errs []error
	if err := d.compensate(ctx); err != nil {
		errs = append(errs, fmt.Errorf("compensate: %w", err))
	} else {
		de.RolledBack = true
	}
	// The bookkeeping gets its own bound: a compensation that used up its
	// time must still record the failure and release the lease.
	ctx, cancelBook := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancelBook()
	errs = append(errs, d.recordFailure(ctx, serr, canceled)...)
	d.reportOutcome(ctx, serr, canceled, de.RolledBack)
	if len(errs) > 0 {
		return errors.Join(append([]error{de}, errs...)...)
	}
	return de
}

// failure describes a failed promotion with what was last seen of it (its
// status, stopped tasks and last log lines), and reports the failure.
func (d *Deployment) failure(ctx context.Context, serr *stepError, canceled bool) *DeployError {
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
	de.LastLogLines = d.lastLines(ctx, 20)

	if canceled {
		d.c.emit(Event{Type: EventDeployFailed, App: d.App, Release: d.Release, Step: serr.step, Message: "deploy canceled", Reason: serr.reason})
		d.platformLog(ctx, fmt.Sprintf("deploy of %s canceled at %s", d.Release, serr.step))
	} else {
		d.c.emit(Event{Type: EventDeployFailed, App: d.App, Release: d.Release, Step: serr.step, Message: "deploy failed", Reason: serr.reason})
		d.platformLog(ctx, fmt.Sprintf("deploy of %s failed at %s: %s", d.Release, serr.step, serr.reason))
	}
	for _, l := range de.LastLogLines {
		d.c.log.Debug("convox: last log line of failed release", "app", d.App, "release", d.Release, "stream", l.Stream, "message", l.Message)
	}
	return de
}

// recordFailure marks the release failed (or canceled) and releases the
// deployment's lease.
func (d *Deployment) recordFailure(ctx context.Context, serr *stepError, canceled bool) []error {
	var errs []error
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
	return errs
}

// reportOutcome reports how the compensation of a failed promotion ended.
func (d *Deployment) reportOutcome(ctx context.Context, serr *stepError, canceled, rolledBack bool) {
	kind, msg := EventRolledBack, ""
	switch {
	case !rolledBack:
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
	d.platformLog(ctx, msg)
	d.c.notify(ctx, providers.Notification{Kind: providers.NotifyDeployFailed, App: d.App, Release: d.Release, Previous: d.Previous, Reason: serr.reason, RolledBack: rolledBack, Summary: d.summary})
}

// compensate restores what ran before the deploy, retrying until ctx ends:
// each attempt is bounded by a fifth of CompensateTimeout (at least 10s),
// so one hung or failed call costs an attempt, not the compensation.
// Every error but providers.ErrInvalid is retried, not only temporary ones: leaving
// the app half-deployed is worse than trying again.
//
// This loop is not the providers' chain, by design: the chain retries one
// call's temporary errors, while an attempt here is a whole sequence of
// calls and waits (compensateOnce) retried on any error but ErrInvalid.
// The calls of an attempt still go through their chains.
func (d *Deployment) compensate(ctx context.Context) error {
	d.c.emit(Event{Type: EventCompensating, App: d.App, Release: d.Release, Step: StepCompensate,
		Message: map[bool]string{true: "restoring " + d.Previous, false: "stopping the failed release"}[d.Previous != ""]})
	b := d.c.pollBackoff()
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
		return sel.sched.Delete(d.at(ctx, StepCompensate), d.App)
	}
	if c, ok := sel.sched.canceler(); ok {
		if st, err := sel.sched.Status(ctx, d.App); err == nil {
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
	if _, err := sel.sched.Apply(d.at(ctx, StepCompensate), prev.desired(token, bindings)); err != nil {
		return err
	}
	return d.waitRestored(ctx, sel, prev, token)
}

// waitRestored waits until the previous release, applied with token,
// serves again; it gives up on a non-temporary error or a failed rollout.
// Each observation reports the scheduler's new rollout events
// (platformevents.go) at StepCompensate.
//
// Like the waits of a deploy (observe.go), it polls rather than going
// through the chain's retry: it observes again whether or not the last
// observation failed, and a temporary failure only counts as one more
// observation that saw nothing.
func (d *Deployment) waitRestored(ctx context.Context, sel selection, prev *releaseDoc, token string) error {
	b := d.c.pollBackoff()
	platformEvents := d.platformEvents(sel.sched)
	for {
		app, err := d.c.loadApp(ctx, d.App)
		var obs observation
		if err == nil {
			obs, err = d.c.observe(ctx, sel, app, prev, token, nil)
		}
		platformEvents(ctx, StepCompensate)
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
// lines since the deployment started, skipping the platform's own.
func (d *Deployment) lastLines(ctx context.Context, n int) []providers.LogEntry {
	c, app, release, start := d.c, d.App, d.Release, d.start
	// Diagnostics must not eat the compensation's time.
	ctx, cancel := context.WithTimeout(ctx, c.opts.NotifyTimeout)
	defer cancel()
	sel, err := d.selection(ctx)
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
