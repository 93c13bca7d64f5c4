package providertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// SchedulerHarness supplies the scheduler under test and what it runs.
type SchedulerHarness struct {
	// New returns a setup. It is called once per case and may return a
	// shared scheduler: every case uses app names of its own and deletes
	// its apps when it ends.
	New func(t *testing.T) SchedulerSetup
	// Poll is the pause between observations while waiting for the
	// scheduler (or its balancer, or its logs) to converge; zero observes
	// again without pausing, for in-memory schedulers that advance on
	// observation.
	Poll time.Duration
	// Timeout bounds each wait; zero means two minutes.
	Timeout time.Duration
}

// SchedulerSetup is what one case runs against.
type SchedulerSetup struct {
	// Scheduler is the scheduler under test.
	Scheduler providers.Scheduler
	// Image is an image the scheduler can run, with the Processes below.
	Image providers.Image
	// Processes is the formation applied: at least one process with a
	// Port (it serves traffic) and, for the cases that remove or scale one
	// down, one without. Keep counts small (1 or 2).
	Processes []providers.Process
	// Crash, when set, is an image whose processes exit with a non-zero
	// status soon after they start; it enables the crash-loop cases.
	Crash *providers.Image
	// Balancer, when set, is the rack's balancer; the binding cases route
	// each process with a Port to the scheduler's tasks through it.
	Balancer providers.Balancer
	// Logs, when set, is where the scheduler's tasks write their output;
	// it enables the output cases. Every process must write at least one
	// line when it starts.
	Logs providers.Logs
	// Run, when set, is a one-off command of Image for the TaskRunner cases
	// that need the task to finish.
	Run *RunCase
}

// RunCase is a one-off command with a known outcome.
type RunCase struct {
	// Command runs in Image.
	Command []string
	// Output is a line the command writes.
	Output string
	// ExitCode is the command's exit status.
	ExitCode int
}

// secretValue is the value of a secret variable in every Desired of the
// suite; it must never appear in a status or a log.
var secretValue = "providertest-secret-" + runID

var releaseSeq atomic.Int64

// schedCase is one case's setup with its helpers.
type schedCase struct {
	SchedulerSetup
	t *testing.T
	w waiter
}

func (c *schedCase) served() (providers.Process, bool) {
	for _, p := range c.Processes {
		if p.Port > 0 {
			return p, true
		}
	}
	return providers.Process{}, false
}

func (c *schedCase) unserved() (providers.Process, bool) {
	for _, p := range c.Processes {
		if p.Port == 0 {
			return p, true
		}
	}
	return providers.Process{}, false
}

// newApp returns a fresh app name, deleted when the case ends.
func (c *schedCase) newApp() string {
	app := uniqueName()
	c.t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		c.Scheduler.Delete(ctx, app)
	})
	return app
}

// desired returns a new release of the app with the given formation.
func (c *schedCase) desired(app string, procs []providers.Process) providers.Desired {
	rel := fmt.Sprintf("r%d", releaseSeq.Add(1))
	return providers.Desired{
		App:       app,
		Release:   rel,
		Token:     rel + "-t1",
		Image:     c.Image,
		Env:       map[string]string{"GREETING": "hello", "API_KEY": secretValue},
		Secret:    []string{"API_KEY"},
		Processes: slices.Clone(procs),
	}
}

func (c *schedCase) apply(d providers.Desired) providers.Rollout {
	c.t.Helper()
	ro, err := c.Scheduler.Apply(c.t.Context(), d)
	if err != nil {
		c.t.Fatalf("Apply %v: %v", d, err)
	}
	return ro
}

// observe returns one observation through Status.
func (c *schedCase) observe(ctx context.Context, app string) (providers.AppStatus, error) {
	return c.Scheduler.Status(ctx, app)
}

// converged reports whether st shows d completely rolled out: the
// release is the app's release, every process runs its count of d's
// release and no task of another release runs, and the rollout ro is
// completed.
func converged(st providers.AppStatus, d providers.Desired, ro providers.Rollout) bool {
	if st.Release != d.Release {
		return false
	}
	running := map[string]int{}
	for _, tk := range st.Tasks {
		if tk.State == providers.TaskRunning {
			if tk.Release != d.Release {
				return false
			}
			running[tk.Process]++
		}
	}
	for _, p := range d.Processes {
		if running[p.Name] != p.Count {
			return false
		}
		i := slices.IndexFunc(st.Processes, func(ps providers.ProcessStatus) bool { return ps.Name == p.Name })
		if p.Count > 0 && (i < 0 || st.Processes[i].Running != p.Count || st.Processes[i].Desired != p.Count) {
			return false
		}
	}
	for name, n := range running {
		if n > 0 && !slices.ContainsFunc(d.Processes, func(p providers.Process) bool { return p.Name == name }) {
			return false
		}
	}
	i := slices.IndexFunc(st.Rollouts, func(r providers.Rollout) bool { return r.ID == ro.ID })
	return i >= 0 && st.Rollouts[i].State == providers.RolloutCompleted
}

// converge waits until the app has rolled d out through observe and
// returns the converged observation.
func (c *schedCase) converge(app string, d providers.Desired, ro providers.Rollout, observe func(context.Context, string) (providers.AppStatus, error)) providers.AppStatus {
	c.t.Helper()
	var st providers.AppStatus
	c.w.until(c.t, fmt.Sprintf("app %s to converge to release %s", app, d.Release), func(ctx context.Context) (bool, string, error) {
		var err error
		st, err = observe(ctx, app)
		return err == nil && converged(st, d, ro), describeStatus(st), err
	})
	return st
}

