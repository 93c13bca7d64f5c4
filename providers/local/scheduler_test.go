package local

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

func TestSchedulerRollsReleasesBehindTheBalancer(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")

	ro, st := apply(t, r.Scheduler(), webDesired("web", "R1", img, route, 2, map[string]string{"MESSAGE": "v1"}))
	if diff := cmp.Diff(providers.RolloutCompleted, ro.State); diff != "" {
		t.Fatalf("R1 rollout state (-want +got):\n%s\nreason: %s", diff, ro.Reason)
	}
	if diff := cmp.Diff([]providers.ProcessStatus{{Name: "web", Release: "R1", Desired: 2, Running: 2}}, st.Processes); diff != "" {
		t.Errorf("R1 processes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("v1", get(route.Endpoint)); diff != "" {
		t.Errorf("GET after R1 (-want +got):\n%s", diff)
	}

	ro, st = apply(t, r.Scheduler(), webDesired("web", "R2", img, route, 2, map[string]string{"MESSAGE": "v2"}))
	if diff := cmp.Diff(providers.RolloutCompleted, ro.State); diff != "" {
		t.Fatalf("R2 rollout state (-want +got):\n%s\nreason: %s", diff, ro.Reason)
	}
	if diff := cmp.Diff("R2", st.Release); diff != "" {
		t.Errorf("active release (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("v2", get(route.Endpoint)); diff != "" {
		t.Errorf("GET after R2 (-want +got):\n%s", diff)
	}
	var running, stoppedR1 int
	for _, task := range st.Tasks {
		switch {
		case task.State == providers.TaskRunning && task.Release == "R2":
			running++
		case task.State == providers.TaskStopped && task.Release == "R1":
			stoppedR1++
		default:
			t.Errorf("unexpected task %+v", task)
		}
	}
	if diff := cmp.Diff([2]int{2, 2}, [2]int{running, stoppedR1}); diff != "" {
		t.Errorf("[running R2, stopped R1] tasks (-want +got):\n%s", diff)
	}
}

func TestSchedulerApplyIsIdempotentByToken(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	d := webDesired("web", "R1", img, route, 1, nil)
	first, err := r.Scheduler().Apply(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.Scheduler().Apply(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("second Apply with the same token (-want +got):\n%s", diff)
	}
	waitRollout(t, r.Scheduler(), "web", first.ID)
	d.Token = "R1-retry"
	retry, st := apply(t, r.Scheduler(), d)
	if retry.ID == first.ID || retry.State != providers.RolloutCompleted {
		t.Errorf("a new token for the same release: rollout %+v, want a new completed rollout", retry)
	}
	if diff := cmp.Diff(2, len(st.Rollouts)); diff != "" {
		t.Errorf("rollouts (-want +got):\n%s", diff)
	}
}

func TestSchedulerRejectsBadInputBeforeAnyChange(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	noEntrypoint := img
	noEntrypoint.Entrypoint, noEntrypoint.Cmd = nil, nil
	missing := img
	missing.Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	tests := []struct {
		name    string
		edit    func(d *providers.Desired)
		wantErr error
	}{
		{"an image without entrypoint or command is invalid", func(d *providers.Desired) { d.Image = noEntrypoint }, providers.ErrInvalid},
		{"an image missing from the registry is not found", func(d *providers.Desired) { d.Image = missing }, providers.ErrNotFound},
		{"a binding of another kind is invalid", func(d *providers.Desired) {
			d.Bindings["web"] = []providers.Binding{{Balancer: "alb", Kind: providers.BindingTargetGroup, Target: "arn:aws:x"}}
		}, providers.ErrInvalid},
		{"a binding to a missing target set is not found", func(d *providers.Desired) {
			d.Bindings["web"] = []providers.Binding{{Balancer: BalancerName, Kind: providers.BindingLocal, Target: "web-gone"}}
		}, providers.ErrNotFound},
		{"a negative count is invalid", func(d *providers.Desired) { d.Processes[0].Count = -1 }, providers.ErrInvalid},
		{"a bad process name is invalid", func(d *providers.Desired) { d.Processes[0].Name = "Web" }, providers.ErrInvalid},
		{"a process listed twice is invalid", func(d *providers.Desired) { d.Processes = append(d.Processes, d.Processes[0]) }, providers.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := webDesired("bad", "R1", img, route, 1, nil)
			tt.edit(&d)
			_, err := r.Scheduler().Apply(t.Context(), d)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply error = %v, want %v", err, tt.wantErr)
			}
			if _, err := r.Scheduler().Status(t.Context(), "bad"); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("after a rejected Apply, Status error = %v, want ErrNotFound (nothing created)", err)
			}
		})
	}
}

