package convox

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

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
			set, ok := sets[p.Name]
			if !ok {
				set = r.Live
			}
			healthy, unhealthy, err := c.routeHealth(ctx, sel, st, id, p.Name, r, set)
			if err != nil {
				return o, err
			}
			o.unhealthy = append(o.unhealthy, unhealthy...)
			o.progress.Targets += p.Count
			o.progress.Healthy += min(healthy, p.Count)
		}
	}
	return o, nil
}

// routeHealth counts the healthy targets of release id in target set set
// of process's route r, and lists its unhealthy ones.
func (c *Client) routeHealth(ctx context.Context, sel selection, st providers.AppStatus, id, process string, r routeDoc, set string) (int, []providers.TargetHealth, error) {
	b := sel.balancers[r.Balancer]
	if b == nil {
		return 0, nil, providers.Invalidf("route of process %s is on balancer %q, which the rack no longer has", process, r.Balancer)
	}
	hs, err := b.Health(ctx, r.ID)
	if err != nil {
		return 0, nil, err
	}
	// While the rollout is in flight, count only the release's own
	// targets (by task address, when the scheduler reports addresses) so
	// old tasks still serving do not count as new ones; once the
	// scheduler reports the release rolled out, every target is its.
	countAll := st.Release == id || !anyAddress(st.Tasks)
	own := map[string]bool{}
	for _, t := range st.Tasks {
		if t.Release == id && t.Process == process && t.Address != "" && t.State == providers.TaskRunning {
			own[t.Address] = true
		}
	}
	healthy := 0
	var unhealthy []providers.TargetHealth
	for _, h := range hs {
		if h.Set != set || !countAll && !own[h.Target] {
			continue
		}
		switch h.State {
		case providers.TargetHealthy:
			healthy++
		case providers.TargetUnhealthy:
			unhealthy = append(unhealthy, h)
		}
	}
	return healthy, unhealthy, nil
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
//
// Its loop is not the providers' chain, by design: a wait polls, observing
// again until the deploy's timeout whether or not the last observation
// failed, so a temporary failure is one more observation that saw nothing
// (reported as an EventRetry); retrying the failed call in the chain
// instead would only delay the next observation.
func (d *Deployment) waitFor(ctx context.Context, rel *releaseDoc, sel selection, w waitSpec) *stepError {
	b := d.c.pollBackoff()
	start := time.Now()
	limit := d.opts.Timeout
	if w.done == nil {
		limit = w.bake
	}
	var last Progress
	first := true
	unhealthyRuns := 0
	d.setStep(w.step)
	platformEvents := d.platformEvents(sel.sched) // the scheduler's own rollout events (platformevents.go)
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
			p, serr := d.verdict(obs, rel, w, &unhealthyRuns)
			if serr != nil {
				return serr
			}
			if w.done == nil && time.Since(start) >= w.bake {
				return nil
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

// verdict judges one observation of a wait that is not done yet: it fails
// fast on a failed rollout, crash-looping or early-exiting tasks, targets
// unhealthy in *unhealthyRuns observations in a row (which it counts), and
// during a bake on any unhealthy target; otherwise it returns the progress.
func (d *Deployment) verdict(obs observation, rel *releaseDoc, w waitSpec, unhealthyRuns *int) (Progress, *stepError) {
	p := obs.progress
	if r := obs.rollout; r != nil && (r.State == providers.RolloutFailed || r.State == providers.RolloutCanceled) {
		return p, failStep(w.step, providers.ErrUnhealthy, "rollout %s: %s", r.State, r.Reason)
	}
	crashed := d.crashes(obs.stopped)
	if max := d.opts.FailFast.MaxStopped; max > 0 && len(crashed) >= max {
		return p, failStep(w.step, providers.ErrUnhealthy, "%d tasks of %s stopped: %s", len(crashed), d.Release, summarizeStops(crashed))
	}
	if t, ok := earlyExit(crashed, rel); ok && !d.opts.FailFast.AllowEarlyExits {
		return p, failStep(w.step, providers.ErrUnhealthy, "task %s of %s exited within its health grace window (%s)", t.ID, summarizeStops([]providers.Task{t}), graceOf(t.Process, rel))
	}
	if len(obs.unhealthy) > 0 {
		*unhealthyRuns++
	} else {
		*unhealthyRuns = 0
	}
	if max := d.opts.FailFast.MaxUnhealthy; max > 0 && *unhealthyRuns >= max {
		h := obs.unhealthy[0]
		return p, failStep(w.step, providers.ErrUnhealthy, "%d targets of %s failed health checks in %d observations in a row (%s: %s)", len(obs.unhealthy), d.Release, *unhealthyRuns, h.Target, h.Reason)
	}
	p.Stopped = len(crashed)
	if w.done == nil && (p.Healthy < p.Targets || p.Running < p.Desired) {
		return p, failStep(w.step, providers.ErrUnhealthy, "%s became unhealthy while baking: %d/%d running, %d/%d targets healthy", d.Release, p.Running, p.Desired, p.Healthy, p.Targets)
	}
	return p, nil
}
