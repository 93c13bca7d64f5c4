package local

import (
	"testing"

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
