package local_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
	"github.com/convox-go/convox/providers/local/localtest"
)

// These tests drive the local rack through the root API, as a program
// embedding the SDK would: a real rack in a temporary directory, the test
// app in testdata/server, and HTTP requests through the app's endpoint.

// appHealth checks the test app's health path often, so deploys finish quickly.
var appHealth = providers.HealthCheck{Path: "/health", Interval: 100 * time.Millisecond, Timeout: time.Second, Healthy: 1, Unhealthy: 2}

// testRack is a local rack with a client and the app "web" created on it.
type testRack struct {
	rack *local.Rack
	web  *convox.AppClient
}

// openRack opens a rack in a temporary directory, pushes the test app as
// web:v1 and creates the app "web". opts may be nil.
func openRack(t *testing.T, opts *local.Options) *testRack {
	t.Helper()
	o := local.Options{StopGrace: 2 * time.Second}
	if opts != nil {
		o = *opts
	}
	rack, err := local.Open(t.TempDir(), &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rack.Close(); err != nil {
			t.Errorf("close rack: %v", err)
		}
	})
	c, err := convox.New(rack.ConvoxRack(), &convox.Options{
		PollInterval: 100 * time.Millisecond, MaxPollInterval: 500 * time.Millisecond,
		Timeout: 30 * time.Second, CompensateTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRack{rack: rack, web: c.App("web")}
	tr.push(t, "v1")
	if _, err := c.CreateApp(t.Context(), "web", nil); err != nil {
		t.Fatal(err)
	}
	return tr
}

// push pushes the test app as web:tag with vars added to the image's
// environment, and returns the reference.
func (tr *testRack) push(t *testing.T, tag string, vars ...string) string {
	t.Helper()
	return tr.pushWith(t, tag, func(cfg *v1.Config) { cfg.Env = append(cfg.Env, vars...) })
}

// pushWith pushes the test app as web:tag after edit changed its configuration.
func (tr *testRack) pushWith(t *testing.T, tag string, edit func(*v1.Config)) string {
	t.Helper()
	img := localtest.BuildGoImage(t, "testdata/server")
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	edit(&cfg.Config)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.rack.Registry().PushImage(t.Context(), "web", tag, img); err != nil {
		t.Fatal(err)
	}
	return "web:" + tag
}

// webSpec is a release of the test app running two web processes that answer message.
func webSpec(image, message string) convox.ReleaseSpec {
	return convox.ReleaseSpec{
		Image: image,
		Env:   map[string]string{"MESSAGE": message},
		Processes: []convox.Process{{
			Name: "web", Count: 2, Port: 8080, Health: appHealth,
			Route: convox.RouteConfig{DeregistrationDelay: 5 * time.Second},
		}},
	}
}

// deploy deploys spec and fails the test on error.
func (tr *testRack) deploy(t *testing.T, spec convox.ReleaseSpec, opts *convox.DeployOptions) *convox.Release {
	t.Helper()
	rel, err := tr.web.Deploy(t.Context(), spec, opts)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	return rel
}

// endpoint returns where the app's web process is reached.
func (tr *testRack) endpoint(t *testing.T) string {
	t.Helper()
	app, err := tr.web.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ep := app.Endpoints["web"]
	if !strings.HasPrefix(ep, "http://127.0.0.1:") {
		t.Fatalf("web endpoint %q is not on 127.0.0.1", ep)
	}
	return ep
}

// expectServing checks that release id is the app's active release and
// that a GET through the endpoint answers message.
func (tr *testRack) expectServing(t *testing.T, id, message string) {
	t.Helper()
	app, err := tr.web.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if app.Active != id {
		t.Errorf("active release is %q, want %q", app.Active, id)
	}
	status, body, err := get(t.Context(), http.DefaultClient, tr.endpoint(t))
	if err != nil {
		t.Fatalf("GET %s: %v", tr.endpoint(t), err)
	}
	if diff := cmp.Diff(response{http.StatusOK, message}, response{status, body}); diff != "" {
		t.Errorf("GET %s (-want +got):\n%s", tr.endpoint(t), diff)
	}
}

// response is what a GET answered.
type response struct {
	Status int
	Body   string
}

// get GETs url and returns the status and the trimmed body.
func get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// load is a bounded loop of GETs by a few workers, recording every outcome.
type load struct {
	stop     chan struct{}
	deployed atomic.Bool
	wg       sync.WaitGroup

	mu       sync.Mutex
	total    int
	failures []string       // one line per failed request
	bodies   map[string]int // answers of successful requests
	after    map[string]int // answers of requests sent after the deploy returned
}

// Load bounds: workers, the most requests each sends, each request's timeout.
const (
	loadWorkers     = 4
	loadMaxRequests = 20000
	loadTimeout     = 2 * time.Second
)

// startLoad starts GETting url until finish is called.
func startLoad(url string) *load {
	l := &load{stop: make(chan struct{}), bodies: map[string]int{}, after: map[string]int{}}
	client := &http.Client{
		Timeout:   loadTimeout,
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: loadWorkers},
	}
	for range loadWorkers {
		l.wg.Go(func() {
			for range loadMaxRequests {
				select {
				case <-l.stop:
					return
				default:
				}
				after := l.deployed.Load()
				status, body, err := get(context.Background(), client, url)
				l.record(after, status, body, err)
				// Leave the machine some room for the deploy itself.
				time.Sleep(time.Millisecond)
			}
		})
	}
	return l
}

