package convox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/convox-go/convox/providers"
)

// RollbackTarget chooses the release a rollback copies.
type RollbackTarget struct {
	id   string
	kind string
}

// Previous targets the release that was active before the active one,
// even if it was later rolled back from (skipping any that failed since):
// it undoes the last change of what serves.
func Previous() RollbackTarget { return RollbackTarget{kind: "previous"} }

// LastHealthy targets the release App.LastHealthy names: the newest
// release that served healthily, the active one included. It repairs an
// app whose deploy failed and whose automatic rollback did not work
// (DeployError.RolledBack false): rolling back to it puts the last
// release known to serve back in place, whatever runs now.
func LastHealthy() RollbackTarget { return RollbackTarget{kind: "last-healthy"} }

// PreviousHealthy targets the newest release before the active one that
// served healthily and was not rolled back from: what to go back to when
// the active release serves but is wrong.
func PreviousHealthy() RollbackTarget { return RollbackTarget{kind: "previous-healthy"} }

// ToRelease targets a release by ID.
func ToRelease(id string) RollbackTarget { return RollbackTarget{kind: "id", id: id} }

// String describes the target ("R3", "previous", "last-healthy", "previous-healthy").
func (t RollbackTarget) String() string {
	if t.kind == "id" {
		return t.id
	}
	return t.kind
}

// resolveTarget finds the release a rollback copies.
func (a *AppClient) resolveTarget(ctx context.Context, app *appDoc, t RollbackTarget) (*releaseDoc, error) {
	switch t.kind {
	case "id":
		return a.c.loadRelease(ctx, a.name, t.id)
	case "last-healthy":
		if app.LastHealthy == "" {
			return nil, fmt.Errorf("%w: app %q has no release that served healthily", providers.ErrNotFound, a.name)
		}
		return a.c.loadRelease(ctx, a.name, app.LastHealthy)
	case "previous", "previous-healthy":
	default:
		return nil, providers.Invalidf("empty rollback target; use Previous(), LastHealthy(), PreviousHealthy() or ToRelease(id)")
	}
	if app.Active == "" {
		return nil, fmt.Errorf("%w: app %q has no active release to roll back from", providers.ErrNotFound, a.name)
	}
	eligible := func(r *releaseDoc) bool {
		if r.Promoted.IsZero() || r.Failed || r.Canceled {
			return false
		}
		return t.kind != "previous-healthy" || r.Healthy && !r.RolledBack
	}
	// The releases that were active before, newest first, make the answer
	// independent of how long the history is.
	for _, id := range app.History {
		if id == app.Active {
			continue
		}
		r, err := a.c.loadRelease(ctx, a.name, id)
		if errors.Is(err, providers.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if eligible(r) {
			return r, nil
		}
	}
	// Beyond the recorded history, scan the releases.
	activeSeq, _ := parseReleaseID(app.Active)
	for d, err := range a.c.list(ctx, releasePrefix(a.name), true) {
		if err != nil {
			return nil, err
		}
		r, err := decodeRelease(d)
		if err != nil {
			return nil, err
		}
		if r.Seq >= activeSeq || slices.Contains(app.History, releaseID(r.Seq)) || !eligible(r) {
			continue
		}
		return r, nil
	}
	what := "previous"
	if t.kind == "previous-healthy" {
		what = "healthy"
	}
	return nil, fmt.Errorf("%w: app %q has no %s release before %s", providers.ErrNotFound, a.name, what, app.Active)
}

// Rollback creates a new release copying the target (recording it as the
// parent) and promotes it, in one call. It returns the new release once it
// is active.
func (a *AppClient) Rollback(ctx context.Context, target RollbackTarget, opts *DeployOptions) (*Release, error) {
	app, sel, err := a.load(ctx)
	if err != nil {
		return nil, deployErr(a.name, "", StepPrepare, err)
	}
	src, err := a.resolveTarget(ctx, app, target)
	if err != nil {
		return nil, deployErr(a.name, "", StepPrepare, err)
	}
	// The copy must fit the scheduler's bounds as they are now.
	if err := src.validate(sel.limits()); err != nil {
		return nil, deployErr(a.name, "", StepPrepare, fmt.Errorf("release %s cannot be restored: %w", releaseID(src.Seq), err))
	}
	// The target's image must still exist: resolve its pinned digest.
	if _, err := sel.registry.Resolve(ctx, src.Image.Ref()); err != nil {
		return nil, deployErr(a.name, "", StepResolve, fmt.Errorf("image %s of %s: %w", src.Image.Ref(), releaseID(src.Seq), err))
	}
	doc := &releaseDoc{
		App: a.name, Parent: releaseID(src.Seq), ImageRef: src.ImageRef, Image: src.Image, Registry: src.Registry,
		Env: maps.Clone(src.Env), Processes: slices.Clone(src.Processes),
		Description: fmt.Sprintf("rollback to %s", releaseID(src.Seq)),
	}
	if err := a.c.saveNewRelease(ctx, doc); err != nil {
		return nil, deployErr(a.name, "", StepCreate, err)
	}
	id := releaseID(doc.Seq)
	a.c.emit(Event{Type: EventRollback, App: a.name, Release: id, Message: fmt.Sprintf("rolling back to %s as %s", releaseID(src.Seq), id)})
	rel, err := a.promoteAndWait(ctx, id, opts)
	if err != nil {
		return nil, err
	}
	// The release rolled back from no longer counts as last healthy.
	if err := a.c.updateRelease(ctx, a.name, app.Active, func(r *releaseDoc) { r.RolledBack = true }); err != nil {
		a.c.log.Warn("convox: mark release rolled back", "app", a.name, "release", app.Active, "err", err)
	}
	a.c.notify(ctx, providers.Notification{Kind: providers.NotifyRollback, App: a.name, Release: id, Previous: app.Active,
		Summary: fmt.Sprintf("rolled back from %s to %s (a copy of %s)", app.Active, id, releaseID(src.Seq))})
	return rel, nil
}