// describeStatus formats an observation for failure messages.
func describeStatus(st providers.AppStatus) string {
	lines := []string{fmt.Sprintf("app %s release %q", st.App, st.Release)}
	for _, r := range st.Rollouts {
		lines = append(lines, fmt.Sprintf("rollout %s release %s token %s %s %s", r.ID, r.Release, r.Token, r.State, r.Reason))
	}
	for _, p := range st.Processes {
		lines = append(lines, fmt.Sprintf("process %s release %s desired %d running %d pending %d", p.Name, p.Release, p.Desired, p.Running, p.Pending))
	}
	for _, tk := range st.Tasks {
		exit := "-"
		if tk.ExitCode != nil {
			exit = fmt.Sprint(*tk.ExitCode)
		}
		lines = append(lines, fmt.Sprintf("task %s process %s release %s %s exit %s %s", tk.ID, tk.Process, tk.Release, tk.State, exit, tk.Reason))
	}
	return indent(lines)
}

// TestScheduler checks the providers.Scheduler contract, the binding of
// tasks to balancer routes, and the BatchStatus, Canceler, Stager and
// TaskRunner contracts when the scheduler implements them.
//
// Each rule group is a subtest of its own (Status, Apply, Delete,
// Concurrency, Crash, Binding, Logs, BatchStatus, Canceler, Stager,
// TaskRunner, Context), runnable alone with -run.
func TestScheduler(t *testing.T, h SchedulerHarness) {
	s := schedulerSuite{SchedulerHarness: h, w: newWaiter(h.Poll, h.Timeout)}
	t.Run("Status", s.testStatus)
	t.Run("Apply", s.testApply)
	t.Run("Delete", s.testDelete)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("Crash", s.testCrash)
	t.Run("Binding", s.testBinding)
	t.Run("Logs", s.testLogs)
	t.Run("BatchStatus", s.testBatchStatus)
	t.Run("Canceler", s.testCanceler)
	t.Run("Stager", s.testStager)
	t.Run("TaskRunner", s.testTaskRunner)
	t.Run("Context", s.testContext)
}

// schedulerSuite is the harness the Scheduler rule groups share.
type schedulerSuite struct {
	SchedulerHarness
	w waiter
}

// setup returns a case's setup, with its helpers.
func (h schedulerSuite) setup(t *testing.T) *schedCase {
	c := &schedCase{SchedulerSetup: h.New(t), t: t, w: h.w}
	if _, ok := c.served(); !ok {
		t.Fatalf("harness: SchedulerSetup.Processes has no process with a Port")
	}
	return c
}

func (h schedulerSuite) testStatus(t *testing.T) {
	t.Run("an app never applied returns ErrNotFound", func(t *testing.T) {
		c := h.setup(t)
		_, err := c.Scheduler.Status(t.Context(), uniqueName())
		wantErr(t, "Status", err, providers.ErrNotFound)
	})
}