func (l *load) record(after bool, status int, body string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	switch {
	case err != nil:
		l.failures = append(l.failures, err.Error())
	case status != http.StatusOK:
		l.failures = append(l.failures, fmt.Sprintf("%d %s", status, body))
	case after:
		l.after[body]++
	default:
		l.bodies[body]++
	}
}

// finish marks the deploy as returned, keeps the load on a little longer
// (through the old processes' stop) and stops it.
func (l *load) finish() {
	l.deployed.Store(true)
	time.Sleep(300 * time.Millisecond)
	close(l.stop)
	l.wg.Wait()
}

// loadWant is what a load should have seen: During are the answers seen
// while the deploy ran, MayAlso one more answer that may or may not have
// been seen then, and After the only answer once the deploy returned.
type loadWant struct {
	During  []string
	MayAlso string
	After   string
}

// check reports failed requests and unexpected answers, and logs the counts.
func (l *load) check(t *testing.T, name string, want loadWant) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("%s: failed requests: %d of %d; answers while deploying %v, after %v", name, len(l.failures), l.total, l.bodies, l.after)
	if len(l.failures) > 0 {
		t.Errorf("%d of %d requests failed, first: %s", len(l.failures), l.total, l.failures[0])
	}
	during := maps.Clone(l.bodies)
	delete(during, want.MayAlso)
	if diff := cmp.Diff(slices.Sorted(slices.Values(want.During)), slices.Sorted(maps.Keys(during))); diff != "" {
		t.Errorf("answers while deploying (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{want.After}, slices.Sorted(maps.Keys(l.after))); diff != "" {
		t.Errorf("answers after the deploy returned (-want +got):\n%s", diff)
	}
}

