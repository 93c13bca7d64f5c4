package local

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
)

// CancelRollout stops an in-flight or pending rollout. New slots that are
// not serving yet are stopped and the old ones keep serving; a rollout
// already switching traffic finishes and is then rolled back to what ran
// before it. Finished or unknown rollouts are left alone.
func (s *Scheduler) CancelRollout(ctx context.Context, app, rolloutID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[app]
	if a == nil || a.deleted {
		return nil
	}
	switch {
	case a.pending != nil && a.pending.ID == rolloutID:
		a.pending.State, a.pending.Reason = providers.RolloutCanceled, "canceled"
		a.pending = nil
		return s.save(a)
	case a.cur != nil && a.cur.ID == rolloutID && a.cur.canceled == "":
		a.cur.canceled = "canceled"
		if !a.cur.phase2 {
			a.cur.cancel()
		}
	}
	return nil
}

// Delete stops every task of the app (draining its targets) and forgets
// it. Deleting a missing app returns nil.
func (s *Scheduler) Delete(ctx context.Context, app string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	a := s.apps[app]
	if a == nil {
		s.mu.Unlock()
		return s.forget(app)
	}
	if a.deleted {
		s.mu.Unlock()
		<-a.loopDone
		return nil
	}
	a.deleted = true
	if a.cur != nil && !a.cur.phase2 {
		a.cur.cancel()
	}
	a.pending = nil
	select {
	case a.wake <- struct{}{}:
	default:
	}
	s.mu.Unlock()
	<-a.loopDone

	s.mu.Lock()
	var slots []*slot
	for _, ss := range a.slots {
		slots = append(slots, ss...)
	}
	slots = append(slots, a.starting...)
	if a.staged != nil {
		a.staged.cancel()
		slots = append(slots, a.staged.all...)
	}
	s.mu.Unlock()
	s.stopSlots(slots)
	s.stopOneOffs(app)

	s.mu.Lock()
	delete(s.apps, app)
	s.mu.Unlock()
	return s.forget(app)
}

// forget removes an app's one-off tasks and persisted state.
func (s *Scheduler) forget(app string) error {
	s.mu.Lock()
	delete(s.oneOff, app)
	for k := range s.tokens {
		if strings.HasPrefix(k, app+"\x00") {
			delete(s.tokens, k)
		}
	}
	s.mu.Unlock()
	if err := os.Remove(s.appFile(app)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fsError("delete app state", err)
	}
	return nil
}

func (s *Scheduler) stopOneOffs(app string) {
	s.mu.Lock()
	var ps []*proc
	for _, o := range s.oneOff[app] {
		if o.p != nil {
			ps = append(ps, o.p)
		}
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.terminate(s.opts.grace)
	}
}

// RunTask starts a one-off process: spec.Command, else the process's
// command, else the image's. Its output goes to the app's logs under the
// task ID; it is never restarted. The same Token returns the same task.
func (s *Scheduler) RunTask(ctx context.Context, spec providers.RunSpec) (providers.Task, error) {
	if err := ctx.Err(); err != nil {
		return providers.Task{}, err
	}
	if err := spec.Validate(s.Limits()); err != nil {
		return providers.Task{}, err
	}
	override := spec.Command
	if len(override) == 0 {
		override = spec.Process.Command
	}
	argv, err := imageCommand(spec.Image, override)
	if err != nil {
		return providers.Task{}, err
	}
	tokenKey := spec.App + "\x00" + spec.Token
	s.mu.Lock()
	if spec.Token != "" {
		if id := s.tokens[tokenKey]; id != "" && s.oneOff[spec.App][id] != nil {
			t := s.oneOff[spec.App][id].task
			s.mu.Unlock()
			return t, nil
		}
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return providers.Task{}, fmt.Errorf("scheduler is closed: %w", providers.ErrUnavailable)
	}
	if s.isLocalImage(spec.Image) {
		if _, err := s.reg.v1Image(spec.Image); err != nil {
			return providers.Task{}, err
		}
	}
	ss := &slotSpec{app: spec.App, release: spec.Release, image: spec.Image, proc: spec.Process}
	ss.proc.Command = argv
	cmd, err := s.prepare(ctx, ss)
	if err != nil {
		return providers.Task{}, err
	}
	port, release, err := s.taskPort(spec.Process)
	if err != nil {
		return providers.Task{}, err
	}
	cmd.env = processEnv(spec.Image, spec.Env, port)
	id := spec.Process.Name + "-" + randomHex(5)
	p, err := startProc(cmd, s.pidDir, spec.App, id, s.logLine(spec.App, id, spec.Process.Name, spec.Release))
	if err != nil {
		release()
		return providers.Task{}, err
	}
	o := &oneOffTask{p: p, task: providers.Task{ID: id, App: spec.App, Process: spec.Process.Name, Release: spec.Release, State: providers.TaskRunning, Started: p.started}}
	if port > 0 {
		o.task.Address = "127.0.0.1:" + strconv.Itoa(port)
	}
	s.mu.Lock()
	if s.oneOff[spec.App] == nil {
		s.oneOff[spec.App] = map[string]*oneOffTask{}
	}
	s.oneOff[spec.App][id] = o
	if spec.Token != "" {
		s.tokens[tokenKey] = id
	}
	t := o.task
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-p.exited
		release()
		reason, code := p.exit()
		s.mu.Lock()
		defer s.mu.Unlock()
		o.task.State, o.task.Stopped, o.task.ExitCode, o.task.Reason = providers.TaskStopped, time.Now(), code, reason
		o.p = nil
		s.trimOneOffs(spec.App)
	}()
	return t, nil
}

