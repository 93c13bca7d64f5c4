package convox_test

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/local"
	"github.com/convox-go/convox/providers/local/localtest"
)

// twoBalancers returns a world whose rack has balancers "elb" (the
// default) and "alb", both served by the fake scheduler.
func twoBalancers(t *testing.T) *world {
	w := newWorld(t, &fake.Options{Balancers: []string{"alb"}})
	rk := w.rack.ConvoxRack()
	rk.Balancer = nil
	rk.Balancers = []convox.Named[providers.Balancer]{{Name: "elb", Provider: w.rack.Balancer()}, {Name: "alb", Provider: w.rack.BalancerNamed("alb")}}
	c, err := convox.New(rk, &convox.Options{PollInterval: time.Second, OnEvent: w.record})
	if err != nil {
		t.Fatal(err)
	}
	w.c = c
	return w
}

func healthy(t *testing.T, b providers.Balancer, route string) int {
	t.Helper()
	hs, err := b.Health(t.Context(), route)
	if err != nil {
		t.Fatalf("Health(%s): %v", route, err)
	}
	n := 0
	for _, h := range hs {
		if h.State == providers.TargetHealthy {
			n++
		}
	}
	return n
}

func TestBalancerMigration(t *testing.T) {
	t.Run("start serves on both, deploys keep both, finish moves to the new one", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := twoBalancers(t)
			ctx := t.Context()
			w.deployV1(ctx)
			elb, alb := w.rack.Balancer(), w.rack.BalancerNamed("alb")
			m, err := w.c.App("web").StartBalancerMigration(ctx, "alb", nil)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if m.From != "elb" || m.To != "alb" || m.Endpoints["web"] == "" || m.Endpoints["web"] == m.OldEndpoints["web"] {
				t.Errorf("migration %+v: want endpoints on both balancers", m)
			}
			if got := []int{healthy(t, elb, "web-web"), healthy(t, alb, "web-web")}; !cmp.Equal(got, []int{2, 2}) {
				t.Errorf("healthy targets on elb, alb = %v, want 2 each", got)
			}
			app, _ := w.c.App("web").Get(ctx)
			if app.MigratingTo != "alb" || app.NextEndpoints["web"] != m.Endpoints["web"] {
				t.Errorf("app %+v does not show the migration", app)
			}

			// A deploy during the migration attaches to both.
			w.push("v2")
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				t.Fatal(err)
			}
			if got := []int{healthy(t, elb, "web-web"), healthy(t, alb, "web-web")}; !cmp.Equal(got, []int{2, 2}) {
				t.Errorf("after a deploy, healthy targets on elb, alb = %v, want 2 each", got)
			}
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1"}, &convox.DeployOptions{Strategy: convox.Canary(10)}); !errors.Is(err, providers.ErrConflict) {
				t.Errorf("canary during a migration = %v, want ErrConflict", err)
			}

			if _, err := w.c.App("web").FinishBalancerMigration(ctx, nil); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if _, err := elb.Health(ctx, "web-web"); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("old route still exists: %v", err)
			}
			if n := healthy(t, alb, "web-web"); n != 2 {
				t.Errorf("%d healthy targets on alb, want 2", n)
			}
			app, _ = w.c.App("web").Get(ctx)
			if app.Providers.Balancer != "alb" || app.Endpoints["web"] != m.Endpoints["web"] || app.MigratingTo != "" {
				t.Errorf("app after finish = %+v", app)
			}
			// Rollback works after the move.
			if rb, err := w.c.App("web").Rollback(ctx, convox.Previous(), nil); err != nil || rb.Status != convox.StatusActive {
				t.Errorf("rollback after the migration = %+v, %v", rb, err)
			}
			if n := healthy(t, alb, "web-web"); n != 2 {
				t.Errorf("%d healthy targets on alb after rollback, want 2", n)
			}
		})
	})

	t.Run("abort removes the new routes and keeps the old", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := twoBalancers(t)
			ctx := t.Context()
			w.deployV1(ctx)
			if _, err := w.c.App("web").StartBalancerMigration(ctx, "alb", nil); err != nil {
				t.Fatal(err)
			}
			if err := w.c.App("web").AbortBalancerMigration(ctx, nil); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			if _, err := w.rack.BalancerNamed("alb").Health(ctx, "web-web"); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("new route still exists: %v", err)
			}
			if n := healthy(t, w.rack.Balancer(), "web-web"); n != 2 {
				t.Errorf("%d healthy targets on elb, want 2", n)
			}
			app, _ := w.c.App("web").Get(ctx)
			if app.Providers.Balancer != "elb" || app.MigratingTo != "" {
				t.Errorf("app after abort = %+v", app)
			}
		})
	})

	t.Run("bad requests change nothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := twoBalancers(t)
			ctx := t.Context()
			w.deployV1(ctx)
			for _, tc := range []struct {
				to   string
				want error
			}{{"nlb", providers.ErrInvalid}, {"elb", providers.ErrInvalid}, {"", providers.ErrInvalid}} {
				if _, err := w.c.App("web").StartBalancerMigration(ctx, tc.to, nil); !errors.Is(err, tc.want) {
					t.Errorf("Start(%q) = %v, want %v", tc.to, err, tc.want)
				}
			}
			if _, err := w.c.App("web").FinishBalancerMigration(ctx, nil); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("Finish without a migration = %v, want ErrNotFound", err)
			}
			if err := w.c.App("web").AbortBalancerMigration(ctx, nil); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("Abort without a migration = %v, want ErrNotFound", err)
			}
		})
	})
}

