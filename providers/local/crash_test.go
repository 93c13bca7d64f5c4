//go:build linux

package local_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/helperproc"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
	"github.com/convox-go/convox/providers/local/localtest"
)

// The crash test kills a deploying process with SIGKILL and checks what a
// reopened rack finds. It needs Linux: it verifies through /proc that no
// process of the killed run survives.

// Environment of the crash helper process.
const (
	crashDirEnv  = "CONVOX_CRASH_DIR"  // the rack directory
	crashTagEnv  = "CONVOX_CRASH_TAG"  // the image tag to deploy
	crashSeedEnv = "CONVOX_CRASH_SEED" // overrides crashSeed
)

const (
	crashRuns = 20
	crashSeed = 10
	// crashLeaseTTL is far longer than the test: a lease of a killed
	// deployer must stop holding because its process is gone, not by age.
	crashLeaseTTL = 10 * time.Minute
	// crashLine prefixes what the helper reports on standard output.
	crashLine = "crash: "
)

// crashRackOptions are the local rack's options in the helper and in the test.
func crashRackOptions() *local.Options {
	return &local.Options{StopGrace: 2 * time.Second}
}

func crashClient(t *testing.T, rack *local.Rack, onEvent func(convox.Event)) *convox.Client {
	t.Helper()
	c, err := convox.New(rack.ConvoxRack(), &convox.Options{
		OnEvent:      onEvent,
		PollInterval: 50 * time.Millisecond, MaxPollInterval: 200 * time.Millisecond,
		Timeout: time.Minute, LeaseTTL: crashLeaseTTL,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCrashHelperProcess is the deploying process TestCrash starts and
// kills: it opens the rack in $CONVOX_CRASH_DIR, deploys the first release
// when the app has none, then deploys image web:$CONVOX_CRASH_TAG, reporting
// each event on standard output, and waits to be killed.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrash; runs only when TestCrash starts it")
	}
	ctx := context.Background()
	rack, err := local.Open(dir, crashRackOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer rack.Close()
	var start atomic.Int64 // when the measured deploy started, in Unix nanoseconds
	c := crashClient(t, rack, func(e convox.Event) {
		if s := start.Load(); s != 0 {
			fmt.Printf("%sevent %s %s %d\n", crashLine, e.Type, e.Step, time.Now().UnixNano()-s)
		}
	})
	web := c.App("web")
	app, err := web.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if app.Active == "" {
		if _, err := web.Deploy(ctx, crashServerSpec("c0"), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Start from a settled rack, as the calibration run does, so that the
	// kill points fall inside the deploy.
	if _, err := localtest.Settle(ctx, rack.Scheduler(), "web", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%sdeploying\n", crashLine)
	start.Store(time.Now().UnixNano())
	rel, err := web.Deploy(ctx, convox.ReleaseSpec{Image: "web:" + os.Getenv(crashTagEnv)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%sdeployed %s %d\n", crashLine, rel.ID, time.Now().UnixNano()-start.Load())
	// Wait to be killed; a test that went away closes standard input.
	done := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
	}
}

// startCrashHelper starts TestCrashHelperProcess deploying the image tag
// on the rack in dir, and waits until its measured deploy starts.
func startCrashHelper(t *testing.T, dir, tag string) *helperproc.Process {
	t.Helper()
	h := helperproc.Start(t, "TestCrashHelperProcess", crashLine, crashDirEnv+"="+dir, crashTagEnv+"="+tag)
	timeout := time.After(time.Minute)
	for {
		line, ok, timedOut := h.Next(timeout)
		switch {
		case timedOut:
			h.Fatal(t, "the helper did not start deploying within a minute")
		case !ok:
			h.Fatal(t, "the helper exited before deploying")
		case line == "deploying":
			return h
		}
	}
}

// crashPidRecord is what the local rack's pid files hold.
type crashPidRecord struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// taskPids reads the pid files of the rack's processes.
func taskPids(t *testing.T, dir string) []crashPidRecord {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "scheduler", "tasks", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []crashPidRecord
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // removed as its process exited
		}
		var rec crashPidRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("pid file %s: %v", filepath.Base(f), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// procAlive reports whether the process recorded by rec still runs (and
// is not a zombie, nor another process that reused its pid).
func procAlive(rec crashPidRecord) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(rec.PID) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return false
	}
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return rec.Start == 0 || start == rec.Start
}

// procsUnder returns the live processes whose executable is inside dir.
func procsUnder(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestCrash kills a process deploying on a local rack with SIGKILL at
// random points of the deploy, 20 times on one directory, and after each
// kill reopens the rack and makes one root call: Recover, Cancel, or a new
// deploy, at once (the killed deployer's lease stops holding because its
// process is gone, long before its TTL). Then it checks the invariants:
// exactly one release is active and it is the one the scheduler serves,
// every release decodes, no lease is left, the endpoint answers the
// active release on every request, and no process of another release or
// of the killed run is running.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes deploying on a local rack")
	}
	seed := uint64(crashSeed)
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", crashSeedEnv, err)
		}
	}
	t.Logf("seed %d (set %s to change it)", seed, crashSeedEnv)
	rng := rand.New(rand.NewPCG(seed, seed))
	ctx := t.Context()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	// The images: MESSAGE is the tag, so the endpoint says which release serves.
	tags := make([]string, 2*crashRuns+2)
	for i := range tags {
		tags[i] = "c" + strconv.Itoa(i)
	}
	rack, err := local.Open(dir, crashRackOptions())
	if err != nil {
		t.Fatal(err)
	}
	localtest.PushVariants(t, ctx, rack.Registry(), "web", localtest.BuildGoImage(t, "testdata/server"), "MESSAGE", tags...)
	if _, err := crashClient(t, rack, nil).CreateApp(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	rack.Close()

	// Calibration: the first run deploys c0, then c1 to the end; the time
	// that took bounds the kill points of the other runs.
	h := startCrashHelper(t, dir, tags[1])
	var phases []crashPhase
	var took time.Duration
	timeout := time.After(time.Minute)
	for took == 0 {
		line, ok, timedOut := h.Next(timeout)
		if timedOut || !ok {
			h.Fatal(t, "the calibration deploy did not finish")
		}
		ev, at := crashParse(line)
		if ev == "deployed" {
			took = at
		} else {
			phases = append(phases, crashPhase{name: ev, from: at})
		}
	}
	h.Kill()
	// Each phase lasts until the next event; the deploy starts by creating
	// the release and ends with the time after it finished.
	phases = append([]crashPhase{{name: "creating the release"}}, phases...)
	phases = append(phases, crashPhase{name: "after the deploy", from: took})
	var timeline []string
	for i := range phases {
		phases[i].to = took + took/5
		if i+1 < len(phases) {
			phases[i].to = phases[i+1].from
		}
		timeline = append(timeline, fmt.Sprintf("%s +%s", phases[i].name, phases[i].from.Round(100*time.Microsecond)))
	}
	t.Logf("calibration: a deploy took %s: %s", took.Round(time.Millisecond), strings.Join(timeline, ", "))
	t.Logf("each run picks one of these %d phases at random, then a random point in it", len(phases))
	activeTag, outcome := checkAfterCrash(t, dir, "calibration run", crashCancel)
	if activeTag != tags[1] || outcome != crashNothing {
		t.Fatalf("calibration run: after a finished deploy of %s, %s serves and Cancel found %s", tags[1], activeTag, outcome)
	}

	var compensated, finished, redeployed int
	for run := 1; run <= crashRuns; run++ {
		prevTag, tag := activeTag, tags[2*run]
		// The first root call after reopening: every other run deploys a
		// new release at once; the others call Recover or Cancel.
		how := crashCancel
		switch run % 4 {
		case 0, 2:
			how = tags[2*run+1]
		case 1:
			how = crashRecover
		}
		phase := phases[rng.IntN(len(phases))]
		delay := phase.from
		if phase.to > phase.from {
			delay += time.Duration(rng.Int64N(int64(phase.to - phase.from)))
		}
		name := fmt.Sprintf("run %d", run)
		h := startCrashHelper(t, dir, tag)
		kill := time.After(delay)
		last, deployed := "none", false
	wait:
		for {
			line, ok, timedOut := h.Next(kill)
			switch {
			case timedOut:
				break wait
			case !ok:
				h.Fatal(t, "%s: the helper exited before it was killed", name)
			}
			if ev, _ := crashParse(line); ev == "deployed" {
				deployed = true
			} else {
				last = ev
			}
		}
		h.Kill()
		var outcome string
		activeTag, outcome = checkAfterCrash(t, dir, name, how)
		switch {
		case outcome == crashRedeployed:
			redeployed++
			if deployed {
				finished++
			}
			if activeTag != how {
				t.Errorf("%s: after a deploy of %s right after reopening, %s is active", name, how, activeTag)
			}
		case deployed:
			finished++
			last = "the deploy had finished"
			if activeTag != tag || outcome != crashNothing {
				t.Errorf("%s: after a finished deploy of %s, %s is active and %s found %s", name, tag, activeTag, how, outcome)
			}
		case outcome == crashCompensated:
			compensated++
			if activeTag != prevTag {
				t.Errorf("%s: %s compensated the deploy of %s, yet %s is active, not %s", name, how, tag, activeTag, prevTag)
			}
		case activeTag != prevTag && activeTag != tag:
			t.Errorf("%s: %s is active; want %s (before the deploy) or %s (the deploy)", name, activeTag, prevTag, tag)
		}
		t.Logf("%s: killed %s into the deploy of %s, aiming at %s (last event seen: %s); first call after reopening: %s: %s; %s serves",
			name, delay.Round(100*time.Microsecond), tag, phase.name, last, how, outcome, activeTag)
		if t.Failed() {
			t.Fatalf("invariants broken after %s with seed %d", name, seed)
		}
	}
	t.Logf("%d runs killed at random points (seed %d): %d deployed a new release right after reopening; in the others Recover or Cancel compensated %d deploys left in flight; %d kills came after the deploy finished",
		crashRuns, seed, redeployed, compensated, finished)
}

// crashPhase is a stretch of a deploy between two of its events.
type crashPhase struct {
	name     string
	from, to time.Duration
}

// The first root call after reopening in checkAfterCrash (or the image
// tag it deploys).
const (
	crashCancel  = "Cancel"
	crashRecover = "Recover"
)

// What the first root call after a kill found, or did.
const (
	crashCompensated = "compensated"
	crashNothing     = "nothing in flight"
	crashRedeployed  = "deployed right after reopening"
)

// crashParse splits a helper line "event TYPE STEP NANOS" or "deployed ID
// NANOS" into its event ("TYPE/STEP", or "deployed") and time.
func crashParse(line string) (string, time.Duration) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line, 0
	}
	n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
	if f[0] == "deployed" {
		return "deployed", time.Duration(n)
	}
	ev := f[1]
	if len(f) == 4 {
		ev += "/" + f[2]
	}
	return ev, time.Duration(n)
}

// checkAfterCrash reopens the rack after a kill and checks that the lease
// of the killed process no longer holds. Then its first root call (how)
// is Client.Recover, AppClient.Cancel, or a deploy of image web:<how>,
// none of which waits for the lease's TTL, and it checks the invariants,
// among them that what the balancer serves (a GET of the endpoint, which
// answers the release's image tag) is the store's active release. It
// returns the active release's image tag and what the call found.
func checkAfterCrash(t *testing.T, dir, name, how string) (string, string) {
	t.Helper()
	ctx := t.Context()
	orphans := taskPids(t, dir)
	rack, err := local.Open(dir, crashRackOptions())
	if err != nil {
		t.Fatalf("%s: reopen: %v", name, err)
	}
	defer rack.Close()
	for _, rec := range orphans {
		if procAlive(rec) {
			t.Errorf("%s: process %d of the killed run still runs after reopening", name, rec.PID)
		}
	}
	c := crashClient(t, rack, nil)
	web := c.App("web")

	// The lease of the killed process no longer holds: its holder is
	// provably gone, long before the lease's TTL.
	app, err := web.Get(ctx)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if app.Deploying != "" {
		t.Errorf("%s: the deploy of %s shows as in flight after its deployer was killed", name, app.Deploying)
	}
	outcome := crashCompensated
	switch how {
	case crashRecover:
		got, err := c.Recover(ctx)
		if err != nil {
			t.Fatalf("%s: Recover: %v", name, err)
		}
		if len(got) == 0 {
			outcome = crashNothing
		}
	case crashCancel:
		switch err := web.Cancel(ctx); {
		case errors.Is(err, providers.ErrNotFound):
			outcome = crashNothing
		case err != nil:
			t.Fatalf("%s: Cancel: %v", name, err)
		}
	default:
		outcome = crashRedeployed
		if _, err := web.Deploy(ctx, convox.ReleaseSpec{Image: "web:" + how}, nil); err != nil {
			t.Fatalf("%s: deploy right after reopening: %v", name, err)
		}
	}
	if err := web.Cancel(ctx); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("%s: a Cancel afterwards = %v, want ErrNotFound: a lease is still held", name, err)
	}

	st, err := localtest.Settle(ctx, rack.Scheduler(), "web", 30*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if app, err = web.Get(ctx); err != nil {
		t.Fatalf("%s: %v", name, err)
	}

	// Exactly one release is active: the app's, and the scheduler's.
	var active []string
	message := map[string]string{}
	for r, err := range web.Releases(ctx) {
		if err != nil {
			t.Fatalf("%s: list releases: %v", name, err)
		}
		message[r.ID] = strings.TrimPrefix(r.ImageRef, "web:")
		switch r.Status {
		case convox.StatusActive:
			active = append(active, r.ID)
		case convox.StatusDeploying:
			t.Errorf("%s: release %s is still deploying", name, r.ID)
		}
	}
	if diff := cmp.Diff([]string{app.Active}, active); diff != "" {
		t.Errorf("%s: active releases (-want +got):\n%s", name, diff)
	}
	if st.Release != app.Active {
		t.Errorf("%s: the scheduler serves %s, the store says %s is active", name, st.Release, app.Active)
	}
	// What the balancer serves is the active release, on every request.
	for range 5 {
		_, got, err := get(ctx, http.DefaultClient, app.Endpoints["web"])
		if err != nil {
			t.Fatalf("%s: GET %s: %v", name, app.Endpoints["web"], err)
		}
		if want := message[app.Active]; got != want {
			t.Errorf("%s: GET %s = %q, want %q of active release %s", name, app.Endpoints["web"], got, want, app.Active)
			break
		}
	}

	// Only the active release runs, in processes of this rack.
	tasks, err := crashCollect(web.Tasks(ctx))
	if err != nil {
		t.Fatalf("%s: Tasks: %v", name, err)
	}
	running := 0
	for _, task := range tasks {
		if task.State != providers.TaskStopped {
			running++
			if task.Release != app.Active {
				t.Errorf("%s: task %s of release %s is %s; %s is active", name, task.ID, task.Release, task.State, app.Active)
			}
		}
	}
	if running != 1 {
		t.Errorf("%s: %d tasks run, want 1", name, running)
	}
	if procs := procsUnder(dir); len(procs) != running {
		t.Errorf("%s: %d processes run from the rack directory (%v), want the %d tasks", name, len(procs), procs, running)
	}
	return message[app.Active], outcome
}

// crashServerSpec is a first release of the test server image with the
// tag: one routed web process answering the image's MESSAGE,
// health-checked often so that deploys are quick.
func crashServerSpec(tag string) convox.ReleaseSpec {
	return convox.ReleaseSpec{
		Image: "web:" + tag,
		Processes: []convox.Process{{
			Name: "web", Count: 1, Port: 8080,
			Health: providers.HealthCheck{Path: "/health", Interval: 100 * time.Millisecond, Healthy: 1},
		}},
	}
}

// crashCollect gathers what an iterator yields, stopping at its error.
func crashCollect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}