// trimOneOffs forgets the oldest stopped one-off tasks beyond the limit;
// s.mu is held.
func (s *Scheduler) trimOneOffs(app string) {
	m := s.oneOff[app]
	if len(m) <= keepOneOffs {
		return
	}
	var stopped []*oneOffTask
	for _, o := range m {
		if o.task.State == providers.TaskStopped {
			stopped = append(stopped, o)
		}
	}
	slices.SortFunc(stopped, func(x, y *oneOffTask) int { return x.task.Stopped.Compare(y.task.Stopped) })
	for _, o := range stopped[:max(0, min(len(stopped), len(m)-keepOneOffs))] {
		delete(m, o.task.ID)
	}
}

// GetTask returns a one-off or service task, running or recently stopped.
func (s *Scheduler) GetTask(ctx context.Context, app, id string) (providers.Task, error) {
	if err := ctx.Err(); err != nil {
		return providers.Task{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.oneOff[app][id]; o != nil {
		return o.task, nil
	}
	if a := s.apps[app]; a != nil {
		for _, t := range s.status(a).Tasks {
			if t.ID == id {
				return t, nil
			}
		}
	}
	return providers.Task{}, fmt.Errorf("task %q of app %q: %w", id, app, providers.ErrNotFound)
}

// StopTask stops a running task (SIGTERM, then SIGKILL after the grace
// period) and waits for it. A service task is then replaced by its slot.
// Stopped and unknown tasks are left alone.
func (s *Scheduler) StopTask(ctx context.Context, app, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	var p *proc
	if o := s.oneOff[app][id]; o != nil {
		p = o.p
	} else if a := s.apps[app]; a != nil {
		var staged []*slot
		if a.staged != nil {
			staged = a.staged.all
		}
		for _, ss := range [][]*slot{a.starting, staged, slices.Concat(slices.Collect(maps.Values(a.slots))...)} {
			for _, sl := range ss {
				if sl.task != nil && sl.task.ID == id {
					p = sl.p
				}
			}
		}
	}
	s.mu.Unlock()
	if p != nil {
		p.terminate(s.opts.grace)
	}
	return nil
}

// appState is the persisted state of an app.
type appState struct {
	App      string              `json:"app"`
	Release  string              `json:"release,omitempty"`
	Active   *storedDesired      `json:"active,omitempty"`
	Seq      int                 `json:"seq"`
	Rollouts []providers.Rollout `json:"rollouts"`
}

func (s *Scheduler) appFile(app string) string {
	return filepath.Join(s.dir, "apps", safeName(app)+".json")
}

// save persists the app's state; s.mu is held.
func (s *Scheduler) save(a *app) error {
	st := appState{App: a.name, Release: a.release, Active: (*storedDesired)(a.active), Seq: a.seq, Rollouts: []providers.Rollout{}}
	for _, r := range a.rollouts {
		st.Rollouts = append(st.Rollouts, r.Rollout)
	}
	if err := writeJSONAtomic(s.appFile(a.name), st); err != nil {
		return fsError("save app state", err)
	}
	return nil
}

// restore kills the processes a previous run left behind, reloads every
// app and starts converging each to its last completed state. Rollouts that
// were in flight are reported as failed: interrupted.
func (s *Scheduler) restore() error {
	killStaleProcs(s.pidDir, s.log)
	files, err := os.ReadDir(filepath.Join(s.dir, "apps"))
	if err != nil {
		return fsError("read scheduler state", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".json") {
			continue
		}
		var st appState
		file := filepath.Join(s.dir, "apps", f.Name())
		err := readJSON(file, &st)
		if err == nil && (st.App == "" || s.appFile(st.App) != file) {
			err = fmt.Errorf("it holds app %q, not the app its name is of", st.App)
		}
		if err != nil {
			name, ok := appOfFile(f.Name())
			if !ok {
				return fmt.Errorf("scheduler state file %s is unreadable and its name is not an app's: %w: %w", file, providers.ErrInvalid, err)
			}
			a := s.newApp(name)
			a.corrupt = fmt.Errorf("scheduler state file %s of app %q is corrupt (%v): the app's processes were not started; deploy the app again to replace it (the file is then kept as %s.corrupt): %w",
				file, name, err, f.Name(), providers.ErrInvalid)
			s.log.Error("scheduler state of an app is corrupt; its processes were not started", "app", name, "file", file, "err", err)
			continue
		}
		a := s.newApp(st.App)
		a.release, a.active, a.seq = st.Release, (*providers.Desired)(st.Active), st.Seq
		for _, r := range st.Rollouts {
			if r.State == providers.RolloutInProgress {
				r.State, r.Reason = providers.RolloutFailed, "interrupted: the rack stopped before the rollout finished"
			}
			a.rollouts = append(a.rollouts, &rolloutRec{Rollout: r})
		}
		if a.active != nil {
			d := *a.active
			d.Token = ""
			s.enqueue(a, d, true)
		}
		if err := s.save(a); err != nil {
			return err
		}
	}
	return nil
}

// appOfFile returns the app whose state file has the base name.
func appOfFile(base string) (string, bool) {
	name, ok := strings.CutSuffix(base, ".json")
	if !ok || name == "" {
		return "", false
	}
	if h, isHex := strings.CutPrefix(name, "~"); isHex {
		b, err := hex.DecodeString(h)
		if err != nil {
			return "", false
		}
		name = string(b)
	}
	return name, safeName(name) == strings.TrimSuffix(base, ".json")
}

// setAsideCorrupt keeps an app's corrupt state file as <file>.corrupt, so
// that a new state can replace it; s.mu is held.
func (s *Scheduler) setAsideCorrupt(a *app) error {
	file := s.appFile(a.name)
	if err := os.Rename(file, file+".corrupt"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fsError("set aside the corrupt state of app "+a.name, err)
	}
	s.log.Warn("replacing the corrupt scheduler state of an app", "app", a.name, "kept as", file+".corrupt")
	a.corrupt = nil
	return nil
}

// close stops every process gracefully, keeping the persisted state so
// that a reopened rack starts them again.
func (s *Scheduler) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closing)
	var loops []chan struct{}
	for _, a := range s.apps {
		if a.cur != nil && !a.cur.phase2 {
			a.cur.cancel()
		}
		loops = append(loops, a.loopDone)
	}
	s.mu.Unlock()
	for _, l := range loops {
		<-l
	}
	s.mu.Lock()
	var slots []*slot
	var apps []string
	for _, a := range s.apps {
		for _, ss := range a.slots {
			slots = append(slots, ss...)
		}
		slots = append(slots, a.starting...)
		if a.staged != nil {
			a.staged.cancel()
			slots = append(slots, a.staged.all...)
		}
	}
	for name := range s.oneOff {
		apps = append(apps, name)
	}
	s.mu.Unlock()
	s.stopSlots(slots)
	for _, name := range apps {
		s.stopOneOffs(name)
	}
	s.wg.Wait()
}