// loadLoop GETs url from 4 workers until stop is closed, counting failures.
func loadLoop(url string, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return ok, failed, wg.Wait
}

func TestBalancerMigrationOnTheLocalRack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes on a local rack")
	}
	ctx := t.Context()
	rack, err := local.Open(t.TempDir(), &local.Options{Balancers: []string{"alb"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rack.Close() })
	alb, err := rack.BalancerNamed("alb")
	if err != nil {
		t.Fatal(err)
	}
	c, err := convox.New(convox.Rack{
		Registry: rack.Registry(), Scheduler: rack.Scheduler(), Logs: rack.Logs(), Store: rack.Store(),
		Balancers: []convox.Named[providers.Balancer]{{Name: "elb", Provider: rack.Balancer()}, {Name: "alb", Provider: alb}},
	}, &convox.Options{PollInterval: 100 * time.Millisecond, MaxPollInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rack.Registry().PushImage(ctx, "web", "v1", localtest.BuildGoImage(t, "providers/local/testdata/server")); err != nil {
		t.Fatal(err)
	}
	c.CreateApp(ctx, "web", nil)
	web := c.App("web")
	spec := convox.ReleaseSpec{Image: "web:v1", Processes: []convox.Process{{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health", Interval: 100 * time.Millisecond}}}}
	if _, err := web.Deploy(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	app, _ := web.Get(ctx)

	stopOld := make(chan struct{})
	oldOK, oldFailed, waitOld := loadLoop(app.Endpoints["web"], stopOld)
	m, err := web.StartBalancerMigration(ctx, "alb", nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopNew := make(chan struct{})
	newOK, newFailed, waitNew := loadLoop(m.Endpoints["web"], stopNew)
	time.Sleep(300 * time.Millisecond)
	// Clients have moved to the new endpoint: stop the old clients, then finish.
	close(stopOld)
	waitOld()
	if _, err := web.FinishBalancerMigration(ctx, nil); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stopNew)
	waitNew()
	t.Logf("old endpoint: %d ok, %d failed; new endpoint: %d ok, %d failed", oldOK.Load(), oldFailed.Load(), newOK.Load(), newFailed.Load())
	if oldFailed.Load() != 0 || newFailed.Load() != 0 || oldOK.Load() == 0 || newOK.Load() == 0 {
		t.Errorf("failed requests during the migration: old %d, new %d", oldFailed.Load(), newFailed.Load())
	}
	if got := get(t, m.Endpoints["web"]); got != "hello" {
		t.Errorf("new endpoint answers %q", got)
	}
}
