package fake

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/convox-go/convox/providers"
)

// Scheduler is the rack's providers.Scheduler; it also implements
// providers.BatchStatus, providers.Canceler, providers.TaskRunner,
// providers.Stager and providers.BindingAcceptor (it accepts
// providers.BindingLocal bindings of any balancer of the rack, the default
// one and those of Options.Balancers, and a process may be bound to routes
// of several at once). See the package documentation for the step model of
// its rollouts.
type Scheduler struct{ r *Rack }

var (
	_ providers.Scheduler       = (*Scheduler)(nil)
	_ providers.BatchStatus     = (*Scheduler)(nil)
	_ providers.Canceler        = (*Scheduler)(nil)
	_ providers.TaskRunner      = (*Scheduler)(nil)
	_ providers.BindingAcceptor = (*Scheduler)(nil)
)

// History kept per app: the newest rollouts and stopped tasks reported by
// Status.
const (
	KeptRollouts     = 10
	KeptStoppedTasks = 20
)

// Rollout steps: the number of steps a rollout has completed.
const (
	stepAccepted = iota
	stepStarted
	stepRunning
	stepDraining
)

type app struct {
	name       string
	rollouts   []*rollout // newest first, trimmed to KeptRollouts
	tokens     map[string]*rollout
	current    *rollout // what the app converges to; nil when nothing
	active     *rollout // the last completed rollout
	staged     *rollout // the staged release (Stager), if any
	live       []*task  // pending and running service tasks
	stopped    []*task  // stopped service tasks, oldest first
	rolloutSeq int
}

type rollout struct {
	providers.Rollout
	d       providers.Desired
	step    int
	crashes int
}

type task struct {
	providers.Task
	seq      int
	rollout  *rollout // nil for a one-off task
	bindings []providers.Binding
	draining bool
	command  []string
	image    providers.Image
	// one-off tasks
	script *exitScript
	crash  bool
}

type oneoffs struct {
	tasks  map[string]*task
	tokens map[string]*task
}

func (t *task) view() providers.Task {
	v := t.Task
	if t.ExitCode != nil {
		c := *t.ExitCode
		v.ExitCode = &c
	}
	return v
}

// AcceptsBinding implements providers.BindingAcceptor: it accepts
// providers.BindingLocal.
func (s *Scheduler) AcceptsBinding(kind string) bool { return kind == providers.BindingLocal }

// validate checks d with the shared rules and the rack's limits
// (providers.Desired.Validate), then what the fake requires beyond them: a
// token, a pinned image, and bindings of accepted kinds to the rack's
// balancers for processes with a port.
func (s *Scheduler) validate(d providers.Desired) error {
	if err := d.Validate(s.Limits()); err != nil {
		return err
	}
	if d.Token == "" {
		return providers.Invalidf("fake scheduler: apply %s: a token is required", d.App)
	}
	if d.Image.Digest == "" {
		return providers.Invalidf("fake scheduler: apply %s: the image is not pinned by digest", d.App)
	}
	ports := map[string]int{}
	for _, p := range d.Processes {
		ports[p.Name] = p.Port
	}
	for name, bs := range d.Bindings {
		if ports[name] == 0 {
			return providers.Invalidf("fake scheduler: apply %s: binding for process %q, which has no port", d.App, name)
		}
		for _, b := range bs {
			if !s.AcceptsBinding(b.Kind) {
				return providers.Invalidf("fake scheduler: apply %s: binding kind %q is not accepted", d.App, b.Kind)
			}
			if s.r.balancers[b.Balancer] == nil {
				return providers.Invalidf("fake scheduler: apply %s: binding of balancer %q, which is not a balancer of the rack", d.App, b.Balancer)
			}
		}
	}
	return nil
}