func (h schedulerSuite) testApply(t *testing.T) {
	t.Run("invalid desired state returns ErrInvalid and changes nothing", func(t *testing.T) {
		c := h.setup(t)
		web, _ := c.served()
		for _, tc := range []struct {
			name   string
			change func(*providers.Desired)
		}{
			{"bad app name", func(d *providers.Desired) { d.App = "Bad_App" }},
			{"bad process name", func(d *providers.Desired) { d.Processes[0].Name = "Web_1" }},
			{"process listed twice", func(d *providers.Desired) { d.Processes = append(d.Processes, d.Processes[0]) }},
			{"negative count", func(d *providers.Desired) { d.Processes[0].Count = -1 }},
			{"unknown binding kind", func(d *providers.Desired) {
				d.Bindings = map[string][]providers.Binding{web.Name: {{Balancer: "none", Kind: "no-such-kind", Target: "nowhere", Port: web.Port}}}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				app := c.newApp()
				d := c.desired(app, c.Processes)
				tc.change(&d)
				_, err := c.Scheduler.Apply(t.Context(), d)
				wantErr(t, "Apply", err, providers.ErrInvalid)
				_, err = c.Scheduler.Status(t.Context(), app)
				wantErr(t, "Status after the refused Apply", err, providers.ErrNotFound)
			})
		}
	})

	t.Run("returns the accepted rollout of the release and token", func(t *testing.T) {
		c := h.setup(t)
		d := c.desired(c.newApp(), c.Processes)
		ro := c.apply(d)
		if ro.ID == "" || ro.Release != d.Release || ro.Token != d.Token {
			t.Errorf("Apply = %+v, want an ID, Release %q and Token %q", ro, d.Release, d.Token)
		}
		if ro.State != providers.RolloutInProgress && ro.State != providers.RolloutCompleted {
			t.Errorf("Apply returned a rollout in state %q, want in-progress or completed", ro.State)
		}
	})

	t.Run("the same token returns the same rollout", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		first := c.apply(d)
		second := c.apply(d)
		if first.ID != second.ID || second.Release != d.Release || second.Token != d.Token {
			t.Errorf("second Apply of one token = %+v, want rollout %s again", second, first.ID)
		}
		st := c.converge(app, d, first, c.observe)
		n := 0
		for _, r := range st.Rollouts {
			if r.Token == d.Token {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d rollouts of token %s, want 1:\n%s", n, d.Token, describeStatus(st))
		}
	})

	t.Run("converges and reports the applied release", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		st := c.converge(app, d, c.apply(d), c.observe)
		if st.App != app {
			t.Errorf("AppStatus.App = %q, want %q", st.App, app)
		}
		var want []providers.ProcessStatus
		for _, p := range d.Processes {
			want = append(want, providers.ProcessStatus{Name: p.Name, Release: d.Release, Desired: p.Count, Running: p.Count})
		}
		slices.SortFunc(want, func(a, b providers.ProcessStatus) int { return strings.Compare(a.Name, b.Name) })
		if diff := cmp.Diff(want, st.Processes); diff != "" {
			t.Errorf("AppStatus.Processes, ordered by name (-want +got):\n%s", diff)
		}
		for _, tk := range st.Tasks {
			if tk.State != providers.TaskRunning {
				continue
			}
			served := slices.ContainsFunc(d.Processes, func(p providers.Process) bool { return p.Name == tk.Process && p.Port > 0 })
			if tk.ID == "" || tk.App != app || (served && tk.Address == "") {
				t.Errorf("running task %+v, want an ID, App %q, and an Address when its process has a port", tk, app)
			}
		}
	})

	t.Run("a new release converges and replaces the old release's tasks", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d1 := c.desired(app, c.Processes)
		c.converge(app, d1, c.apply(d1), c.observe)
		d2 := c.desired(app, c.Processes)
		d2.Env["GREETING"] = "hello again"
		st := c.converge(app, d2, c.apply(d2), c.observe)
		if i := slices.IndexFunc(st.Rollouts, func(r providers.Rollout) bool { return r.Release == d2.Release }); i != 0 {
			t.Errorf("the newest rollout is not listed first:\n%s", describeStatus(st))
		}
	})

	t.Run("a new token for the same release starts a new rollout", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		first := c.apply(d)
		c.converge(app, d, first, c.observe)
		d.Token = d.Release + "-t2"
		second := c.apply(d)
		if second.ID == first.ID {
			t.Errorf("Apply with a new token returned rollout %s again", first.ID)
		}
		c.converge(app, d, second, c.observe)
	})

	t.Run("changed counts converge and unlisted process types are removed", func(t *testing.T) {
		c := h.setup(t)
		worker, ok := c.unserved()
		if !ok {
			t.Skip("harness: no process without a port to remove")
		}
		web, _ := c.served()
		app := c.newApp()
		d1 := c.desired(app, c.Processes)
		c.converge(app, d1, c.apply(d1), c.observe)

		scaled := slices.Clone(c.Processes)
		for i := range scaled {
			switch scaled[i].Name {
			case web.Name:
				scaled[i].Count = web.Count + 1
			case worker.Name:
				scaled[i].Count = 0
			}
		}
		d2 := c.desired(app, scaled)
		c.converge(app, d2, c.apply(d2), c.observe)

		d3 := c.desired(app, slices.DeleteFunc(slices.Clone(c.Processes), func(p providers.Process) bool { return p.Name == worker.Name }))
		st := c.converge(app, d3, c.apply(d3), c.observe)
		for _, ps := range st.Processes {
			if ps.Name == worker.Name && (ps.Desired != 0 || ps.Running != 0) {
				t.Errorf("removed process type %s reported as %+v, want it absent or at zero", worker.Name, ps)
			}
		}
	})

	t.Run("secret values never appear in status", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		st := c.converge(app, d, c.apply(d), c.observe)
		if s := fmt.Sprintf("%+v %v", st, d); strings.Contains(s, secretValue) {
			t.Errorf("a secret value appears in the status or the formatted Desired: %s", s)
		}
	})
}

func (h schedulerSuite) testDelete(t *testing.T) {
	t.Run("stops the app and is idempotent", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		c.converge(app, d, c.apply(d), c.observe)
		must(t, "Delete", c.Scheduler.Delete(t.Context(), app))
		_, err := c.Scheduler.Status(t.Context(), app)
		wantErr(t, "Status after Delete", err, providers.ErrNotFound)
		if err := c.Scheduler.Delete(t.Context(), app); err != nil {
			t.Errorf("second Delete: %v, want nil", err)
		}
		if err := c.Scheduler.Delete(t.Context(), uniqueName()); err != nil {
			t.Errorf("Delete of an app never applied: %v, want nil", err)
		}
	})

	t.Run("a deleted app can be applied again", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d1 := c.desired(app, c.Processes)
		c.converge(app, d1, c.apply(d1), c.observe)
		must(t, "Delete", c.Scheduler.Delete(t.Context(), app))
		d2 := c.desired(app, c.Processes)
		c.converge(app, d2, c.apply(d2), c.observe)
	})
}

func (h schedulerSuite) testConcurrency(t *testing.T) {
	t.Run("concurrent Applies of one token return one rollout", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		got := make([]string, racers)
		raceYielding(t, 1, func(ctx context.Context, racer, _ int) bool {
			ro, err := c.Scheduler.Apply(ctx, d)
			if err != nil {
				t.Errorf("Apply %d: %v", racer, err)
			}
			got[racer] = ro.ID
			return true
		})
		if n := len(slices.Compact(slices.Sorted(slices.Values(got)))); n != 1 {
			t.Errorf("concurrent Applies of one token returned rollouts %q, want one", got)
		}
	})

	t.Run("apps observed concurrently converge independently", func(t *testing.T) {
		c := h.setup(t)
		var wg sync.WaitGroup
		for range 2 {
			app := c.newApp()
			d := c.desired(app, c.Processes)
			ro := c.apply(d)
			wg.Go(func() {
				c.w.until(t, "app "+app+" to converge", func(ctx context.Context) (bool, string, error) {
					st, err := c.Scheduler.Status(ctx, app)
					return err == nil && converged(st, d, ro), describeStatus(st), err
				})
			})
		}
		wg.Wait()
	})
}

