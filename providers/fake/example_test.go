package fake_test

import (
	"context"
	"fmt"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// A hook makes the scheduler unavailable for the first Apply; the caller
// sees a temporary error, retries, and the rollout completes on the fourth
// observation.
func Example() {
	ctx := context.Background()
	rack := fake.New(nil)
	img := rack.Push("web", "v1", &fake.ImageConfig{Cmd: []string{"serve"}})

	failed := false
	remove := rack.AddHooks(fake.Hooks{Scheduler: fake.SchedulerHooks{
		Apply: func(ctx context.Context, d providers.Desired, next func(context.Context, providers.Desired) (providers.Rollout, error)) (providers.Rollout, error) {
			if !failed {
				failed = true
				return providers.Rollout{}, fmt.Errorf("scheduler down: %w", providers.ErrUnavailable)
			}
			return next(ctx, d)
		},
	}})
	defer remove()

	d := providers.Desired{
		App: "web", Release: "r1", Token: "r1-a", Image: img,
		Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}},
	}
	_, err := rack.Scheduler().Apply(ctx, d)
	fmt.Println("apply:", err, "| temporary:", providers.IsTemporary(err))

	ro, _ := rack.Scheduler().Apply(ctx, d)
	fmt.Println("retry:", ro.ID, ro.State)
	for {
		st, _ := rack.Scheduler().Status(ctx, "web")
		if st.Release == d.Release {
			fmt.Println("release:", st.Release, "| running:", st.Processes[0].Running)
			break
		}
	}
	for _, c := range rack.Calls() {
		fmt.Println(c)
	}
	// Output:
	// apply: scheduler down: unavailable | temporary: true
	// retry: rollout-1 in-progress
	// release: r1 | running: 2
	// Scheduler.Apply(web) = scheduler down: unavailable
	// Scheduler.Apply(web)
	// Scheduler.Status(web)
	// Scheduler.Status(web)
	// Scheduler.Status(web)
	// Scheduler.Status(web)
}

// Scripted behaviours need no hook: here a release crash-loops and the
// stopped tasks and their last log line explain why it never completes.
// The script's undo ends it: the next tasks run.
func ExampleRack_CrashLoop() {
	ctx := context.Background()
	rack := fake.New(nil)
	img := rack.Push("web", "v2", &fake.ImageConfig{Cmd: []string{"serve"}})
	undo := rack.CrashLoop("r2")

	d := providers.Desired{
		App: "web", Release: "r2", Token: "r2", Image: img,
		Processes: []providers.Process{{Name: "web", Count: 1, Port: 8080}},
	}
	rack.Scheduler().Apply(ctx, d)
	var st providers.AppStatus
	for range 2 { // start, then run: the task crashes
		st, _ = rack.Scheduler().Status(ctx, "web")
	}
	tk := st.Tasks[0]
	page, _ := rack.Logs().Read(ctx, providers.LogQuery{App: "web", Stream: tk.ID}, "")
	fmt.Println("rollout:", st.Rollouts[0].State, "| release:", st.Release == "")
	fmt.Println("task:", tk.ID, tk.State, *tk.ExitCode, tk.Reason)
	fmt.Println("last line:", page.Entries[len(page.Entries)-1].Message)

	undo()
	for range 4 { // start again, run, drain, complete
		st, _ = rack.Scheduler().Status(ctx, "web")
	}
	fmt.Println("after undo:", st.Rollouts[0].State, "| release:", st.Release)
	// Output:
	// rollout: in-progress | release: true
	// task: web-web-1 stopped 2 exit status 2
	// last line: panic: boom
	// after undo: completed | release: r2
}
