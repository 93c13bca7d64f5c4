package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// The deploy part measures, on the fake rack through the root API (as the
// root package's BenchmarkDeploy and BenchmarkRollback do):
//
//   - a full deploy of an app with a routed web process and a worker:
//     create the release, take the lease, ensure the route, apply, wait
//     until converged and healthy, activate; alternating two images, so
//     that every deploy rolls out. The client polls without pauses (the
//     fake advances on observation, not on time), so the time is the
//     SDK's own cost plus the fake's. Time per deploy is the median of
//     several rounds; allocations per deploy come from runtime.MemStats
//     over all rounds.
//   - Rollback(Previous) of an app with 10 releases of history and of one
//     with 10,000 (padded with releases that were never promoted), in
//     interleaved rounds. Each rollback adds a release, so the small app
//     is made again every round and its history stays between 10 and
//     10 + the rollbacks of a round (and its few unmeasured ones).

// Shape of the deploy part.
const (
	deployWarmup       = 50
	deployRounds       = 7
	deployPerRound     = 300
	deployRoundsShort  = 2
	deployPerRoundShrt = 20

	rollbackSmall          = 10
	rollbackLarge          = 10000
	rollbackLargeShort     = 1000
	rollbackRounds         = 15
	rollbackPerRound       = 100
	rollbackRoundsShort    = 2
	rollbackPerRoundShort  = 10
	rollbackWarmupPerRound = 5
)

// Goals of issue #10.
const (
	goalDeployTime     = time.Millisecond
	goalRollbackGrowth = 1.2
)

// fakeClient returns a client over a new fake rack, polling without
// pauses and without a rate limit, with the images web:v1 and web:v2
// pushed and the app "web" created.
func fakeClient(ctx context.Context) (*convox.Client, error) {
	r := fake.New(nil)
	c, err := convox.New(fakeRackOf(r), &convox.Options{PollInterval: 1, MaxPollInterval: 1, RateLimit: -1})
	if err != nil {
		return nil, err
	}
	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/a"}})
	r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/b"}})
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		return nil, err
	}
	return c, nil
}

// fakeRackOf returns the providers of a fake rack as a convox.Rack.
func fakeRackOf(r *fake.Rack) convox.Rack {
	return convox.Rack{
		Registry: r.Registry(), Scheduler: r.Scheduler(), Balancer: r.Balancer(),
		Logs: r.Logs(), Store: r.Store(), Notifiers: []providers.Notifier{r.Notifier()},
	}
}

// webSpec is a release of image with a routed web process and a worker.
func webSpec(image string) convox.ReleaseSpec {
	return convox.ReleaseSpec{
		Image: image,
		Env:   map[string]string{"MODE": "production"},
		Processes: []convox.Process{
			{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}},
			{Name: "worker", Count: 1, Command: []string{"/app/worker"}},
		},
	}
}

// allocs is a runtime.MemStats reading of the allocation counters.
type allocs struct{ mallocs, bytes uint64 }

