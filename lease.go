package convox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/convox-go/convox/internal/holder"
	"github.com/convox-go/convox/providers"
)

// errLeaseLost: another deployer took the app's lease over (after it
// expired); it matches providers.ErrConflict.
var errLeaseLost = fmt.Errorf("the deploy lease was taken over by another deployer: %w", providers.ErrConflict)

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
	d.platformLog(ctx, msg)
	d.c.notify(ctx, providers.Notification{Kind: providers.NotifyDeploySucceeded, App: d.App, Release: d.Release, Previous: d.Previous, Summary: d.summary})
	return nil
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
	// Not the chain: this polls the app until its deployer lets go; a
	// temporary error that outlived the store's own retries is one poll
	// that saw nothing.
	b := a.c.pollBackoff()
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

// markLease records progress in this deployment's lease; a failure is
// reported at step, the step whose progress is marked.
func (d *Deployment) markLease(ctx context.Context, step Step, fn func(*leaseDoc)) *stepError {
	_, err := d.c.updateApp(ctx, d.App, func(a *appDoc) error {
		if a.Lease == nil || a.Lease.Token != d.token {
			return errLeaseLost
		}
		fn(a.Lease)
		return nil
	})
	if err != nil {
		return d.ctxOr(ctx, failStep(step, err, "%v", err))
	}
	return nil
}

// leaseDoc is an app's deploy lease: who promotes which release, until
// when, and how far a weighted deploy got.
type leaseDoc struct {
	// Token identifies the deploy attempt; it is also the scheduler apply token.
	Token  string `json:"token"`
	Holder string `json:"holder"`
	// Process identifies the holder's process, so that a deployer on the
	// same host can prove it gone (see expired).
	Process  *holder.ID `json:"process,omitempty"`
	Release  string     `json:"release"`
	Previous string     `json:"previous,omitempty"`
	Started  time.Time  `json:"started"`
	Expires  time.Time  `json:"expires"`
	// Cancel asks the holder to abort and restore Previous.
	Cancel bool `json:"cancel,omitempty"`
	// Staged is set while a weighted deploy has a staged release, and
	// Switched once it asked the scheduler to promote it; compensation
	// (including by a later deployer taking over an expired lease) reads them.
	Staged   bool `json:"staged,omitempty"`
	Switched bool `json:"switched,omitempty"`
}

// expired reports whether the lease no longer holds: its TTL has passed,
// or its holder's process is provably gone (it ran on this host and has
// ended), so that a crashed deployer does not block the app for a TTL.
func (l *leaseDoc) expired(now time.Time) bool {
	return !now.Before(l.Expires) || l.Process != nil && l.Process.Gone()
}

// takeLease takes the app's deploy lease for promoting release id. It
// fails with providers.ErrConflict while another deployer's lease holds or
// the app is being deleted; an expired lease is taken over, and takenOver
// names its holder.
func (a *AppClient) takeLease(ctx context.Context, id string) (app *appDoc, takenOver string, err error) {
	token := newToken()
	now := time.Now()
	self := holder.Self()
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
	return app, takenOver, err
}
