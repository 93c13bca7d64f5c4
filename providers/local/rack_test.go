package local

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