// TestDeploysUnderLoadFailNoRequest deploys new releases with each
// strategy while clients keep sending requests: every request succeeds,
// and the answers move from the old release's message to the new one's.
func TestDeploysUnderLoadFailNoRequest(t *testing.T) {
	tr := openRack(t, nil)
	tr.deploy(t, webSpec("web:v1", "v1"), nil)
	tr.expectServing(t, "R1", "v1")
	ep := tr.endpoint(t)

	for i, tc := range []struct {
		name     string
		strategy convox.Strategy
		// baked says the new release serves for a while before the deploy
		// returns, so the load must see both answers while it runs.
		baked bool
	}{
		{"canary 25% then 50%", convox.CanarySteps(convox.CanaryStep{Percent: 25, Bake: time.Second}, convox.CanaryStep{Percent: 50, Bake: time.Second}), true},
		{"blue/green", convox.BlueGreen(time.Second), true},
		{"rolling", convox.Rolling(), false},
	} {
		old, msg, id := fmt.Sprintf("v%d", i+1), fmt.Sprintf("v%d", i+2), fmt.Sprintf("R%d", i+2)
		t.Run(tc.name, func(t *testing.T) {
			l := startLoad(ep)
			_, err := tr.web.Deploy(t.Context(), convox.ReleaseSpec{Env: map[string]string{"MESSAGE": msg}}, &convox.DeployOptions{Strategy: tc.strategy})
			l.finish()
			if err != nil {
				t.Fatalf("deploy %s: %v", msg, err)
			}
			want := loadWant{During: []string{old, msg}, After: msg}
			if !tc.baked {
				want = loadWant{During: []string{old}, MayAlso: msg, After: msg}
			}
			l.check(t, tc.name, want)
			tr.expectServing(t, id, msg)
		})
		if t.Failed() {
			return
		}
	}
}

// TestCanaryAbortedWhenNewReleaseFailsHealth deploys, as a canary under
// load, a release whose processes never pass their health check: the
// deploy fails at the stage step and is rolled back, no request fails, no
// request reaches the new release, and the old release keeps all traffic.
func TestCanaryAbortedWhenNewReleaseFailsHealth(t *testing.T) {
	t.Parallel()
	tr := openRack(t, nil)
	tr.deploy(t, webSpec("web:v1", "v1"), nil)
	sick := tr.push(t, "sick", "UNHEALTHY=1")
	ep := tr.endpoint(t)

	l := startLoad(ep)
	_, err := tr.web.Deploy(t.Context(), convox.ReleaseSpec{Image: sick, Env: map[string]string{"MESSAGE": "v2"}}, &convox.DeployOptions{
		Timeout:  30 * time.Second, // bounds the test only: the failed health checks end the deploy
		Strategy: convox.CanarySteps(convox.CanaryStep{Percent: 25, Bake: time.Second}, convox.CanaryStep{Percent: 50, Bake: time.Second}),
	})
	l.finish()
	var de *convox.DeployError
	if !errors.As(err, &de) {
		t.Fatalf("deploy of the unhealthy release returned %v, want a *DeployError", err)
	}
	t.Logf("deploy error: %v", de)
	if diff := cmp.Diff(deployOutcome{Step: convox.StepStage, RolledBack: true, Previous: "R1", Reason: unhealthy}, outcomeOf(de, unhealthy)); diff != "" {
		t.Errorf("deploy error (-want +got):\n%s", diff)
	}
	l.check(t, "aborted canary", loadWant{During: []string{"v1"}, After: "v1"})
	tr.expectServing(t, "R1", "v1")
	weights, err := tr.rack.Balancer().Weights(t.Context(), providers.ResourceName("web", "web", ""))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"": 100, "g": 0}, weights); diff != "" {
		t.Errorf("route weights after the aborted canary (-want +got):\n%s", diff)
	}
}

// unhealthy is how the local rack reports the unhealthy test app's failed health checks.
const unhealthy = "health check returned 500 Internal Server Error"

// deployOutcome is what the tests compare of a *DeployError: Reason is
// set when the error's reason contains it.
type deployOutcome struct {
	Step       convox.Step
	RolledBack bool
	Previous   string
	TimedOut   bool
	Reason     string
}

// outcomeOf returns what the tests compare of de, with Reason set to want
// when de's reason contains it and to the whole reason otherwise.
func outcomeOf(de *convox.DeployError, want string) deployOutcome {
	reason := de.Reason
	if strings.Contains(reason, want) {
		reason = want
	}
	return deployOutcome{Step: de.Step, RolledBack: de.RolledBack, Previous: de.Previous, TimedOut: errors.Is(de, context.DeadlineExceeded), Reason: reason}
}