func readAllocs() allocs {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return allocs{m.Mallocs, m.TotalAlloc}
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func runDeploy(ctx context.Context, cfg config) error {
	rounds, perRound := deployRounds, deployPerRound
	rbLarge, rbRounds, rbPerRound := rollbackLarge, rollbackRounds, rollbackPerRound
	if cfg.short {
		rounds, perRound = deployRoundsShort, deployPerRoundShrt
		rbLarge, rbRounds, rbPerRound = rollbackLargeShort, rollbackRoundsShort, rollbackPerRoundShort
	}

	// Deploys.
	c, err := fakeClient(ctx)
	if err != nil {
		return err
	}
	app := c.App("web")
	if _, err := app.Deploy(ctx, webSpec("web:v1"), nil); err != nil {
		return fmt.Errorf("first deploy: %w", err)
	}
	tags := []string{"web:v2", "web:v1"}
	n := 0
	deploy := func() error {
		_, err := app.Deploy(ctx, convox.ReleaseSpec{Image: tags[n%2]}, nil)
		n++
		return err
	}
	for range deployWarmup {
		if err := deploy(); err != nil {
			return fmt.Errorf("warm-up deploy: %w", err)
		}
	}
	var times []time.Duration
	var total allocs
	for range rounds {
		runtime.GC()
		before := readAllocs()
		start := time.Now()
		for range perRound {
			if err := deploy(); err != nil {
				return fmt.Errorf("deploy %d: %w", n, err)
			}
		}
		times = append(times, time.Since(start)/time.Duration(perRound))
		after := readAllocs()
		total.mallocs += after.mallocs - before.mallocs
		total.bytes += after.bytes - before.bytes
	}
	deploys := uint64(rounds * perRound)
	perDeploy := medianDuration(times)
	fmt.Fprintf(cfg.out, "deploy: %d rounds of %d deploys (after %d warm-up), web (2, routed) + worker (1), images alternating\n", rounds, perRound, deployWarmup)
	fmt.Fprintf(cfg.out, "time per deploy: %s (median round; rounds: %s)\n", perDeploy.Round(time.Microsecond), fmtDurations(times))
	fmt.Fprintf(cfg.out, "allocations per deploy: %d (%d bytes)\n", total.mallocs/deploys, total.bytes/deploys)

	// Rollbacks.
	large, err := rollbackApp(ctx, rbLarge)
	if err != nil {
		return fmt.Errorf("app with %d releases: %w", rbLarge, err)
	}
	var small, big []time.Duration
	for round := range rbRounds {
		s, err := rollbackApp(ctx, rollbackSmall)
		if err != nil {
			return fmt.Errorf("app with %d releases: %w", rollbackSmall, err)
		}
		order := []*convox.AppClient{s, large}
		if round%2 == 1 {
			order = []*convox.AppClient{large, s}
		}
		for _, a := range order {
			d, err := timeRollbacks(ctx, a, rbPerRound)
			if err != nil {
				return err
			}
			if a == s {
				small = append(small, d)
			} else {
				big = append(big, d)
			}
		}
	}
	ms, mb := medianDuration(small), medianDuration(big)
	fmt.Fprintf(cfg.out, "rollback (Previous): %d interleaved rounds of %d rollbacks per app\n", rbRounds, rbPerRound)
	fmt.Fprintf(cfg.out, "  history %5d: %s per rollback (median round; rounds: %s)\n", rollbackSmall, ms.Round(time.Microsecond), fmtDurations(small))
	fmt.Fprintf(cfg.out, "  history %5d: %s per rollback (median round; rounds: %s)\n", rbLarge, mb.Round(time.Microsecond), fmtDurations(big))
	goalUnder(cfg.out, "time per deploy", perDeploy.Round(time.Microsecond), goalDeployTime)
	goalAtMost(cfg.out, fmt.Sprintf("rollback time with %d/%d releases of history", rbLarge, rollbackSmall), float64(mb)/float64(ms), goalRollbackGrowth)
	return nil
}

// rollbackApp returns the app "web" of a new fake rack with history
// releases: v1 deployed, v2 deployed, releases never promoted up to
// history-1, then v1 deployed again, so that Rollback(Previous) goes
// back to v2.
func rollbackApp(ctx context.Context, history int) (*convox.AppClient, error) {
	c, err := fakeClient(ctx)
	if err != nil {
		return nil, err
	}
	app := c.App("web")
	if _, err := app.Deploy(ctx, webSpec("web:v1"), nil); err != nil {
		return nil, err
	}
	if _, err := app.Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
		return nil, err
	}
	for range history - 3 {
		if _, err := app.CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"}); err != nil {
			return nil, err
		}
	}
	if _, err := app.Deploy(ctx, convox.ReleaseSpec{Image: "web:v1"}, nil); err != nil {
		return nil, err
	}
	return app, nil
}

// timeRollbacks rolls app back n times after a few unmeasured ones and
// returns the time per rollback.
func timeRollbacks(ctx context.Context, app *convox.AppClient, n int) (time.Duration, error) {
	for range rollbackWarmupPerRound {
		if _, err := app.Rollback(ctx, convox.Previous(), nil); err != nil {
			return 0, fmt.Errorf("rollback: %w", err)
		}
	}
	start := time.Now()
	for range n {
		if _, err := app.Rollback(ctx, convox.Previous(), nil); err != nil {
			return 0, fmt.Errorf("rollback: %w", err)
		}
	}
	return time.Since(start) / time.Duration(n), nil
}

// fmtDurations prints durations in microseconds, separated by spaces.
func fmtDurations(ds []time.Duration) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
	return s
}
