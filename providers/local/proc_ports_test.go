package local

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-go/convox/providers"
)

// TestPortAllocatorAvoidsEphemeralAndHeldPorts checks the ports tasks get:
// below the OS's ephemeral range (where no listener on port 0 and no
// outgoing connection can take them), never one a live task holds, and
// free to hand out again once given back.
func TestPortAllocatorAvoidsEphemeralAndHeldPorts(t *testing.T) {
	a := newPortAllocator()
	eLo, eHi := ephemeralPorts()
	held := map[int]bool{}
	for range 200 {
		p, err := a.get()
		if err != nil {
			t.Fatal(err)
		}
		if p >= eLo && p <= eHi {
			t.Errorf("port %d is in the ephemeral range %d-%d", p, eLo, eHi)
		}
		if held[p] {
			t.Errorf("port %d handed out twice while held", p)
		}
		held[p] = true
	}
	for p := range held {
		a.put(p)
	}
	if len(a.inUse) != 0 {
		t.Errorf("ports still reserved after every put: %v", a.inUse)
	}
}

// TestSchedulerRestartsATaskWhosePortWasTaken lets another listener take
// the first port a task gets, between the allocator's check and the
// task's bind: the task exits, and the slot starts again on a new port
// without the exit counting as a failed start or a stopped task.
func TestSchedulerRestartsATaskWhosePortWasTaken(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "app")
	s := r.Scheduler()
	var once sync.Once
	var stolen net.Listener
	s.ports.mu.Lock()
	s.ports.handedOut = func(p int) {
		once.Do(func() {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				t.Errorf("take port %d: %v", p, err)
				return
			}
			stolen = ln
		})
	}
	s.ports.mu.Unlock()
	t.Cleanup(func() {
		if stolen != nil {
			stolen.Close()
		}
	})
	d := webDesired("app", "R1", img, route, 1, nil)
	d.Processes[0].Health.Grace = 0
	ro, st := apply(t, s, d)
	if ro.State != providers.RolloutCompleted {
		t.Fatalf("rollout: %s (%s), want completed", ro.State, ro.Reason)
	}
	if stolen == nil {
		t.Fatal("the test never took a port")
	}
	var tasks []string
	for _, task := range st.Tasks {
		tasks = append(tasks, string(task.State)+" "+task.Address)
	}
	want := "running 127.0.0.1:"
	if len(tasks) != 1 || !strings.HasPrefix(tasks[0], want) || strings.HasSuffix(tasks[0], ":"+strconv.Itoa(stolen.Addr().(*net.TCPAddr).Port)) {
		t.Fatalf("tasks = %q, want one running on another port than the taken %s", tasks, stolen.Addr())
	}
	if got := get(route.Endpoint); got != "hello" {
		t.Errorf("GET the route = %q, want hello", got)
	}
	page, err := r.Logs().Read(context.Background(), providers.LogQuery{App: "app"}, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range page.Entries {
		found = found || strings.Contains(e.Message, "held its port "+stolen.Addr().String())
	}
	if !found {
		t.Errorf("no log line tells that port %s was taken; log: %q", stolen.Addr(), logMessages(page.Entries))
	}
}

// TestSchedulerTaskExitCarriesItsLastOutput checks that a task dying in
// its health grace window fails the rollout with its last output lines in
// the reason, and in the stopped task's.
func TestSchedulerTaskExitCarriesItsLastOutput(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "app")
	ro, st := apply(t, r.Scheduler(), webDesired("app", "R1", img, route, 1, map[string]string{"CRASH": "1"}))
	const want = "exit status 2; last output: panic: boom"
	if ro.State != providers.RolloutFailed || !strings.Contains(ro.Reason, want) {
		t.Errorf("rollout: %s (%s), want failed with %q", ro.State, ro.Reason, want)
	}
	for _, task := range st.Tasks {
		if task.State == providers.TaskStopped && !strings.Contains(task.Reason, want) {
			t.Errorf("stopped task %s: reason %q, want %q in it", task.ID, task.Reason, want)
		}
	}
}

// TestSchedulerWaitsForATaskToBindItsPort starts a task that binds its
// port a second after it starts, with health checks that would fail it
// in a tenth of that: a task not listening yet is starting, not
// unhealthy, so the rollout completes.
func TestSchedulerWaitsForATaskToBindItsPort(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "app")
	d := webDesired("app", "R1", img, route, 1, map[string]string{"LISTEN_DELAY": "1s"})
	d.Processes[0].Health = providers.HealthCheck{Path: "/health", Interval: 50 * time.Millisecond, Timeout: time.Second, Healthy: 1, Unhealthy: 2}
	if ro, _ := apply(t, r.Scheduler(), d); ro.State != providers.RolloutCompleted {
		t.Fatalf("rollout: %s (%s), want completed", ro.State, ro.Reason)
	}
}