func (h schedulerSuite) testCrash(t *testing.T) {
	if h.New(t).Crash == nil {
		t.Skip("harness: no crashing image")
	}
	// crashed waits until a task of the release has stopped with a
	// non-zero exit code and a reason, and returns that observation.
	crashed := func(c *schedCase, app, release string) providers.AppStatus {
		var st providers.AppStatus
		c.w.until(c.t, "a task of release "+release+" to crash", func(ctx context.Context) (bool, string, error) {
			var err error
			st, err = c.Scheduler.Status(ctx, app)
			return err == nil && slices.ContainsFunc(st.Tasks, func(tk providers.Task) bool {
				return tk.Release == release && tk.State == providers.TaskStopped && tk.ExitCode != nil && *tk.ExitCode != 0 && tk.Reason != ""
			}), describeStatus(st), err
		})
		return st
	}

	t.Run("a crash-looping release never becomes the release and its stopped tasks say why", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		good := c.desired(app, c.Processes)
		c.converge(app, good, c.apply(good), c.observe)
		bad := c.desired(app, c.Processes)
		bad.Image = *c.Crash
		c.apply(bad)
		st := crashed(c, app, bad.Release)
		if st.Release != good.Release {
			t.Errorf("AppStatus.Release = %q while release %s crash-loops, want %q", st.Release, bad.Release, good.Release)
		}
		var stopped []time.Time
		for _, tk := range st.Tasks {
			if tk.State == providers.TaskStopped {
				stopped = append(stopped, tk.Stopped)
			}
		}
		if !slices.IsSortedFunc(stopped, func(a, b time.Time) int { return b.Compare(a) }) {
			t.Errorf("stopped tasks are not listed most recent first:\n%s", describeStatus(st))
		}
	})

	t.Run("a crash-looping first release leaves the app without a release", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		bad := c.desired(app, c.Processes)
		bad.Image = *c.Crash
		c.apply(bad)
		if st := crashed(c, app, bad.Release); st.Release != "" {
			t.Errorf("AppStatus.Release = %q with only a crash-looping release applied, want empty", st.Release)
		}
	})

	t.Run("a crashed task's output is in Logs under its task ID", func(t *testing.T) {
		c := h.setup(t)
		if c.Logs == nil {
			t.Skip("harness: no Logs")
		}
		app := c.newApp()
		bad := c.desired(app, c.Processes)
		bad.Image = *c.Crash
		c.apply(bad)
		st := crashed(c, app, bad.Release)
		i := slices.IndexFunc(st.Tasks, func(tk providers.Task) bool { return tk.State == providers.TaskStopped })
		tk := st.Tasks[i]
		c.w.until(t, "the crashed task's output", func(ctx context.Context) (bool, string, error) {
			got, _, err := readAll(ctx, c.Logs, providers.LogQuery{App: app, Stream: tk.ID})
			return len(got) > 0, fmt.Sprintf("%+v", got), err
		})
	})
}

func (h schedulerSuite) testBinding(t *testing.T) {
	probe := h.New(t)
	if probe.Balancer == nil {
		t.Skip("harness: no Balancer")
	}
	// bound applies d with every served process bound to a route and
	// returns the routes by process.
	bind := func(c *schedCase, d *providers.Desired) map[string]providers.Route {
		routes := map[string]providers.Route{}
		d.Bindings = map[string][]providers.Binding{}
		for _, p := range d.Processes {
			if p.Port == 0 {
				continue
			}
			rt, err := c.Balancer.EnsureRoute(c.t.Context(), providers.RouteSpec{App: d.App, Process: p.Name, Port: p.Port, Protocol: providers.HTTP, Health: p.Health})
			must(c.t, "EnsureRoute", err)
			if a, ok := c.Scheduler.(providers.BindingAcceptor); ok && !a.AcceptsBinding(rt.Binding.Kind) {
				c.t.Skipf("the scheduler does not accept the balancer's %q bindings", rt.Binding.Kind)
			}
			c.t.Cleanup(func() {
				ctx, cancel := cleanupContext()
				defer cancel()
				c.Balancer.DeleteRoute(ctx, rt.ID)
			})
			routes[p.Name] = rt
			d.Bindings[p.Name] = []providers.Binding{rt.Binding}
		}
		return routes
	}
	// healthy waits until each route has exactly its process's count of
	// targets, all healthy.
	healthy := func(c *schedCase, d providers.Desired, routes map[string]providers.Route) {
		for _, p := range d.Processes {
			rt, ok := routes[p.Name]
			if !ok {
				continue
			}
			c.w.until(c.t, fmt.Sprintf("%d healthy targets of route %s", p.Count, rt.ID), func(ctx context.Context) (bool, string, error) {
				got, err := c.Balancer.Health(ctx, rt.ID)
				n := 0
				for _, th := range got {
					if th.State == providers.TargetHealthy {
						n++
					}
				}
				return err == nil && n == p.Count && len(got) == p.Count, fmt.Sprintf("%+v", got), err
			})
		}
	}

	t.Run("running tasks become healthy targets of their route", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		routes := bind(c, &d)
		c.converge(app, d, c.apply(d), c.observe)
		healthy(c, d, routes)
	})

	t.Run("a new release's tasks replace the old ones as targets", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d1 := c.desired(app, c.Processes)
		routes := bind(c, &d1)
		c.converge(app, d1, c.apply(d1), c.observe)
		d2 := c.desired(app, c.Processes)
		d2.Bindings = d1.Bindings
		st := c.converge(app, d2, c.apply(d2), c.observe)
		healthy(c, d2, routes)
		web, _ := c.served()
		var want []string
		for _, tk := range st.Tasks {
			if tk.Process == web.Name && tk.State == providers.TaskRunning {
				want = append(want, tk.Address)
			}
		}
		got, err := c.Balancer.Health(t.Context(), routes[web.Name].ID)
		must(t, "Health", err)
		var targets []string
		for _, th := range got {
			targets = append(targets, th.Target)
		}
		// Targets registered by address must be the running tasks'.
		if !slices.ContainsFunc(targets, func(s string) bool { return !strings.Contains(s, ":") }) {
			slices.Sort(want)
			if diff := cmp.Diff(want, targets); diff != "" {
				t.Errorf("targets of route %s, by address (-running tasks +targets):\n%s", routes[web.Name].ID, diff)
			}
		}
	})

	t.Run("while a new release crash-loops the old targets stay healthy", func(t *testing.T) {
		c := h.setup(t)
		if c.Crash == nil {
			t.Skip("harness: no crashing image")
		}
		app := c.newApp()
		good := c.desired(app, c.Processes)
		routes := bind(c, &good)
		c.converge(app, good, c.apply(good), c.observe)
		bad := c.desired(app, c.Processes)
		bad.Image = *c.Crash
		bad.Bindings = good.Bindings
		c.apply(bad)
		c.w.until(t, "a task of the crash-looping release to stop", func(ctx context.Context) (bool, string, error) {
			st, err := c.Scheduler.Status(ctx, app)
			return err == nil && slices.ContainsFunc(st.Tasks, func(tk providers.Task) bool {
				return tk.Release == bad.Release && tk.State == providers.TaskStopped
			}), describeStatus(st), err
		})
		healthy(c, good, routes)
	})
}