func TestSchedulerFailedRolloutLeavesThePreviousReleaseServing(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	if ro, _ := apply(t, r.Scheduler(), webDesired("web", "R1", img, route, 1, map[string]string{"MESSAGE": "v1"})); ro.State != providers.RolloutCompleted {
		t.Fatalf("R1: %+v", ro)
	}
	tests := []struct {
		name       string
		release    string
		env        map[string]string
		wantReason string
		wantLog    string
	}{
		{"a process that crashes on start", "R2", map[string]string{"CRASH": "1"}, `process "web" failed to start 3 times; last: exit status 2; last output: panic: boom`, "panic: boom"},
		{"a process that never becomes healthy", "R3", map[string]string{"UNHEALTHY": "1"}, `process "web" failed to start 3 times; last: failed 2 health checks of /health: health check returned 500 Internal Server Error`, "listening on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro, st := apply(t, r.Scheduler(), webDesired("web", tt.release, img, route, 1, tt.env))
			if diff := cmp.Diff([2]string{string(providers.RolloutFailed), tt.wantReason}, [2]string{string(ro.State), ro.Reason}); diff != "" {
				t.Errorf("rollout [state, reason] (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("R1", st.Release); diff != "" {
				t.Errorf("active release (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("v1", get(route.Endpoint)); diff != "" {
				t.Errorf("GET after the failed rollout (-want +got):\n%s", diff)
			}
			failed := 0
			for _, task := range st.Tasks {
				if task.Release == tt.release {
					if task.State != providers.TaskStopped {
						t.Errorf("task %s of the failed release is %s, want stopped", task.ID, task.State)
					}
					failed++
				}
			}
			if failed < 3 {
				t.Errorf("%d stopped tasks of the failed release, want at least 3", failed)
			}
			page, err := r.Logs().Read(t.Context(), providers.LogQuery{App: "web", Release: tt.release, Filter: tt.wantLog}, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Entries) == 0 {
				t.Errorf("no log line of release %s contains %q", tt.release, tt.wantLog)
			}
		})
	}
}

func TestSchedulerRestartsCrashedTasks(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	_, st := apply(t, r.Scheduler(), webDesired("web", "R1", img, route, 1, nil))
	victim := st.Tasks[0]
	r.Scheduler().mu.Lock()
	pid := r.Scheduler().apps["web"].slots["web"][0].p.pid
	r.Scheduler().mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		st, err := r.Scheduler().Status(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		var stopped, replacement *providers.Task
		for i, task := range st.Tasks {
			switch {
			case task.ID == victim.ID && task.State == providers.TaskStopped:
				stopped = &st.Tasks[i]
			case task.ID != victim.ID && task.State == providers.TaskRunning:
				replacement = &st.Tasks[i]
			}
		}
		if stopped != nil && replacement != nil {
			if diff := cmp.Diff("signal: killed; last output: listening on "+victim.Address, stopped.Reason); diff != "" {
				t.Errorf("stop reason of the killed task (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("hello", get(route.Endpoint)); diff != "" {
				t.Errorf("GET through the replacement (-want +got):\n%s", diff)
			}
			return
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			t.Fatalf("the killed task was not replaced; status %+v", st)
		}
	}
}

func TestSchedulerRollingUpdateFailsNoRequest(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	apply(t, r.Scheduler(), webDesired("web", "R1", img, route, 2, map[string]string{"MESSAGE": "v1"}))

	stop := make(chan struct{})
	results := make(chan map[string]int)
	for range 4 {
		go func() {
			seen := map[string]int{}
			for i := 0; i < 5000; i++ { // bounded load
				select {
				case <-stop:
					results <- seen
					return
				default:
				}
				seen[get(route.Endpoint+"/sleep?d=5ms")]++
			}
			results <- seen
		}()
	}
	ro, _ := apply(t, r.Scheduler(), webDesired("web", "R2", img, route, 2, map[string]string{"MESSAGE": "v2"}))
	// keep the load on a little after the switch, through the old tasks' stop
	get(route.Endpoint + "/sleep?d=50ms")
	close(stop)
	total := map[string]int{}
	for range 4 {
		for k, v := range <-results {
			total[k] += v
		}
	}
	if ro.State != providers.RolloutCompleted {
		t.Fatalf("R2 rollout: %+v", ro)
	}
	for body, n := range total {
		if body != "v1" && body != "v2" {
			t.Errorf("%d requests answered %q during the rolling update", n, body)
		}
	}
	if total["v2"] == 0 {
		t.Errorf("no request reached R2: %v", total)
	}
}

func TestSchedulerRunTask(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	tests := []struct {
		name       string
		command    []string
		env        map[string]string
		wantCode   int
		wantReason string
		wantLog    string
	}{
		{"output goes to the logs and exit code 0 is kept", []string{"/app/server", "echo", "hello", "task"}, nil, 0, "exit status 0", "hello task"},
		{"a failing task keeps its exit code", nil, map[string]string{"CRASH": "1"}, 2, "exit status 2", "panic: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := providers.RunSpec{App: "web", Release: "R1", Token: tt.name, Image: img, Env: tt.env, Process: providers.Process{Name: "run"}, Command: tt.command}
			task, err := r.Scheduler().RunTask(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			again, err := r.Scheduler().RunTask(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			if again.ID != task.ID {
				t.Errorf("RunTask with the same token started task %s, want %s", again.ID, task.ID)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			for task.State != providers.TaskStopped {
				if !sleepCtx(ctx, 20*time.Millisecond) {
					t.Fatalf("task did not stop: %+v", task)
				}
				if task, err = r.Scheduler().GetTask(ctx, "web", task.ID); err != nil {
					t.Fatal(err)
				}
			}
			code := -1
			if task.ExitCode != nil {
				code = *task.ExitCode
			}
			if diff := cmp.Diff([2]any{tt.wantCode, tt.wantReason}, [2]any{code, task.Reason}); diff != "" {
				t.Errorf("[exit code, reason] (-want +got):\n%s", diff)
			}
			page, err := r.Logs().Read(ctx, providers.LogQuery{App: "web", Stream: task.ID}, "")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.wantLog}, logMessages(page.Entries)); diff != "" {
				t.Errorf("task output (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("an unknown task is not found", func(t *testing.T) {
		if _, err := r.Scheduler().GetTask(t.Context(), "web", "run-nothing"); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("GetTask error = %v, want ErrNotFound", err)
		}
	})
	t.Run("stopping a long task ends it with SIGTERM", func(t *testing.T) {
		task, err := r.Scheduler().RunTask(t.Context(), providers.RunSpec{App: "web", Release: "R1", Image: img, Process: providers.Process{Name: "run", Port: 8080}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Scheduler().StopTask(t.Context(), "web", task.ID); err != nil {
			t.Fatal(err)
		}
		got, err := r.Scheduler().GetTask(t.Context(), "web", task.ID)
		for err == nil && got.State != providers.TaskStopped { // the exit is recorded right after the process ends
			time.Sleep(5 * time.Millisecond)
			got, err = r.Scheduler().GetTask(t.Context(), "web", task.ID)
		}
		if err != nil {
			t.Fatal(err)
		}
		if got.Reason != "exit status 0" && got.Reason != "signal: terminated" {
			t.Errorf("stop reason = %q, want a SIGTERM exit", got.Reason)
		}
	})
}

func logMessages(es []providers.LogEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Message)
	}
	return out
}

func TestSchedulerDeleteStopsEverything(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	apply(t, r.Scheduler(), webDesired("web", "R1", img, route, 2, nil))
	r.Scheduler().mu.Lock()
	var pids []int
	for _, sl := range r.Scheduler().apps["web"].slots["web"] {
		pids = append(pids, sl.p.pid)
	}
	r.Scheduler().mu.Unlock()
	for _, name := range []string{"existing app", "missing app"} {
		if err := r.Scheduler().Delete(t.Context(), "web"); err != nil {
			t.Fatalf("Delete %s: %v", name, err)
		}
	}
	if _, err := r.Scheduler().Status(t.Context(), "web"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Status after Delete: error = %v, want ErrNotFound", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Delete (kill 0: %v)", pid, err)
		}
	}
	if diff := cmp.Diff("status 503: no healthy targets", get(route.Endpoint)); diff != "" {
		t.Errorf("GET after Delete (-want +got):\n%s", diff)
	}
}

func TestSchedulerCancelRolloutKeepsThePreviousRelease(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	apply(t, r.Scheduler(), webDesired("web", "R1", img, route, 1, map[string]string{"MESSAGE": "v1"}))
	// R2 never becomes healthy within its long grace period, so it is in flight when canceled.
	d := webDesired("web", "R2", img, route, 1, map[string]string{"UNHEALTHY": "1"})
	d.Processes[0].Health.Grace = time.Hour
	ro, err := r.Scheduler().Apply(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Scheduler().CancelRollout(t.Context(), "web", ro.ID); err != nil {
		t.Fatal(err)
	}
	got, st := waitRollout(t, r.Scheduler(), "web", ro.ID)
	if diff := cmp.Diff([2]string{string(providers.RolloutCanceled), "R1"}, [2]string{string(got.State), st.Release}); diff != "" {
		t.Errorf("[rollout state, active release] (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("v1", get(route.Endpoint)); diff != "" {
		t.Errorf("GET after cancel (-want +got):\n%s", diff)
	}
	if err := r.Scheduler().CancelRollout(t.Context(), "web", ro.ID); err != nil {
		t.Errorf("canceling a finished rollout: %v, want nil", err)
	}
}
