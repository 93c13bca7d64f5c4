package convox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/convox-go/convox/providers"
)

// BalancerMigration describes a move of an app from one named balancer to
// another.
type BalancerMigration struct {
	App  string
	From string
	To   string
	// Endpoints are the routes on the balancer moved to, by process;
	// OldEndpoints those on the balancer moved from.
	Endpoints    map[string]string
	OldEndpoints map[string]string
}

func endpoints(routes map[string]routeDoc) map[string]string {
	m := map[string]string{}
	for p, r := range routes {
		m[p] = r.Endpoint
	}
	return m
}

// StartBalancerMigration moves the app towards the rack's balancer named
// to without users noticing: it provisions the app's routes on the new
// balancer alongside the old ones, attaches the active release's processes
// to both (a deploy of the active release; later deploys keep attaching to
// both), waits until the new routes' targets are healthy, and reports the
// new endpoints. Both balancers serve until FinishBalancerMigration (the
// old routes are drained and removed) or AbortBalancerMigration (the new
// ones are). Weighted strategies are refused while a migration runs.
func (a *AppClient) StartBalancerMigration(ctx context.Context, to string, opts *DeployOptions) (*BalancerMigration, error) {
	const op = "StartBalancerMigration"
	app, sel, err := a.load(ctx)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	switch {
	case sel.balancers[to] == nil:
		_, _, err = a.c.rack.balancers.get(to)
		if err == nil {
			err = providers.Invalidf("name the balancer to migrate to")
		}
	case to == app.Spec.Balancer:
		err = providers.Invalidf("app %q already uses balancer %q", a.name, to)
	case app.Migration != nil:
		err = fmt.Errorf("%w: app %q is already migrating to balancer %q", providers.ErrConflict, a.name, app.Migration.To)
	case app.Active == "":
		err = fmt.Errorf("%w: app %q has no active release to move", providers.ErrNotFound, a.name)
	case app.Lease != nil && !app.Lease.expired(time.Now()):
		err = fmt.Errorf("%w: a deploy of %s is in progress", providers.ErrConflict, app.Lease.Release)
	}
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	if _, err := a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		if d.Migration != nil {
			return fmt.Errorf("%w: app %q is already migrating to balancer %q", providers.ErrConflict, a.name, d.Migration.To)
		}
		d.Migration = &migrationDoc{To: to, Started: time.Now().UTC()}
		return nil
	}); err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	if err := a.repromote(ctx, app.Active, opts); err != nil {
		// Leave things as they were: detach from the new balancer, remove its routes.
		if aerr := a.AbortBalancerMigration(context.WithoutCancel(ctx), opts); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort: %w", aerr))
		}
		return nil, wrapErr(op, a.name, app.Active, err)
	}
	app, err = a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	m := &BalancerMigration{App: a.name, From: app.Spec.Balancer, To: to, OldEndpoints: endpoints(app.Routes)}
	if app.Migration != nil {
		m.Endpoints = endpoints(app.Migration.Routes)
	}
	a.c.emit(Event{Type: EventMigrated, App: a.name, Message: fmt.Sprintf("serving on balancers %s and %s: %v", m.From, m.To, m.Endpoints)})
	return m, nil
}

// FinishBalancerMigration completes a migration started by
// StartBalancerMigration: the new balancer becomes the app's, the
// processes are detached from the old routes (which drain), and the old
// routes are removed.
func (a *AppClient) FinishBalancerMigration(ctx context.Context, opts *DeployOptions) (*BalancerMigration, error) {
	const op = "FinishBalancerMigration"
	var m *BalancerMigration
	app, err := a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		if d.Migration == nil {
			return fmt.Errorf("%w: app %q has no balancer migration in progress", providers.ErrNotFound, a.name)
		}
		if d.Lease != nil && !d.Lease.expired(time.Now()) {
			return fmt.Errorf("%w: a deploy of %s is in progress", providers.ErrConflict, d.Lease.Release)
		}
		m = &BalancerMigration{App: a.name, From: d.Spec.Balancer, To: d.Migration.To, Endpoints: endpoints(d.Migration.Routes), OldEndpoints: endpoints(d.Routes)}
		for _, p := range slices.Sorted(maps.Keys(d.Routes)) {
			d.Retired = append(d.Retired, d.Routes[p])
		}
		d.Spec.Balancer, d.Routes, d.Migration = d.Migration.To, d.Migration.Routes, nil
		return nil
	})
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	if err := a.repromote(ctx, app.Active, opts); err != nil {
		return nil, wrapErr(op, a.name, app.Active, err)
	}
	if err := a.deleteRetired(ctx); err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	a.c.emit(Event{Type: EventMigrated, App: a.name, Message: fmt.Sprintf("moved from balancer %s to %s", m.From, m.To)})
	return m, nil
}

// AbortBalancerMigration stops a migration started by
// StartBalancerMigration: the processes are detached from the new routes,
// which are removed; the old balancer serves as before.
func (a *AppClient) AbortBalancerMigration(ctx context.Context, opts *DeployOptions) error {
	const op = "AbortBalancerMigration"
	app, err := a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		if d.Migration == nil {
			return fmt.Errorf("%w: app %q has no balancer migration in progress", providers.ErrNotFound, a.name)
		}
		for _, p := range slices.Sorted(maps.Keys(d.Migration.Routes)) {
			d.Retired = append(d.Retired, d.Migration.Routes[p])
		}
		d.Migration = nil
		return nil
	})
	if err != nil {
		return wrapErr(op, a.name, "", err)
	}
	if app.Active != "" {
		if err := a.repromote(ctx, app.Active, opts); err != nil {
			return wrapErr(op, a.name, app.Active, err)
		}
	}
	if err := a.deleteRetired(ctx); err != nil {
		return wrapErr(op, a.name, "", err)
	}
	a.c.emit(Event{Type: EventMigrated, App: a.name, Message: "balancer migration aborted"})
	return nil
}

// repromote deploys the active release again so that its processes join
// the routes the app document now lists.
func (a *AppClient) repromote(ctx context.Context, id string, opts *DeployOptions) error {
	dep, err := a.Promote(ctx, id, opts)
	if err != nil {
		return err
	}
	return dep.Wait(ctx)
}

// deleteRetired removes retired routes from their balancers.
func (a *AppClient) deleteRetired(ctx context.Context) error {
	app, sel, err := a.load(ctx)
	if err != nil {
		return err
	}
	for _, r := range app.Retired {
		b := sel.balancers[r.Balancer]
		if b == nil {
			return providers.Invalidf("retired route %s is on balancer %q, which the rack no longer has", r.ID, r.Balancer)
		}
		if err := b.DeleteRoute(ctx, r.ID); err != nil {
			return fmt.Errorf("delete route %s on balancer %s: %w", r.ID, r.Balancer, err)
		}
	}
	_, err = a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		d.Retired = slices.DeleteFunc(d.Retired, func(r routeDoc) bool {
			return slices.ContainsFunc(app.Retired, func(x routeDoc) bool { return x.Balancer == r.Balancer && x.ID == r.ID })
		})
		return nil
	})
	return err
}
