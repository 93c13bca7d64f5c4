package fake

import (
	"context"
	"fmt"

	"github.com/convox-go/convox/providers"
)

var _ providers.Stager = (*Scheduler)(nil)

// discardStage ends the staged rollout and stops its tasks; r.mu is held.
func (a *app) discardStage(r *Rack, state providers.RolloutState, reason string) {
	ro := a.staged
	ro.State = state
	ro.Reason = reason
	why := fmt.Sprintf("%s %s: %s", ro.ID, state, reason)
	a.stopLive(r, func(t *task) (bool, *int, string) { return t.rollout == ro, nil, why })
	a.staged = nil
}

// Stage implements providers.Stager. The staged rollout advances on
// observation like any other (start, run), beside the serving one, and is
// completed once its tasks run and its bound targets are healthy; it never
// drains or stops serving tasks. Its processes appear in
// AppStatus.Processes after the serving ones of the same name. Applying a
// new serving release discards the stage ("superseded"), as does
// CancelRollout of the staged rollout's ID.
func (s *Scheduler) Stage(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	c := Call{Provider: "Scheduler", Method: "Stage", Key: d.App, Args: []any{d}}
	return do(s.r, ctx, c, func(ctx context.Context) (providers.Rollout, error) {
		if h := s.r.currentHooks().Scheduler.Stage; h != nil {
			return h(ctx, d, s.stage)
		}
		return s.stage(ctx, d)
	})
}

func (s *Scheduler) stage(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return s.applyTo(ctx, d, true)
}

// PromoteStage implements providers.Stager. The staged rollout becomes the
// serving side's in-flight rollout, in progress again, keeping its tasks:
// once they all run healthy, the next observation drains the replaced
// tasks' targets and the one after stops those tasks and completes it, so
// AppStatus.Release becomes the staged release on the second observation
// after PromoteStage. An in-flight serving rollout is canceled
// ("superseded").
func (s *Scheduler) PromoteStage(ctx context.Context, appName string) error {
	c := Call{Provider: "Scheduler", Method: "PromoteStage", Key: appName, Args: []any{appName}}
	return do0(s.r, ctx, c, func(ctx context.Context) error {
		if h := s.r.currentHooks().Scheduler.PromoteStage; h != nil {
			return h(ctx, appName, s.promoteStage)
		}
		return s.promoteStage(ctx, appName)
	})
}

func (s *Scheduler) promoteStage(ctx context.Context, appName string) error {
	if err := s.r.enter(ctx, "Scheduler.PromoteStage"); err != nil {
		return err
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.apps[appName]
	if !ok || a.staged == nil {
		return fmt.Errorf("fake scheduler: promote the stage of %s: nothing staged: %w", appName, providers.ErrNotFound)
	}
	ro := a.staged
	a.staged = nil
	if cur := a.current; cur != nil && cur.State == providers.RolloutInProgress {
		cur.State = providers.RolloutCanceled
		cur.Reason = "superseded by promoted " + ro.ID
	}
	ro.State = providers.RolloutInProgress
	a.current = ro
	return nil
}

// DiscardStage implements providers.Stager: the staged rollout is
// canceled ("discarded") and its tasks stop at once.
func (s *Scheduler) DiscardStage(ctx context.Context, appName string) error {
	c := Call{Provider: "Scheduler", Method: "DiscardStage", Key: appName, Args: []any{appName}}
	return do0(s.r, ctx, c, func(ctx context.Context) error {
		if h := s.r.currentHooks().Scheduler.DiscardStage; h != nil {
			return h(ctx, appName, s.discardStage)
		}
		return s.discardStage(ctx, appName)
	})
}

func (s *Scheduler) discardStage(ctx context.Context, appName string) error {
	if err := s.r.enter(ctx, "Scheduler.DiscardStage"); err != nil {
		return err
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.apps[appName]; ok && a.staged != nil {
		a.discardStage(r, providers.RolloutCanceled, "discarded")
	}
	return nil
}
