package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local/localtest"
)

// testServer is the test app: see testdata/server.
const testServer = "testdata/server"

// fastHealth checks the test app's health path often, so rollouts finish
// quickly.
var fastHealth = providers.HealthCheck{Path: "/health", Interval: 100 * time.Millisecond, Timeout: time.Second, Healthy: 1, Unhealthy: 2}

func testOptions() *Options {
	return &Options{StopGrace: 5 * time.Second, RestartBackoff: 20 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond}
}

// openTestRack opens a rack in dir (a new temporary directory when empty)
// and closes it when the test ends.
func openTestRack(t *testing.T, dir string) *Rack {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	r, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// pushTestImage pushes the test app as repo:tag.
func pushTestImage(t *testing.T, r *Rack, repo, tag string) providers.Image {
	t.Helper()
	img, err := r.Registry().PushImage(context.Background(), repo, tag, localtest.BuildGoImage(t, testServer))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// webDesired is a release of the test app with a web process behind route.
func webDesired(app, release string, img providers.Image, route providers.Route, count int, env map[string]string) providers.Desired {
	return providers.Desired{
		App: app, Release: release, Token: release, Image: img, Env: env,
		Processes: []providers.Process{{Name: "web", Count: count, Port: 8080, Health: fastHealth}},
		Bindings:  map[string][]providers.Binding{"web": {route.Binding}},
	}
}

func ensureWebRoute(t *testing.T, r *Rack, app string) providers.Route {
	t.Helper()
	route, err := r.Balancer().EnsureRoute(context.Background(), providers.RouteSpec{App: app, Process: "web", Port: 8080, Health: fastHealth, DeregistrationDelay: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return route
}

// waitRollout polls the app's status until the rollout has finished and
// returns its final state with the status observed then.
func waitRollout(t *testing.T, s *Scheduler, app, id string) (providers.Rollout, providers.AppStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		st, err := s.Status(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		for _, ro := range st.Rollouts {
			if ro.ID == id && ro.State != providers.RolloutInProgress {
				return ro, st
			}
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			t.Fatalf("rollout %s of %s did not finish; last status %+v", id, app, st)
		}
	}
}

// apply applies d and waits for its rollout.
func apply(t *testing.T, s *Scheduler, d providers.Desired) (providers.Rollout, providers.AppStatus) {
	t.Helper()
	ro, err := s.Apply(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return waitRollout(t, s, d.App, ro.ID)
}

// get returns the body of GET url, trimmed, or the error text.
func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b))
}

func TestRackReopenBringsEverythingBack(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	if _, err := r.Store().Put(t.Context(), "apps/web", []byte(`{"active":"R1"}`), 0); err != nil {
		t.Fatal(err)
	}
	apply(t, r.Scheduler(), webDesired("web", "R1", img, route, 1, map[string]string{"MESSAGE": "v1"}))
	registry := r.Registry().Host()
	r.Scheduler().mu.Lock()
	pid := r.Scheduler().apps["web"].slots["web"][0].p.pid
	r.Scheduler().mu.Unlock()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still exists after Close (kill 0: %v)", pid, err)
	}
	if got := get(route.Endpoint); !strings.HasPrefix(got, "error:") {
		t.Fatalf("GET after Close = %q, want a connection error", got)
	}

	r = openTestRack(t, dir)
	doc, err := r.Store().Get(t.Context(), "apps/web")
	if err != nil {
		t.Fatal(err)
	}
	recovered := waitRecovered(t, r.Scheduler(), "web")
	again, err := r.Balancer().EnsureRoute(t.Context(), providers.RouteSpec{App: "web", Process: "web", Port: 8080, Health: fastHealth, DeregistrationDelay: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := r.Registry().Resolve(t.Context(), "web:v1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"store document": string(doc.Value),
		"endpoint":       again.Endpoint,
		"response":       get(again.Endpoint),
		"registry":       r.Registry().Host(),
		"image":          resolved.Digest,
		"release":        recovered.Release,
	}
	want := map[string]string{
		"store document": `{"active":"R1"}`,
		"endpoint":       route.Endpoint,
		"response":       "v1",
		"registry":       registry,
		"image":          img.Digest,
		"release":        "R1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after reopening (-want +got):\n%s", diff)
	}
}

// waitRecovered waits until the app's newest rollout (the recovery of a
// reopened rack) has finished and returns the status then.
func waitRecovered(t *testing.T, s *Scheduler, app string) providers.AppStatus {
	t.Helper()
	st, err := s.Status(t.Context(), app)
	if err != nil {
		t.Fatal(err)
	}
	ro, st := waitRollout(t, s, app, st.Rollouts[0].ID)
	if ro.State != providers.RolloutCompleted {
		t.Fatalf("recovery rollout: %+v", ro)
	}
	return st
}

func TestRackOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	inUse := t.TempDir()
	openTestRack(t, inUse)
	tests := []struct {
		name    string
		dir     string
		wantErr error
	}{
		{"a directory another rack has open is unavailable", inUse, providers.ErrUnavailable},
		{"a path below a file is invalid", filepath.Join(file, "rack"), providers.ErrInvalid},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		readOnly := t.TempDir()
		if err := os.Chmod(readOnly, 0o500); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name    string
			dir     string
			wantErr error
		}{"an unwritable directory is a permission error", filepath.Join(readOnly, "rack"), providers.ErrPermission})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(tt.dir, nil)
			if err == nil {
				r.Close()
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Open error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestRackHelperProcess is not a test: it is the program
// TestRackRecoversFromACrash kills.
func TestRackHelperProcess(t *testing.T) {
	dir := os.Getenv("LOCAL_RACK_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestRackRecoversFromACrash")
	}
	r, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	img := pushTestImage(t, r, "web", "v1")
	route := ensureWebRoute(t, r, "web")
	apply(t, r.Scheduler(), webDesired("web", "R1", img, route, 2, map[string]string{"MESSAGE": "v1"}))
	// start R2 and report; the parent kills this program mid-rollout
	d := webDesired("web", "R2", img, route, 2, map[string]string{"MESSAGE": "v2"})
	d.Processes[0].Health.Grace = time.Hour
	d.Env["UNHEALTHY"] = "1"
	if _, err := r.Scheduler().Apply(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	for {
		st, _ := r.Scheduler().Status(t.Context(), "web")
		if len(st.Tasks) >= 4 { // two R1, two starting R2
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("HELPER-READY", route.Endpoint)
	select {}
}

func TestRackRecoversFromACrash(t *testing.T) {
	dir := t.TempDir()
	localtest.BuildGoImage(t, testServer) // build before the helper does
	cmd := exec.Command(os.Args[0], "-test.run=^TestRackHelperProcess$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "LOCAL_RACK_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var endpoint string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "HELPER-READY "); ok {
			endpoint = rest
			break
		}
	}
	if endpoint == "" {
		t.Fatal("the helper program did not get ready")
	}
	var stale []pidRecord
	files, _ := os.ReadDir(filepath.Join(dir, "scheduler", "tasks"))
	for _, f := range files {
		var rec pidRecord
		if readJSON(filepath.Join(dir, "scheduler", "tasks", f.Name()), &rec) == nil {
			stale = append(stale, rec)
		}
	}
	if len(stale) != 4 {
		t.Fatalf("the helper left %d pid files, want 4", len(stale))
	}
	cmd.Process.Kill() // SIGKILL: no cleanup at all
	cmd.Wait()

	r := openTestRack(t, dir)
	st := waitRecovered(t, r.Scheduler(), "web")
	var states []string
	for _, ro := range st.Rollouts {
		states = append(states, ro.Release+" "+string(ro.State))
	}
	if diff := cmp.Diff([]string{"R1 completed", "R2 failed", "R1 completed"}, states); diff != "" {
		t.Errorf("rollouts after recovery, newest first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("v1", get(endpoint)); diff != "" {
		t.Errorf("GET after recovery (-want +got):\n%s", diff)
	}
	for _, rec := range stale {
		if err := syscall.Kill(rec.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d of the crashed run still exists (kill 0: %v)", rec.PID, err)
		}
	}
	running := 0
	for _, task := range st.Tasks {
		if task.State == providers.TaskRunning {
			running++
		}
	}
	if diff := cmp.Diff(2, running); diff != "" {
		t.Errorf("running tasks after recovery (-want +got):\n%s", diff)
	}
}
