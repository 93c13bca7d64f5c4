package convox

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// RunOptions tune a one-off process. Nil or zero fields take defaults.
type RunOptions struct {
	// Release runs that release's image and env (default: the active release).
	Release string
	// Output receives the process's output lines as they arrive.
	Output io.Writer
}

// RunResult is the outcome of a one-off process.
type RunResult struct {
	// Task is the stopped task.
	Task providers.Task
	// ExitCode is the process's exit code (-1 when the scheduler does not know it).
	ExitCode int
}

// Run starts a one-off process of the given process type, running command
// (the process's own command when empty) with the release's image and env,
// streams its output to opts.Output and returns its exit code once it
// stopped. The scheduler must implement providers.TaskRunner; that is
// checked before anything starts. If ctx ends first the task is stopped.
func (a *AppClient) Run(ctx context.Context, process string, command []string, opts *RunOptions) (*RunResult, error) {
	const op = "Run"
	var o RunOptions
	if opts != nil {
		o = *opts
	}
	app, sel, err := a.load(ctx)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	if err := sel.check(CapTaskRunner); err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	runner, _ := sel.sched.taskRunner()
	id := o.Release
	if id == "" {
		id = app.Active
	}
	if id == "" {
		return nil, wrapErr(op, a.name, "", fmt.Errorf("%w: app %q has no active release; deploy one or name a release", providers.ErrNotFound, a.name))
	}
	rel, err := a.c.loadRelease(ctx, a.name, id)
	if err != nil {
		return nil, wrapErr(op, a.name, id, err)
	}
	id = releaseID(rel.Seq)
	i := slices.IndexFunc(rel.Processes, func(p Process) bool { return p.Name == process })
	if i < 0 {
		return nil, wrapErr(op, a.name, id, fmt.Errorf("%w: release %s has no process %q", providers.ErrNotFound, id, process))
	}
	d := rel.desired("", nil)
	spec := providers.RunSpec{
		App: a.name, Release: id, Token: newToken(), Image: rel.Image, Env: d.Env, Secret: d.Secret, SecretRefs: d.SecretRefs,
		Process: rel.Processes[i].provider(), Command: slices.Clone(command),
	}
	if err := spec.Validate(sel.limits()); err != nil {
		return nil, wrapErr(op, a.name, id, err)
	}
	task, err := runner.RunTask(ctx, spec)
	if err != nil {
		return nil, wrapErr(op, a.name, id, err)
	}
	a.c.emit(Event{Type: EventRun, App: a.name, Release: id, Message: fmt.Sprintf("started one-off task %s of %s", task.ID, process)})
	return a.follow(ctx, runner, sel.logs, id, task, o.Output)
}

// follow streams a one-off task's output to out (when not nil) until the
// task stops, and returns its result; if ctx ends first it stops the task.
func (a *AppClient) follow(ctx context.Context, runner providers.TaskRunner, logs providers.Logs, id string, task providers.Task, out io.Writer) (*RunResult, error) {
	const op = "Run"
	t := &tailer{logs: logs, q: providers.LogQuery{App: a.name, Stream: task.ID}}
	write := func(e providers.LogEntry) bool {
		if out != nil {
			fmt.Fprintln(out, e.Message)
		}
		return true
	}
	// Not the chain's retries: this polls the task's output and state
	// until it stops, so a temporary failure of a read or of GetTask is
	// one poll that saw nothing, and the next poll asks again.
	b := poll.Backoff{Initial: min(a.c.opts.PollInterval, 500*time.Millisecond), Max: min(a.c.opts.MaxPollInterval, 2*time.Second)}
	for {
		if _, err := t.drain(ctx, write); err != nil && !providers.IsTemporary(err) && ctx.Err() == nil {
			return nil, wrapErr(op, a.name, id, err)
		}
		cur, err := runner.GetTask(ctx, a.name, task.ID)
		switch {
		case err == nil && cur.State == providers.TaskStopped:
			if _, err := t.drain(ctx, write); err != nil {
				return nil, wrapErr(op, a.name, id, err)
			}
			res := &RunResult{Task: cur, ExitCode: -1}
			if cur.ExitCode != nil {
				res.ExitCode = *cur.ExitCode
			}
			a.c.emit(Event{Type: EventRun, App: a.name, Release: id, Message: fmt.Sprintf("one-off task %s exited with %d", task.ID, res.ExitCode), Reason: cur.Reason})
			return res, nil
		case err != nil && ctx.Err() == nil && !providers.IsTemporary(err):
			return nil, wrapErr(op, a.name, id, err)
		}
		if werr := b.Wait(ctx); werr != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.c.opts.NotifyTimeout)
			_ = runner.StopTask(sctx, a.name, task.ID)
			cancel()
			return nil, wrapErr(op, a.name, id, werr)
		}
	}
}