// TestBadInputLeavesPreviousReleaseServing sends bad input through the
// root API after a first release serves: each attempt fails with an error
// that says what is wrong, and the first release stays active and keeps
// answering through the app's endpoint.
func TestBadInputLeavesPreviousReleaseServing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// rack returns the rack options; nil means defaults.
		rack func(t *testing.T) *local.Options
		// deploy attempts the bad deploy.
		deploy func(t *testing.T, tr *testRack) error
		// check checks the error.
		check func(t *testing.T, err error)
	}{
		{
			name: "an image without an entrypoint or command is refused at CreateRelease",
			deploy: func(t *testing.T, tr *testRack) error {
				ref := tr.pushWith(t, "bare", func(c *v1.Config) { c.Entrypoint, c.Cmd = nil, nil })
				_, err := tr.web.CreateRelease(t.Context(), convox.ReleaseSpec{Image: ref})
				app, gerr := tr.web.Get(t.Context())
				if gerr != nil {
					t.Fatal(gerr)
				}
				if app.Latest != "R1" {
					t.Errorf("latest release is %q after the refused one, want R1: nothing should be recorded", app.Latest)
				}
				return err
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), "no entrypoint or command") {
					t.Errorf("got %v, want an invalid-argument error naming the missing entrypoint or command", err)
				}
				if errors.As(err, new(*convox.DeployError)) {
					t.Errorf("got a deploy error %v; CreateRelease refuses the release before any deploy", err)
				}
			},
		},
		{
			name: "a route port another program holds fails the deploy and names the port",
			rack: func(t *testing.T) *local.Options {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				port := ln.Addr().(*net.TCPAddr).Port
				return &local.Options{StopGrace: 2 * time.Second, RoutePorts: map[string]int{"web/admin": port}}
			},
			deploy: func(t *testing.T, tr *testRack) error {
				spec := webSpec("web:v1", "v2")
				spec.Processes = append(spec.Processes, convox.Process{Name: "admin", Count: 1, Port: 9090, Health: appHealth})
				_, err := tr.web.Deploy(t.Context(), spec, &convox.DeployOptions{Timeout: 20 * time.Second})
				return err
			},
			check: func(t *testing.T, err error) {
				var de *convox.DeployError
				if !errors.As(err, &de) {
					t.Fatalf("got %v, want a *DeployError", err)
				}
				// The local balancer reports a held port as a conflict, which
				// fails the deploy at once; the reason names the port.
				inUse := "address already in use"
				if diff := cmp.Diff(deployOutcome{Step: convox.StepRoutes, RolledBack: true, Previous: "R1", Reason: inUse}, outcomeOf(de, inUse)); diff != "" {
					t.Errorf("deploy error (-want +got):\n%s", diff)
				}
				if !errors.Is(err, providers.ErrConflict) {
					t.Errorf("got %v, want an error matching ErrConflict", err)
				}
			},
		},
		{
			name: "a process that never becomes healthy fails the deploy before its timeout and is rolled back",
			deploy: func(t *testing.T, tr *testRack) error {
				sick := tr.push(t, "sick", "UNHEALTHY=1")
				_, err := tr.web.Deploy(t.Context(), convox.ReleaseSpec{Image: sick, Env: map[string]string{"MESSAGE": "v2"}}, &convox.DeployOptions{Timeout: 20 * time.Second})
				return err
			},
			check: func(t *testing.T, err error) {
				var de *convox.DeployError
				if !errors.As(err, &de) {
					t.Fatalf("got %v, want a *DeployError", err)
				}
				if diff := cmp.Diff(deployOutcome{Step: convox.StepWait, RolledBack: true, Previous: "R1", Reason: unhealthy}, outcomeOf(de, unhealthy)); diff != "" {
					t.Errorf("deploy error (-want +got):\n%s", diff)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts *local.Options
			if tc.rack != nil {
				opts = tc.rack(t)
			}
			tr := openRack(t, opts)
			tr.deploy(t, webSpec("web:v1", "v1"), nil)
			err := tc.deploy(t, tr)
			t.Logf("error: %v", err)
			tc.check(t, err)
			tr.expectServing(t, "R1", "v1")
		})
	}
}