// Apply implements providers.Scheduler. Bindings must name target sets
// that exist in a balancer of the rack (ErrInvalid otherwise). Every Apply
// with a new token is a rollout that replaces the app's tasks, also when
// only the bindings changed (as an ECS service update with new load
// balancers does): the new tasks join the new bindings and the old ones
// keep serving their bindings until the drain step, so a route the new
// bindings keep never lacks a healthy target.
func (s *Scheduler) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	c := Call{Provider: "Scheduler", Method: "Apply", Key: d.App, Args: []any{d}}
	return do(s.r, ctx, c, func(ctx context.Context) (providers.Rollout, error) {
		if h := s.r.currentHooks().Scheduler.Apply; h != nil {
			return h(ctx, d, s.apply)
		}
		return s.apply(ctx, d)
	})
}

func (s *Scheduler) apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return s.applyTo(ctx, d, false)
}

// applyTo records a rollout of d, the one path of Apply and Stage: of the
// release staged beside the serving one when staged is true, else of the
// serving release. Both validate d and its bindings, replay a known token,
// and supersede the staged rollout. A serving rollout creates the app and
// supersedes the in-flight serving rollout; a staged one needs an applied
// app and leaves the serving side alone.
func (s *Scheduler) applyTo(ctx context.Context, d providers.Desired, staged bool) (providers.Rollout, error) {
	op := "Scheduler.Apply"
	if staged {
		op = "Scheduler.Stage"
	}
	if err := s.r.enter(ctx, op); err != nil {
		return providers.Rollout{}, err
	}
	if err := s.validate(d); err != nil {
		return providers.Rollout{}, err
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkBindings(d); err != nil {
		return providers.Rollout{}, err
	}
	a, ok := r.apps[d.App]
	if !ok {
		if staged {
			return providers.Rollout{}, fmt.Errorf("fake scheduler: stage %s: app never applied: %w", d.App, providers.ErrNotFound)
		}
		a = &app{name: d.App, tokens: map[string]*rollout{}}
		r.apps[d.App] = a
	}
	if ro, ok := a.tokens[d.Token]; ok {
		return ro.Rollout, nil
	}
	ro := a.newRollout(r, d)
	if cur := a.current; !staged && cur != nil && cur.State == providers.RolloutInProgress {
		cur.State = providers.RolloutCanceled
		cur.Reason = "superseded by " + ro.ID
	}
	if a.staged != nil {
		a.discardStage(r, providers.RolloutCanceled, "superseded by "+ro.ID)
	}
	if staged {
		a.staged = ro
	} else {
		a.current = ro
	}
	return ro.Rollout, nil
}

// checkBindings checks that d's bindings name existing target sets; r.mu
// is held.
func (r *Rack) checkBindings(d providers.Desired) error {
	for name, bs := range d.Bindings {
		for _, b := range bs {
			if r.boundSet(b) == nil {
				return providers.Invalidf("fake scheduler: %s: process %q is bound to target set %q of balancer %q, which does not exist", d.App, name, b.Target, b.Balancer)
			}
		}
	}
	return nil
}

// newRollout records a new in-progress rollout of d; r.mu is held.
func (a *app) newRollout(r *Rack, d providers.Desired) *rollout {
	a.rolloutSeq++
	ro := &rollout{
		Rollout: providers.Rollout{
			ID:      fmt.Sprintf("rollout-%d", a.rolloutSeq),
			Release: d.Release,
			Token:   d.Token,
			State:   providers.RolloutInProgress,
			Started: r.now(),
		},
		d: cloneDesired(d),
	}
	a.tokens[d.Token] = ro
	a.rollouts = append([]*rollout{ro}, a.rollouts...)
	if len(a.rollouts) > KeptRollouts {
		a.rollouts = a.rollouts[:KeptRollouts]
	}
	return ro
}

func cloneDesired(d providers.Desired) providers.Desired {
	d.Env = maps.Clone(d.Env)
	d.Secret = slices.Clone(d.Secret)
	d.Processes = slices.Clone(d.Processes)
	bs := make(map[string][]providers.Binding, len(d.Bindings))
	for k, v := range d.Bindings {
		bs[k] = slices.Clone(v)
	}
	d.Bindings = bs
	return d
}

func commandOf(img providers.Image, p providers.Process, override []string) []string {
	switch {
	case len(override) > 0:
		return slices.Clone(override)
	case len(p.Command) > 0:
		return slices.Clone(p.Command)
	default:
		return append(slices.Clone(img.Entrypoint), img.Cmd...)
	}
}

// newTask creates a pending task; r.mu is held.
func (r *Rack) newTask(appName string, p providers.Process, release string, img providers.Image, command []string) *task {
	r.taskSeq++
	n := r.taskSeq
	t := &task{
		Task: providers.Task{
			ID:      fmt.Sprintf("%s-%s-%d", appName, p.Name, n),
			App:     appName,
			Process: p.Name,
			Release: release,
			State:   providers.TaskPending,
		},
		seq:     n,
		command: command,
		image:   img,
	}
	if p.Port > 0 {
		t.Address = fmt.Sprintf("10.%d.%d.%d:%d", n>>16&255, n>>8&255, n&255, p.Port)
	}
	return t
}

// crashes reports whether tasks of the release crash on start; r.mu is
// held.
func (r *Rack) crashes(release, digest string) bool {
	return anyMatch(r.crash, "", release, digest)
}

// stalls reports whether a rollout of the app stays at the start step;
// r.mu is held.
func (r *Rack) stalls(a *app, ro *rollout) bool {
	return anyMatch(r.neverConverge, a.name, ro.d.Release, ro.d.Image.Digest)
}

// stopTask stops a task; r.mu is held. code nil means unknown.
func (r *Rack) stopTask(t *task, code *int, reason string) {
	t.State = providers.TaskStopped
	t.Stopped = r.now()
	t.ExitCode = code
	t.Reason = reason
	t.draining = false
	for _, b := range t.bindings {
		r.removeTarget(b, t.Address)
	}
}

func intp(n int) *int { return &n }

// stopLive stops the app's live tasks for which stop reports true, with
// the exit code (nil when unknown) and reason it returns; r.mu is held.
func (a *app) stopLive(r *Rack, stop func(*task) (bool, *int, string)) {
	keep := a.live[:0]
	for _, t := range a.live {
		ok, code, reason := stop(t)
		if !ok {
			keep = append(keep, t)
			continue
		}
		r.stopTask(t, code, reason)
		a.stopped = append(a.stopped, t)
	}
	clear(a.live[len(keep):])
	a.live = keep
	if n := len(a.stopped) - KeptStoppedTasks; n > 0 {
		a.stopped = slices.Delete(a.stopped, 0, n)
	}
}

// unhealthy reports whether a task's targets are failing health checks.
func (r *Rack) unhealthy(t *task) bool {
	return t.State == providers.TaskRunning && len(t.bindings) > 0 && anyMatch(r.failHealth, "", t.Release, t.image.Digest)
}

// isStaged reports whether a task belongs to the app's staged release.
func (a *app) isStaged(t *task) bool { return a.staged != nil && t.rollout == a.staged }

// revert ends ro (failed or canceled): the app converges back to its last
// completed rollout, whose tasks never stopped; staged tasks stay. r.mu is
// held.
func (a *app) revert(r *Rack, ro *rollout, state providers.RolloutState, reason string) {
	ro.State = state
	ro.Reason = reason
	keep := a.active
	why := fmt.Sprintf("%s %s: %s", ro.ID, state, reason)
	a.stopLive(r, func(t *task) (bool, *int, string) {
		return (keep == nil || t.rollout != keep) && !a.isStaged(t), nil, why
	})
	for _, t := range a.live {
		t.draining = false
	}
	a.current = keep
}

// startTasks creates the pending tasks ro lacks; r.mu is held.
func (r *Rack) startTasks(a *app, ro *rollout) {
	for _, p := range ro.d.Processes {
		have := 0
		for _, t := range a.live {
			if t.rollout == ro && t.Process == p.Name {
				have++
			}
		}
		for range p.Count - have {
			t := r.newTask(a.name, p, ro.d.Release, ro.d.Image, commandOf(ro.d.Image, p, nil))
			t.rollout = ro
			if p.Port > 0 {
				t.bindings = slices.Clone(ro.d.Bindings[p.Name])
				for _, b := range t.bindings {
					r.setTarget(b, t)
				}
			}
			a.live = append(a.live, t)
		}
	}
}

// runTasks starts ro's pending tasks and returns how many crashed (and
// stopped) instead of running; r.mu is held.
func (r *Rack) runTasks(a *app, ro *rollout) int {
	crashed := 0
	pulled := r.hasImage(ro.d.Image)
	crash := r.crashes(ro.d.Release, ro.d.Image.Digest)
	a.stopLive(r, func(t *task) (bool, *int, string) {
		if t.rollout != ro || t.State != providers.TaskPending {
			return false, nil, ""
		}
		t.Started = r.now()
		if !pulled {
			crashed++
			return true, nil, "CannotPullContainerError: " + ro.d.Image.Ref() + ": not found"
		}
		t.State = providers.TaskRunning
		r.taskLog(t, "starting "+startLine(t))
		if crash {
			crashed++
			r.taskLog(t, "panic: boom")
			return true, intp(2), "exit status 2"
		}
		return false, nil, ""
	})
	ro.crashes += crashed
	return crashed
}

// anyUnhealthy reports whether a task of ro fails its health checks.
func (r *Rack) anyUnhealthy(a *app, ro *rollout) bool {
	return slices.ContainsFunc(a.live, func(t *task) bool { return t.rollout == ro && r.unhealthy(t) })
}

// breakerTripped reports whether ro has crashed often enough to fail.
func (r *Rack) breakerTripped(ro *rollout) bool {
	return r.breaker > 0 && ro.crashes >= r.breaker
}

func breakerReason(ro *rollout) string {
	return fmt.Sprintf("circuit breaker: %d tasks failed to start", ro.crashes)
}

// advance moves the app's in-flight rollout, and its staged rollout, one
// step each; r.mu is held.
func (r *Rack) advance(a *app) {
	r.advanceServing(a)
	r.advanceStaged(a)
}

// startStep moves ro through the steps every rollout shares: accepted
// (start its tasks unless it stalls) and started (run them; when some
// crash, start again, and when the circuit breaker trips, fail with its
// reason). It reports whether ro was at one of those steps.
func (r *Rack) startStep(a *app, ro *rollout, fail func(reason string)) bool {
	switch ro.step {
	case stepAccepted:
		if !r.stalls(a, ro) {
			r.startTasks(a, ro)
			ro.step = stepStarted
		}
		return true
	case stepStarted:
		if r.runTasks(a, ro) == 0 {
			ro.step = stepRunning
			return true
		}
		ro.step = stepAccepted
		if r.breakerTripped(ro) {
			fail(breakerReason(ro))
		}
		return true
	}
	return false
}

func (r *Rack) advanceServing(a *app) {
	ro := a.current
	if ro == nil || ro.State != providers.RolloutInProgress {
		return
	}
	if r.startStep(a, ro, func(reason string) { a.revert(r, ro, providers.RolloutFailed, reason) }) {
		return
	}
	switch ro.step {
	case stepRunning:
		if r.anyUnhealthy(a, ro) {
			return
		}
		for _, t := range a.live {
			if t.rollout != ro && !a.isStaged(t) {
				t.draining = true
			}
		}
		ro.step = stepDraining

	case stepDraining:
		a.stopLive(r, func(t *task) (bool, *int, string) {
			return t.rollout != ro && !a.isStaged(t), intp(0), "scaled down by " + ro.ID
		})
		ro.State = providers.RolloutCompleted
		a.active = ro
	}
}

func (r *Rack) advanceStaged(a *app) {
	ro := a.staged
	if ro == nil || ro.State != providers.RolloutInProgress {
		return
	}
	if r.startStep(a, ro, func(reason string) { a.discardStage(r, providers.RolloutFailed, reason) }) {
		return
	}
	if ro.step == stepRunning && !r.anyUnhealthy(a, ro) {
		ro.State = providers.RolloutCompleted
	}
}

func startLine(t *task) string {
	if len(t.command) == 0 {
		return t.Process
	}
	return strings.Join(t.command, " ")
}

// processStatus counts the live tasks of ro by process, for every process
// of its desired state, in name order.
func (a *app) processStatus(ro *rollout) []providers.ProcessStatus {
	var out []providers.ProcessStatus
	for _, p := range ro.d.Processes {
		ps := providers.ProcessStatus{Name: p.Name, Release: ro.Release, Desired: p.Count}
		for _, t := range a.live {
			if t.rollout != ro || t.Process != p.Name {
				continue
			}
			switch t.State {
			case providers.TaskRunning:
				ps.Running++
			case providers.TaskPending:
				ps.Pending++
			}
		}
		out = append(out, ps)
	}
	return out
}

// status builds one observation of the app; r.mu is held.
func (r *Rack) status(a *app) providers.AppStatus {
	st := providers.AppStatus{App: a.name, Rollouts: []providers.Rollout{}, Processes: []providers.ProcessStatus{}, Tasks: []providers.Task{}}
	if a.active != nil {
		st.Release = a.active.Release
	}
	for _, ro := range a.rollouts {
		st.Rollouts = append(st.Rollouts, ro.Rollout)
	}
	// Serving processes: those of the rollout the app converges to, and
	// any other with live tasks (being removed), at zero.
	serving := []providers.ProcessStatus{}
	release := ""
	if a.current != nil {
		serving = a.processStatus(a.current)
		release = a.current.Release
	}
	for _, t := range a.live {
		if !a.isStaged(t) && !slices.ContainsFunc(serving, func(ps providers.ProcessStatus) bool { return ps.Name == t.Process }) {
			serving = append(serving, providers.ProcessStatus{Name: t.Process, Release: release})
		}
	}
	st.Processes = append(st.Processes, serving...)
	if a.staged != nil {
		st.Processes = append(st.Processes, a.processStatus(a.staged)...)
	}
	slices.SortStableFunc(st.Processes, func(x, y providers.ProcessStatus) int { return cmp.Compare(x.Name, y.Name) })
	live := slices.Clone(a.live)
	slices.SortFunc(live, func(x, y *task) int {
		return cmp.Or(cmp.Compare(x.Process, y.Process), cmp.Compare(x.seq, y.seq))
	})
	for _, t := range live {
		st.Tasks = append(st.Tasks, t.view())
	}
	for i := len(a.stopped) - 1; i >= 0; i-- {
		st.Tasks = append(st.Tasks, a.stopped[i].view())
	}
	return st
}

// Status implements providers.Scheduler. Each call first advances the
// app's in-flight rollout one step. ProcessStatus counts only the tasks of
// the rollout the app converges to; AppStatus.Tasks lists pending and
// running tasks by process then age, then up to KeptStoppedTasks stopped
// ones, most recently stopped first. One-off tasks are not listed.
func (s *Scheduler) Status(ctx context.Context, appName string) (providers.AppStatus, error) {
	c := Call{Provider: "Scheduler", Method: "Status", Key: appName, Args: []any{appName}}
	return do(s.r, ctx, c, func(ctx context.Context) (providers.AppStatus, error) {
		if h := s.r.currentHooks().Scheduler.Status; h != nil {
			return h(ctx, appName, s.status)
		}
		return s.status(ctx, appName)
	})
}

func (s *Scheduler) status(ctx context.Context, appName string) (providers.AppStatus, error) {
	if err := s.r.enter(ctx, "Scheduler.Status"); err != nil {
		return providers.AppStatus{}, err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	a, ok := s.r.apps[appName]
	if !ok {
		return providers.AppStatus{}, fmt.Errorf("fake scheduler: status of app %q: %w", appName, providers.ErrNotFound)
	}
	s.r.advance(a)
	return s.r.status(a), nil
}

// StatusMany implements providers.BatchStatus. Like Status, it advances
// the in-flight rollout of each app it names, once even if named twice.
func (s *Scheduler) StatusMany(ctx context.Context, apps []string) (map[string]providers.AppStatus, error) {
	c := Call{Provider: "Scheduler", Method: "StatusMany", Key: strings.Join(apps, ","), Args: []any{slices.Clone(apps)}}
	return do(s.r, ctx, c, func(ctx context.Context) (map[string]providers.AppStatus, error) {
		if h := s.r.currentHooks().Scheduler.StatusMany; h != nil {
			return h(ctx, apps, s.statusMany)
		}
		return s.statusMany(ctx, apps)
	})
}

func (s *Scheduler) statusMany(ctx context.Context, apps []string) (map[string]providers.AppStatus, error) {
	if err := s.r.enter(ctx, "Scheduler.StatusMany"); err != nil {
		return nil, err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	out := map[string]providers.AppStatus{}
	for _, name := range apps {
		a, ok := s.r.apps[name]
		if _, seen := out[name]; !ok || seen {
			continue
		}
		s.r.advance(a)
		out[name] = s.r.status(a)
	}
	return out, nil
}

// Delete implements providers.Scheduler; it also stops the app's one-off
// tasks.
func (s *Scheduler) Delete(ctx context.Context, appName string) error {
	c := Call{Provider: "Scheduler", Method: "Delete", Key: appName, Args: []any{appName}}
	return do0(s.r, ctx, c, func(ctx context.Context) error {
		if h := s.r.currentHooks().Scheduler.Delete; h != nil {
			return h(ctx, appName, s.delete)
		}
		return s.delete(ctx, appName)
	})
}

func (s *Scheduler) delete(ctx context.Context, appName string) error {
	if err := s.r.enter(ctx, "Scheduler.Delete"); err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if a, ok := s.r.apps[appName]; ok {
		a.stopLive(s.r, func(*task) (bool, *int, string) { return true, nil, "app deleted" })
		delete(s.r.apps, appName)
	}
	delete(s.r.oneoffs, appName)
	return nil
}

// CancelRollout implements providers.Canceler: the rollout becomes
// canceled, its tasks stop and the app keeps running its last completed
// rollout's tasks. Canceling the staged rollout discards the stage.
func (s *Scheduler) CancelRollout(ctx context.Context, appName, rolloutID string) error {
	c := Call{Provider: "Scheduler", Method: "CancelRollout", Key: appName, Args: []any{appName, rolloutID}}
	return do0(s.r, ctx, c, func(ctx context.Context) error {
		if h := s.r.currentHooks().Scheduler.CancelRollout; h != nil {
			return h(ctx, appName, rolloutID, s.cancelRollout)
		}
		return s.cancelRollout(ctx, appName, rolloutID)
	})
}

func (s *Scheduler) cancelRollout(ctx context.Context, appName, rolloutID string) error {
	if err := s.r.enter(ctx, "Scheduler.CancelRollout"); err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	a, ok := s.r.apps[appName]
	switch {
	case !ok:
	case a.staged != nil && a.staged.ID == rolloutID && a.staged.State == providers.RolloutInProgress:
		a.discardStage(s.r, providers.RolloutCanceled, "canceled")
	case a.current != nil && a.current.ID == rolloutID && a.current.State == providers.RolloutInProgress:
		a.revert(s.r, a.current, providers.RolloutCanceled, "canceled")
	}
	return nil
}