func (h schedulerSuite) testLogs(t *testing.T) {
	if h.New(t).Logs == nil {
		t.Skip("harness: no Logs")
	}
	t.Run("each task's output is in Logs under its task ID, process and release", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			c.Logs.Delete(ctx, app)
		})
		d := c.desired(app, c.Processes)
		st := c.converge(app, d, c.apply(d), c.observe)
		for _, tk := range st.Tasks {
			if tk.State != providers.TaskRunning {
				continue
			}
			var got []providers.LogEntry
			c.w.until(t, "output of task "+tk.ID, func(ctx context.Context) (bool, string, error) {
				var err error
				got, _, err = readAll(ctx, c.Logs, providers.LogQuery{App: app, Stream: tk.ID})
				return len(got) > 0, fmt.Sprintf("%+v", got), err
			})
			for _, e := range got {
				if e.Process != tk.Process || e.Release != d.Release || strings.Contains(e.Message, secretValue) {
					t.Errorf("entry %+v of task %s, want Process %q and Release %q, and no secret value", e, tk.ID, tk.Process, d.Release)
				}
			}
		}
	})
}

func (h schedulerSuite) testBatchStatus(t *testing.T) {
	if _, ok := h.New(t).Scheduler.(providers.BatchStatus); !ok {
		t.Skip("the scheduler does not implement providers.BatchStatus")
	}
	t.Run("StatusMany/reports existing apps and omits missing ones", func(t *testing.T) {
		c := h.setup(t)
		b := c.Scheduler.(providers.BatchStatus)
		app := c.newApp()
		c.apply(c.desired(app, c.Processes))
		missing := uniqueName()
		got, err := b.StatusMany(t.Context(), []string{app, missing})
		must(t, "StatusMany", err)
		var keys []string
		for k, st := range got {
			keys = append(keys, k)
			if st.App != k {
				t.Errorf("StatusMany[%q].App = %q", k, st.App)
			}
		}
		if diff := cmp.Diff([]string{app}, keys); diff != "" {
			t.Errorf("apps reported by StatusMany (-want +got):\n%s", diff)
		}
	})
	t.Run("StatusMany/observes apps converging like Status", func(t *testing.T) {
		c := h.setup(t)
		b := c.Scheduler.(providers.BatchStatus)
		apps := []string{c.newApp(), c.newApp()}
		ds := map[string]providers.Desired{}
		ros := map[string]providers.Rollout{}
		for _, app := range apps {
			ds[app] = c.desired(app, c.Processes)
			ros[app] = c.apply(ds[app])
		}
		c.w.until(t, "both apps to converge", func(ctx context.Context) (bool, string, error) {
			got, err := b.StatusMany(ctx, apps)
			var states []string
			done := err == nil
			for _, app := range apps {
				st := got[app]
				done = done && converged(st, ds[app], ros[app])
				states = append(states, describeStatus(st))
			}
			return done, strings.Join(states, "\n"), err
		})
	})
}

func (h schedulerSuite) testCanceler(t *testing.T) {
	if _, ok := h.New(t).Scheduler.(providers.Canceler); !ok {
		t.Skip("the scheduler does not implement providers.Canceler")
	}
	t.Run("CancelRollout/an unknown rollout returns nil", func(t *testing.T) {
		c := h.setup(t)
		if err := c.Scheduler.(providers.Canceler).CancelRollout(t.Context(), uniqueName(), "no-such-rollout"); err != nil {
			t.Errorf("CancelRollout of an unknown rollout: %v, want nil", err)
		}
	})
	t.Run("CancelRollout/a completed rollout returns nil and changes nothing", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		ro := c.apply(d)
		c.converge(app, d, ro, c.observe)
		must(t, "CancelRollout", c.Scheduler.(providers.Canceler).CancelRollout(t.Context(), app, ro.ID))
		c.converge(app, d, ro, c.observe)
	})
	t.Run("CancelRollout/an in-flight rollout is canceled and the app converges back", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d1 := c.desired(app, c.Processes)
		ro1 := c.apply(d1)
		c.converge(app, d1, ro1, c.observe)
		d2 := c.desired(app, c.Processes)
		ro2 := c.apply(d2)
		if ro2.State != providers.RolloutInProgress {
			t.Skipf("Apply returned a rollout already %s", ro2.State)
		}
		must(t, "CancelRollout", c.Scheduler.(providers.Canceler).CancelRollout(t.Context(), app, ro2.ID))
		var state providers.RolloutState
		c.w.until(t, "the canceled rollout to end", func(ctx context.Context) (bool, string, error) {
			st, err := c.Scheduler.Status(ctx, app)
			if i := slices.IndexFunc(st.Rollouts, func(r providers.Rollout) bool { return r.ID == ro2.ID }); i >= 0 {
				state = st.Rollouts[i].State
			}
			return err == nil && state != providers.RolloutInProgress && state != "", describeStatus(st), err
		})
		if state == providers.RolloutCompleted {
			t.Skip("the rollout completed before it could be canceled")
		}
		if state != providers.RolloutCanceled {
			t.Errorf("canceled rollout ended %q, want %q", state, providers.RolloutCanceled)
		}
		c.converge(app, d1, ro1, c.observe)
	})
}

