package fake

import (
	"context"
	"fmt"
	"strings"

	"github.com/convox-go/convox/providers"
)

// RunTask implements providers.TaskRunner. The task is pending; each
// GetTask advances it one step: running (its output is written to Logs
// then), then stopped with its exit code, scripted by Rack.ExitCode, 2 for
// a crash-looping release, 0 otherwise. A task whose image was never
// pushed stops on its first GetTask with a CannotPullContainerError reason.
// An empty Token makes no idempotency promise.
func (s *Scheduler) RunTask(ctx context.Context, spec providers.RunSpec) (providers.Task, error) {
	c := Call{Provider: "Scheduler", Method: "RunTask", Key: spec.App, Args: []any{spec}}
	return do(s.r, ctx, c, func(ctx context.Context) (providers.Task, error) {
		if h := s.r.currentHooks().Scheduler.RunTask; h != nil {
			return h(ctx, spec, s.runTask)
		}
		return s.runTask(ctx, spec)
	})
}

func (s *Scheduler) runTask(ctx context.Context, spec providers.RunSpec) (providers.Task, error) {
	if err := s.r.enter(ctx, "Scheduler.RunTask"); err != nil {
		return providers.Task{}, err
	}
	if err := spec.Validate(s.Limits()); err != nil {
		return providers.Task{}, err
	}
	if spec.Release == "" || spec.Image.Digest == "" {
		return providers.Task{}, providers.Invalidf("fake scheduler: run task of %s: release and pinned image are required", spec.App)
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.oneoffs[spec.App]
	if !ok {
		o = &oneoffs{tasks: map[string]*task{}, tokens: map[string]*task{}}
		r.oneoffs[spec.App] = o
	}
	if t, ok := o.tokens[spec.Token]; ok && spec.Token != "" {
		return t.view(), nil
	}
	p := spec.Process
	p.Port = 0
	t := r.newTask(spec.App, p, spec.Release, spec.Image, commandOf(spec.Image, spec.Process, spec.Command))
	if spec.Token != "" {
		t.script = r.exitScriptFor(spec.Token)
	}
	if t.script == nil {
		t.script = r.exitScriptFor(strings.Join(t.command, " "))
	}
	t.crash = t.script == nil && r.crashes(spec.Release, spec.Image.Digest)
	o.tasks[t.ID] = t
	if spec.Token != "" {
		o.tokens[spec.Token] = t
	}
	return t.view(), nil
}

// GetTask implements providers.TaskRunner; see RunTask for how each call
// advances the task.
func (s *Scheduler) GetTask(ctx context.Context, appName, id string) (providers.Task, error) {
	c := Call{Provider: "Scheduler", Method: "GetTask", Key: appName, Args: []any{appName, id}}
	return do(s.r, ctx, c, func(ctx context.Context) (providers.Task, error) {
		if h := s.r.currentHooks().Scheduler.GetTask; h != nil {
			return h(ctx, appName, id, s.getTask)
		}
		return s.getTask(ctx, appName, id)
	})
}

func (s *Scheduler) getTask(ctx context.Context, appName, id string) (providers.Task, error) {
	if err := s.r.enter(ctx, "Scheduler.GetTask"); err != nil {
		return providers.Task{}, err
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	var t *task
	if o := r.oneoffs[appName]; o != nil {
		t = o.tasks[id]
	}
	if t == nil {
		return providers.Task{}, fmt.Errorf("fake scheduler: task %q of app %q: %w", id, appName, providers.ErrNotFound)
	}
	switch t.State {
	case providers.TaskPending:
		t.Started = r.now()
		if !r.hasImage(t.image) {
			r.stopTask(t, nil, "CannotPullContainerError: "+t.image.Ref()+": not found")
			break
		}
		t.State = providers.TaskRunning
		switch {
		case t.script != nil:
			for _, line := range t.script.output {
				r.taskLog(t, line)
			}
		case t.crash:
			r.taskLog(t, "panic: boom")
		}
	case providers.TaskRunning:
		code := 0
		switch {
		case t.script != nil:
			code = t.script.code
		case t.crash:
			code = 2
		}
		r.stopTask(t, intp(code), fmt.Sprintf("exit status %d", code))
	}
	return t.view(), nil
}

// StopTask implements providers.TaskRunner. A running task stops with
// ExitCode 143 (terminated); a pending one with no exit code.
func (s *Scheduler) StopTask(ctx context.Context, appName, id string) error {
	c := Call{Provider: "Scheduler", Method: "StopTask", Key: appName, Args: []any{appName, id}}
	return do0(s.r, ctx, c, func(ctx context.Context) error {
		if h := s.r.currentHooks().Scheduler.StopTask; h != nil {
			return h(ctx, appName, id, s.stopTask)
		}
		return s.stopTask(ctx, appName, id)
	})
}

func (s *Scheduler) stopTask(ctx context.Context, appName, id string) error {
	if err := s.r.enter(ctx, "Scheduler.StopTask"); err != nil {
		return err
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.oneoffs[appName]
	if o == nil {
		return nil
	}
	switch t := o.tasks[id]; {
	case t == nil:
	case t.State == providers.TaskPending:
		r.stopTask(t, nil, "Task stopped by user")
	case t.State == providers.TaskRunning:
		r.stopTask(t, intp(143), "Task stopped by user")
	}
	return nil
}
