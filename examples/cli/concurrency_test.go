package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
	"github.com/convox-go/convox/providers/local/localtest"
)

// TestTwoCLIsDeploy runs two "convox deploy" commands at the same instant
// on one local rack directory, for several rounds. The first to open the
// rack holds it; the second finds it held and forwards its command to the
// holder over the rack's socket, where it meets the first deploy's lease:
// exactly one exits 0 and the other exits 1 with the error code
// "conflict". Afterwards the history holds both releases of every round
// and the last winner's release is active and serving.
func TestTwoCLIsDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example CLI and runs real processes on a local rack")
	}
	const rounds = 4
	ctx := t.Context()
	bin := buildCLI(t)
	dir := filepath.Join(t.TempDir(), "rack")

	// The images, whose MESSAGE is their tag, and the app.
	tags := []string{"base"}
	for round := 1; round <= rounds; round++ {
		tags = append(tags, "a"+strconv.Itoa(round), "b"+strconv.Itoa(round))
	}
	rack, err := local.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	localtest.PushVariants(t, ctx, rack.Registry(), "web", localtest.BuildGoImage(t, "../../providers/local/testdata/server"), "MESSAGE", tags...)
	c, err := convox.New(rack.ConvoxRack(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.App("web").Deploy(ctx, serverSpec("base"), nil); err != nil {
		t.Fatal(err)
	}
	rack.Close()

	type outcome struct {
		code           int
		stdout, stderr string
		took           time.Duration
	}
	deploy := func(tag string) outcome {
		// Blue/green with a bake holds the lease for seconds: far longer
		// than the second command takes to find the rack held and forward.
		cmd := exec.Command(bin, "deploy", "web:"+tag, "--app", "web", "--rack-dir", dir, "--json", "--strategy", "blue-green", "--bake", "2s")
		cmd.Env = environ()
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		var ee *exec.ExitError
		code := 0
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			code = -1
		}
		return outcome{code, stdout.String(), stderr.String(), took}
	}

	want := map[string]convox.ReleaseStatus{"base": convox.StatusActive} // by image tag
	var winners []string
	for round := 1; round <= rounds; round++ {
		names := []string{"a", "b"}
		outs := make([]outcome, len(names))
		var wg sync.WaitGroup
		for i, n := range names {
			wg.Go(func() { outs[i] = deploy(n + strconv.Itoa(round)) })
		}
		wg.Wait()
		winner, loser := "", ""
		var took [2]time.Duration // the winner's and the loser's
		for i, n := range names {
			switch o := outs[i]; o.code {
			case 0:
				if winner != "" {
					t.Fatalf("round %d: both deploys succeeded; the second did not meet the first one's lease:\n%+v", round, outs)
				}
				winner, took[0] = n, o.took
			case 1:
				var doc struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal([]byte(o.stdout), &doc); err != nil || doc.Error.Code != "conflict" {
					t.Fatalf("round %d: deploy of %s%d failed with %+v, want error code conflict", round, n, round, o)
				}
				loser, took[1] = n, o.took
			default:
				t.Fatalf("round %d: deploy of %s%d: %+v", round, n, round, o)
			}
		}
		if winner == "" || loser == "" {
			t.Fatalf("round %d: want one deploy to win and one to conflict: %+v", round, outs)
		}
		winners = append(winners, winner)
		for tag, st := range want {
			if st == convox.StatusActive {
				want[tag] = convox.StatusSuperseded
			}
		}
		want[winner+strconv.Itoa(round)] = convox.StatusActive
		want[loser+strconv.Itoa(round)] = convox.StatusCreated
		t.Logf("round %d: the deploy of %s%d won in %s; %s%d exited 1 with code conflict after %s",
			round, winner, round, took[0].Round(time.Millisecond), loser, round, took[1].Round(time.Millisecond))
	}

	// The history is complete and the last winner serves.
	rack, err = local.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rack.Close()
	c, err = convox.New(convox.Rack{Registry: rack.Registry(), Scheduler: rack.Scheduler(), Balancer: rack.Balancer(), Logs: rack.Logs(), Store: rack.Store()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]convox.ReleaseStatus{}
	for r, err := range c.App("web").Releases(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got[strings.TrimPrefix(r.ImageRef, "web:")] = r.Status
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("release statuses by image tag (-want +got):\n%s", diff)
	}
	if err := c.App("web").Cancel(ctx); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Cancel = %v, want ErrNotFound: a deploy lease is left", err)
	}
	st, err := localtest.Settle(ctx, rack.Scheduler(), "web", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	app, err := c.App("web").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := winners[len(winners)-1] + strconv.Itoa(rounds)
	if st.Release != app.Active {
		t.Errorf("the scheduler serves %s, the store says %s is active", st.Release, app.Active)
	}
	resp, err := http.Get(app.Endpoints["web"])
	if err != nil {
		t.Fatalf("GET %s: %v", app.Endpoints["web"], err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body)); got != last {
		t.Errorf("GET %s = %q, want %q", app.Endpoints["web"], got, last)
	}
	t.Logf("%d rounds of two CLI deploys at once: one winner each (%s)", rounds, strings.Join(winners, " "))
}

// serverSpec is a first release of the test server image with the tag:
// one routed web process answering the image's MESSAGE, health-checked
// often so that deploys are quick.
func serverSpec(tag string) convox.ReleaseSpec {
	return convox.ReleaseSpec{
		Image: "web:" + tag,
		Processes: []convox.Process{{
			Name: "web", Count: 1, Port: 8080,
			Health: providers.HealthCheck{Path: "/health", Interval: 100 * time.Millisecond, Healthy: 1},
		}},
	}
}