func (h schedulerSuite) testStager(t *testing.T) {
	if _, ok := h.New(t).Scheduler.(providers.Stager); !ok {
		t.Skip("the scheduler does not implement providers.Stager")
	}
	// running returns the IDs of the running tasks of a release.
	running := func(st providers.AppStatus, release string) []string {
		var ids []string
		for _, tk := range st.Tasks {
			if tk.Release == release && tk.State == providers.TaskRunning {
				ids = append(ids, tk.ID)
			}
		}
		slices.Sort(ids)
		return ids
	}
	// staged waits until staged runs beside serving, which is still the
	// release, and returns that observation.
	staged := func(c *schedCase, serving, staged providers.Desired) providers.AppStatus {
		var st providers.AppStatus
		c.w.until(c.t, "release "+staged.Release+" to run staged beside "+serving.Release, func(ctx context.Context) (bool, string, error) {
			var err error
			st, err = c.Scheduler.Status(ctx, serving.App)
			if err != nil || st.Release != serving.Release {
				return false, describeStatus(st), err
			}
			for _, p := range staged.Processes {
				i := slices.IndexFunc(st.Processes, func(ps providers.ProcessStatus) bool { return ps.Name == p.Name && ps.Release == staged.Release })
				if p.Count > 0 && (i < 0 || st.Processes[i].Running != p.Count) {
					return false, describeStatus(st), nil
				}
			}
			return true, "", nil
		})
		return st
	}
	// serve applies a first release and waits until it serves.
	serve := func(c *schedCase) (providers.Desired, providers.AppStatus) {
		app := c.newApp()
		d := c.desired(app, c.Processes)
		return d, c.converge(app, d, c.apply(d), c.observe)
	}

	t.Run("Stage/an app never applied returns ErrNotFound", func(t *testing.T) {
		c := h.setup(t)
		_, err := c.Scheduler.(providers.Stager).Stage(t.Context(), c.desired(c.newApp(), c.Processes))
		wantErr(t, "Stage", err, providers.ErrNotFound)
	})

	t.Run("Stage/runs the staged release beside the serving one, which keeps its tasks and stays the release", func(t *testing.T) {
		c := h.setup(t)
		d1, before := serve(c)
		d2 := c.desired(d1.App, c.Processes)
		ro, err := c.Scheduler.(providers.Stager).Stage(t.Context(), d2)
		must(t, "Stage", err)
		if ro.ID == "" || ro.Release != d2.Release || ro.Token != d2.Token {
			t.Errorf("Stage = %+v, want an ID, Release %q and Token %q", ro, d2.Release, d2.Token)
		}
		st := staged(c, d1, d2)
		if diff := cmp.Diff(running(before, d1.Release), running(st, d1.Release)); diff != "" {
			t.Errorf("serving tasks while staged (-before +after):\n%s", diff)
		}
	})

	t.Run("Stage/the same token returns the same rollout", func(t *testing.T) {
		c := h.setup(t)
		d1, _ := serve(c)
		d2 := c.desired(d1.App, c.Processes)
		first, err := c.Scheduler.(providers.Stager).Stage(t.Context(), d2)
		must(t, "Stage", err)
		second, err := c.Scheduler.(providers.Stager).Stage(t.Context(), d2)
		must(t, "second Stage", err)
		if first.ID != second.ID {
			t.Errorf("second Stage of one token returned rollout %s, want %s", second.ID, first.ID)
		}
	})

	t.Run("PromoteStage/the staged tasks become the serving ones without restarting", func(t *testing.T) {
		c := h.setup(t)
		d1, _ := serve(c)
		d2 := c.desired(d1.App, c.Processes)
		_, err := c.Scheduler.(providers.Stager).Stage(t.Context(), d2)
		must(t, "Stage", err)
		want := running(staged(c, d1, d2), d2.Release)
		must(t, "PromoteStage", c.Scheduler.(providers.Stager).PromoteStage(t.Context(), d1.App))
		var st providers.AppStatus
		c.w.until(t, "the promoted release to serve alone", func(ctx context.Context) (bool, string, error) {
			var err error
			st, err = c.Scheduler.Status(ctx, d1.App)
			return err == nil && st.Release == d2.Release && len(running(st, d1.Release)) == 0, describeStatus(st), err
		})
		if diff := cmp.Diff(want, running(st, d2.Release)); diff != "" {
			t.Errorf("running tasks of the promoted release (-staged +promoted):\n%s", diff)
		}
	})

	t.Run("PromoteStage/with nothing staged returns ErrNotFound", func(t *testing.T) {
		c := h.setup(t)
		d1, _ := serve(c)
		wantErr(t, "PromoteStage", c.Scheduler.(providers.Stager).PromoteStage(t.Context(), d1.App), providers.ErrNotFound)
		wantErr(t, "PromoteStage of an app never applied", c.Scheduler.(providers.Stager).PromoteStage(t.Context(), uniqueName()), providers.ErrNotFound)
	})

	t.Run("DiscardStage/stops the staged tasks and keeps the serving release", func(t *testing.T) {
		c := h.setup(t)
		d1, before := serve(c)
		d2 := c.desired(d1.App, c.Processes)
		_, err := c.Scheduler.(providers.Stager).Stage(t.Context(), d2)
		must(t, "Stage", err)
		staged(c, d1, d2)
		must(t, "DiscardStage", c.Scheduler.(providers.Stager).DiscardStage(t.Context(), d1.App))
		var st providers.AppStatus
		c.w.until(t, "the staged tasks to stop", func(ctx context.Context) (bool, string, error) {
			var err error
			st, err = c.Scheduler.Status(ctx, d1.App)
			return err == nil && len(running(st, d2.Release)) == 0, describeStatus(st), err
		})
		if st.Release != d1.Release {
			t.Errorf("AppStatus.Release = %q after DiscardStage, want %q", st.Release, d1.Release)
		}
		if diff := cmp.Diff(running(before, d1.Release), running(st, d1.Release)); diff != "" {
			t.Errorf("serving tasks after DiscardStage (-before +after):\n%s", diff)
		}
		wantErr(t, "PromoteStage after DiscardStage", c.Scheduler.(providers.Stager).PromoteStage(t.Context(), d1.App), providers.ErrNotFound)
	})

	t.Run("DiscardStage/with nothing staged returns nil", func(t *testing.T) {
		c := h.setup(t)
		d1, _ := serve(c)
		if err := c.Scheduler.(providers.Stager).DiscardStage(t.Context(), d1.App); err != nil {
			t.Errorf("DiscardStage with nothing staged: %v, want nil", err)
		}
		if err := c.Scheduler.(providers.Stager).DiscardStage(t.Context(), uniqueName()); err != nil {
			t.Errorf("DiscardStage of an app never applied: %v, want nil", err)
		}
	})

	t.Run("Stage/staged tasks are the targets of their own target set", func(t *testing.T) {
		c := h.setup(t)
		ws, ok := c.Balancer.(providers.WeightShifter)
		if !ok {
			t.Skip("harness: no Balancer with WeightShifter")
		}
		web, _ := c.served()
		app := c.newApp()
		rt, err := c.Balancer.EnsureRoute(t.Context(), providers.RouteSpec{App: app, Process: web.Name, Port: web.Port, Protocol: providers.HTTP, Health: web.Health})
		must(t, "EnsureRoute", err)
		t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			c.Balancer.DeleteRoute(ctx, rt.ID)
		})
		set, err := ws.EnsureTargetSet(t.Context(), rt.ID, "g")
		must(t, "EnsureTargetSet", err)
		d1 := c.desired(app, c.Processes)
		d1.Bindings = map[string][]providers.Binding{web.Name: {rt.Binding}}
		c.converge(app, d1, c.apply(d1), c.observe)
		d2 := c.desired(app, c.Processes)
		d2.Bindings = map[string][]providers.Binding{web.Name: {set}}
		_, err = c.Scheduler.(providers.Stager).Stage(t.Context(), d2)
		must(t, "Stage", err)
		staged(c, d1, d2)
		healthyBySet := func(want map[string]int) {
			c.w.until(t, fmt.Sprintf("healthy targets by set %v", want), func(ctx context.Context) (bool, string, error) {
				// Observe the app too, as a deploy does: a scheduler may
				// advance on observation.
				if _, err := c.Scheduler.Status(ctx, app); err != nil {
					return false, "", err
				}
				got, err := c.Balancer.Health(ctx, rt.ID)
				n := map[string]int{}
				for _, th := range got {
					if th.State == providers.TargetHealthy {
						n[th.Set]++
					}
				}
				return err == nil && len(got) == web.Count*len(want) && cmp.Equal(want, n), fmt.Sprintf("%+v", got), err
			})
		}
		healthyBySet(map[string]int{"": web.Count, "g": web.Count})
		must(t, "PromoteStage", c.Scheduler.(providers.Stager).PromoteStage(t.Context(), app))
		healthyBySet(map[string]int{"g": web.Count})
	})
}

