package local

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/convox-go/convox/providers"
)

// stageRec is a release running beside an app's serving tasks.
type stageRec struct {
	rec    *rolloutRec
	slots  map[string][]*slot // by process
	all    []*slot
	cancel context.CancelFunc
}

// Stage runs d's processes beside the app's serving tasks, attached to
// d.Bindings (typically a target set of weight zero), without touching
// the serving tasks; staging again replaces the staged release. The
// returned rollout completes once every staged task is healthy. A staged
// release is not persisted: a reopened rack runs the serving release only.
func (s *Scheduler) Stage(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return s.apply(ctx, d, true)
}

// stage records a staged rollout of d, replacing the app's staged release,
// and starts its tasks; d is valid and s.mu is held.
func (s *Scheduler) stage(a *app, d providers.Desired) providers.Rollout {
	old := a.staged
	a.seq++
	rec := &rolloutRec{
		Rollout: providers.Rollout{ID: "r" + strconv.Itoa(a.seq), Release: d.Release, Token: d.Token, State: providers.RolloutInProgress, Started: time.Now()},
		desired: d,
	}
	a.rollouts = slices.Insert(a.rollouts, 0, rec)
	if len(a.rollouts) > keepRollouts {
		a.rollouts = a.rollouts[:keepRollouts]
	}
	st := &stageRec{rec: rec, slots: map[string][]*slot{}}
	for _, p := range d.Processes {
		spec := &slotSpec{app: a.name, release: d.Release, image: d.Image, proc: p, env: d.Env, hash: specHash(d, p)}
		bindings := bindingRefs(d.Bindings[p.Name])
		for range p.Count {
			sl := &slot{spec: spec, bindings: bindings, live: true, stopCh: make(chan struct{}), done: make(chan struct{})}
			st.slots[p.Name] = append(st.slots[p.Name], sl)
			st.all = append(st.all, sl)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	a.staged = st
	if old != nil {
		old.rec.canceled = "replaced by staged rollout " + rec.ID
		old.cancel()
	}
	if err := s.save(a); err != nil {
		s.log.Error("save scheduler state", "app", a.name, "err", err)
	}
	s.wg.Add(1)
	go s.runStage(runCtx, a, st, old)
	return rec.Rollout
}

// runStage starts the staged slots and waits until they are healthy.
func (s *Scheduler) runStage(ctx context.Context, a *app, st *stageRec, old *stageRec) {
	defer s.wg.Done()
	if old != nil {
		s.stopSlots(old.all)
	}
	err := func() error {
		cmds := map[*slotSpec]command{}
		for _, sl := range st.all {
			if _, ok := cmds[sl.spec]; ok {
				continue
			}
			cmd, err := s.prepare(ctx, sl.spec)
			if err != nil {
				return fmt.Errorf("process %q: %w", sl.spec.proc.Name, err)
			}
			cmds[sl.spec] = cmd
		}
		s.mu.Lock()
		for _, sl := range st.all {
			s.wg.Add(1)
			go s.supervise(a, sl, cmds[sl.spec])
		}
		s.mu.Unlock()
		return s.awaitReady(ctx, a, st.slots)
	}()
	s.mu.Lock()
	switch {
	case s.closed:
	case err == nil:
		st.rec.State = providers.RolloutCompleted
	case ctx.Err() != nil:
		st.rec.State, st.rec.Reason = providers.RolloutCanceled, cmp.Or(st.rec.canceled, "discarded")
	default:
		st.rec.State, st.rec.Reason = providers.RolloutFailed, err.Error()
	}
	if !s.closed {
		if serr := s.save(a); serr != nil {
			s.log.Error("save scheduler state", "app", a.name, "err", serr)
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.stopSlots(st.all)
		s.mu.Lock()
		if a.staged == st {
			a.staged = nil
		}
		s.mu.Unlock()
	}
}

// PromoteStage makes the staged tasks the app's serving tasks, without
// restarting them, then drains and stops the previously serving tasks;
// AppStatus.Release becomes the staged release once they have stopped.
// With nothing staged it returns ErrNotFound; while a rollout is in flight
// or the staged tasks are still starting it returns ErrConflict.
func (s *Scheduler) PromoteStage(ctx context.Context, app string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	a := s.apps[app]
	if a == nil || a.deleted || a.staged == nil {
		s.mu.Unlock()
		return fmt.Errorf("promote the staged release of app %q: nothing is staged: %w", app, providers.ErrNotFound)
	}
	st := a.staged
	if a.cur != nil || a.pending != nil {
		s.mu.Unlock()
		return fmt.Errorf("promote the staged release of app %q: a rollout is in flight: %w", app, providers.ErrConflict)
	}
	if st.rec.State == providers.RolloutInProgress && len(st.all) > 0 && !slices.ContainsFunc(st.all, func(sl *slot) bool { return !sl.ready }) {
		// Every staged task is ready (and in its target sets): the
		// rollout is complete, even if runStage has not recorded it yet.
		st.rec.State = providers.RolloutCompleted
	}
	if st.rec.State != providers.RolloutCompleted {
		id, state := st.rec.ID, st.rec.State
		s.mu.Unlock()
		return fmt.Errorf("promote the staged release of app %q: rollout %s is %s: %w", app, id, state, providers.ErrConflict)
	}
	var old []*slot
	for _, ss := range a.slots {
		old = append(old, ss...)
	}
	a.slots = map[string][]*slot{}
	for pname, ss := range st.slots {
		a.slots[pname] = ss
	}
	a.staged = nil
	a.draining = append(a.draining, old...)
	d := st.rec.desired
	a.active = &d
	if err := s.save(a); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()

	s.stopSlots(old)

	s.mu.Lock()
	defer s.mu.Unlock()
	a.draining = slices.DeleteFunc(a.draining, func(sl *slot) bool { return slices.Contains(old, sl) })
	if a.active != nil && a.active.Release == d.Release {
		a.release = d.Release
	}
	return s.save(a)
}

// DiscardStage stops the staged tasks (draining their targets first). With
// nothing staged it returns nil.
func (s *Scheduler) DiscardStage(ctx context.Context, app string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	a := s.apps[app]
	if a == nil || a.staged == nil {
		s.mu.Unlock()
		return nil
	}
	st := a.staged
	a.staged = nil
	if st.rec.State == providers.RolloutInProgress {
		st.rec.canceled = "discarded"
	}
	st.cancel()
	s.mu.Unlock()
	s.stopSlots(st.all)
	return nil
}