func (h schedulerSuite) testTaskRunner(t *testing.T) {
	if _, ok := h.New(t).Scheduler.(providers.TaskRunner); !ok {
		t.Skip("the scheduler does not implement providers.TaskRunner")
	}
	spec := func(c *schedCase, app string, command []string) providers.RunSpec {
		web, _ := c.served()
		rel := fmt.Sprintf("r%d", releaseSeq.Add(1))
		c.t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			c.Scheduler.Delete(ctx, app)
		})
		return providers.RunSpec{
			App: app, Release: rel, Token: rel + "-run", Image: c.Image,
			Env: map[string]string{"API_KEY": secretValue}, Secret: []string{"API_KEY"},
			Process: web, Command: command,
		}
	}
	stopped := func(c *schedCase, app, id string) providers.Task {
		var tk providers.Task
		c.w.until(c.t, "task "+id+" to stop", func(ctx context.Context) (bool, string, error) {
			var err error
			tk, err = c.Scheduler.(providers.TaskRunner).GetTask(ctx, app, id)
			return err == nil && tk.State == providers.TaskStopped, fmt.Sprintf("%+v", tk), err
		})
		return tk
	}

	t.Run("RunTask/returns a task of the app, process and release; the same token returns it again", func(t *testing.T) {
		c := h.setup(t)
		r := c.Scheduler.(providers.TaskRunner)
		s := spec(c, uniqueName(), nil)
		tk, err := r.RunTask(t.Context(), s)
		must(t, "RunTask", err)
		if tk.ID == "" || tk.App != s.App || tk.Process != s.Process.Name || tk.Release != s.Release {
			t.Errorf("RunTask = %+v, want an ID, App %q, Process %q and Release %q", tk, s.App, s.Process.Name, s.Release)
		}
		again, err := r.RunTask(t.Context(), s)
		must(t, "second RunTask", err)
		if again.ID != tk.ID {
			t.Errorf("second RunTask of token %s started task %s, want %s again", s.Token, again.ID, tk.ID)
		}
		must(t, "StopTask", r.StopTask(t.Context(), s.App, tk.ID))
	})

	t.Run("RunTask/the task stops with the command's exit code and its output is in Logs", func(t *testing.T) {
		c := h.setup(t)
		if c.Run == nil {
			t.Skip("harness: no one-off command")
		}
		r := c.Scheduler.(providers.TaskRunner)
		s := spec(c, uniqueName(), c.Run.Command)
		tk, err := r.RunTask(t.Context(), s)
		must(t, "RunTask", err)
		tk = stopped(c, s.App, tk.ID)
		if tk.ExitCode == nil || *tk.ExitCode != c.Run.ExitCode {
			t.Errorf("stopped task %+v, want ExitCode %d", tk, c.Run.ExitCode)
		}
		if c.Logs == nil {
			return
		}
		t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			c.Logs.Delete(ctx, s.App)
		})
		c.w.until(t, "the task's output in Logs", func(ctx context.Context) (bool, string, error) {
			got, _, err := readAll(ctx, c.Logs, providers.LogQuery{App: s.App, Stream: tk.ID})
			return slices.Contains(messages(got), c.Run.Output), fmt.Sprintf("%q", messages(got)), err
		})
	})

	t.Run("StopTask/stops the task and is idempotent", func(t *testing.T) {
		c := h.setup(t)
		r := c.Scheduler.(providers.TaskRunner)
		s := spec(c, uniqueName(), nil)
		tk, err := r.RunTask(t.Context(), s)
		must(t, "RunTask", err)
		must(t, "StopTask", r.StopTask(t.Context(), s.App, tk.ID))
		stopped(c, s.App, tk.ID)
		if err := r.StopTask(t.Context(), s.App, tk.ID); err != nil {
			t.Errorf("StopTask of a stopped task: %v, want nil", err)
		}
	})

	t.Run("GetTask/an unknown task returns ErrNotFound; StopTask of it returns nil", func(t *testing.T) {
		c := h.setup(t)
		r := c.Scheduler.(providers.TaskRunner)
		app := uniqueName()
		_, err := r.GetTask(t.Context(), app, "providertest-no-such-task")
		wantErr(t, "GetTask", err, providers.ErrNotFound)
		if err := r.StopTask(t.Context(), app, "providertest-no-such-task"); err != nil {
			t.Errorf("StopTask of an unknown task: %v, want nil", err)
		}
	})
}

func (h schedulerSuite) testContext(t *testing.T) {
	t.Run("canceled context fails every method with context.Canceled", func(t *testing.T) {
		c := h.setup(t)
		app := c.newApp()
		d := c.desired(app, c.Processes)
		ro := c.apply(d)
		fresh := c.newApp()
		type method struct {
			name string
			call func(ctx context.Context) error
		}
		calls := []method{
			{"Apply", func(ctx context.Context) error {
				_, err := c.Scheduler.Apply(ctx, c.desired(fresh, c.Processes))
				return err
			}},
			{"Status", func(ctx context.Context) error { _, err := c.Scheduler.Status(ctx, app); return err }},
			{"Delete", func(ctx context.Context) error { return c.Scheduler.Delete(ctx, app) }},
		}
		if b, ok := c.Scheduler.(providers.BatchStatus); ok {
			calls = append(calls, method{"StatusMany", func(ctx context.Context) error { _, err := b.StatusMany(ctx, []string{app}); return err }})
		}
		if cn, ok := c.Scheduler.(providers.Canceler); ok {
			calls = append(calls, method{"CancelRollout", func(ctx context.Context) error { return cn.CancelRollout(ctx, app, ro.ID) }})
		}
		if r, ok := c.Scheduler.(providers.TaskRunner); ok {
			web, _ := c.served()
			calls = append(calls,
				method{"RunTask", func(ctx context.Context) error {
					_, err := r.RunTask(ctx, providers.RunSpec{App: fresh, Release: d.Release, Token: "canceled", Image: c.Image, Process: web})
					return err
				}},
				method{"GetTask", func(ctx context.Context) error {
					_, err := r.GetTask(ctx, app, "providertest-no-such-task")
					return err
				}},
				method{"StopTask", func(ctx context.Context) error { return r.StopTask(ctx, app, "providertest-no-such-task") }},
			)
		}
		if sg, ok := c.Scheduler.(providers.Stager); ok {
			calls = append(calls,
				method{"Stage", func(ctx context.Context) error { _, err := sg.Stage(ctx, c.desired(app, c.Processes)); return err }},
				method{"PromoteStage", func(ctx context.Context) error { return sg.PromoteStage(ctx, app) }},
				method{"DiscardStage", func(ctx context.Context) error { return sg.DiscardStage(ctx, app) }},
			)
		}
		for _, tc := range calls {
			t.Run(tc.name, func(t *testing.T) { checkCanceled(t, tc.call) })
		}
		_, err := c.Scheduler.Status(t.Context(), fresh)
		wantErr(t, "Status of the app a canceled Apply named", err, providers.ErrNotFound)
		c.converge(app, d, ro, c.observe)
	})
}
