package convox_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/holder"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// crashedDeployer leaves the lease a deployer that died mid-deploy of
// release would leave: held, with the release applied to the scheduler.
func crashedDeployer(t *testing.T, ctx context.Context, c *convox.Client, r *fake.Rack, release string) {
	t.Helper()
	crashedDeployerProcess(t, ctx, c, r, release, nil)
}

// crashedDeployerProcess is crashedDeployer with the lease naming the
// deployer's process.
func crashedDeployerProcess(t *testing.T, ctx context.Context, c *convox.Client, r *fake.Rack, release string, proc *holder.ID) {
	t.Helper()
	desired, err := convox.LeaveCrashedLease(ctx, c, "web", release, proc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Scheduler().Apply(ctx, desired); err != nil {
		t.Fatal(err)
	}
}

func leaseWorld(t *testing.T) (*convox.Client, *fake.Rack) {
	r := fake.New(nil)
	c, err := convox.New(convox.Rack{Registry: r.Registry(), Scheduler: r.Scheduler(), Logs: r.Logs(), Store: r.Store()},
		&convox.Options{PollInterval: time.Second, LeaseTTL: time.Minute, Holder: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/v1"}})
	r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/v2"}})
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: []convox.Process{{Name: "worker", Count: 1}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"}); err != nil {
		t.Fatal(err)
	}
	return c, r
}

func TestLease(t *testing.T) {
	t.Run("a held lease refuses a second deployer until it expires", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, r := leaseWorld(t)
			ctx := t.Context()
			crashedDeployer(t, ctx, c, r, "R2")
			if _, err := c.App("web").Promote(ctx, "R2", nil); !errors.Is(err, providers.ErrConflict) {
				t.Fatalf("Promote under a live lease = %v, want providers.ErrConflict", err)
			}
			time.Sleep(convox.LeaseTTL(c))
			dep, err := c.App("web").Promote(ctx, "R2", nil)
			if err != nil {
				t.Fatalf("Promote after the lease expired: %v", err)
			}
			if err := dep.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			app, _ := c.App("web").Get(ctx)
			if app.Active != "R2" || app.Deploying != "" {
				t.Errorf("active %q deploying %q, want R2 and nothing in flight", app.Active, app.Deploying)
			}
		})
	})

	t.Run("cancel of a dead deployer's deploy takes over and restores the previous release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, r := leaseWorld(t)
			ctx := t.Context()
			crashedDeployer(t, ctx, c, r, "R2")
			time.Sleep(convox.LeaseTTL(c))
			if err := c.App("web").Cancel(ctx); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			st, err := r.Scheduler().Status(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			app, _ := convox.LoadApp(ctx, c, "web")
			rel, _ := c.App("web").Release(ctx, "R2")
			if app.Active != "R1" || st.Release != "R1" || app.Lease != nil || rel.Status != convox.StatusCanceled {
				t.Errorf("active %q serving %q lease %+v R2 %s; want R1, R1, no lease, R2 canceled", app.Active, st.Release, app.Lease, rel.Status)
			}
		})
	})

	t.Run("a live deployer renews its lease while it waits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, r := leaseWorld(t)
			ctx := t.Context()
			r.NeverConverge("web")
			dep, err := c.App("web").Promote(ctx, "R2", &convox.DeployOptions{Timeout: 5 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * convox.LeaseTTL(c))
			if _, err := c.App("web").Promote(ctx, "R2", nil); !errors.Is(err, providers.ErrConflict) {
				t.Errorf("Promote while the first deployer is alive past its TTL = %v, want providers.ErrConflict", err)
			}
			// NeverConverge blocks compensation too; Cancel returns once the
			// deploy finished, reporting the failed compensation.
			var cde *convox.DeployError
			if err := dep.Cancel(ctx); !errors.As(err, &cde) || cde.RolledBack {
				t.Fatalf("Cancel = %v, want the deploy error of a compensation that failed", err)
			}
			var de *convox.DeployError
			if err := dep.Wait(ctx); !errors.As(err, &de) || !de.Canceled {
				t.Errorf("Wait = %v, want canceled", err)
			}
			// Compensation used up its time; the failure is still recorded
			// and the lease released.
			app, _ := c.App("web").Get(ctx)
			rel, _ := c.App("web").Release(ctx, "R2")
			if app.Deploying != "" || rel.Status != convox.StatusCanceled {
				t.Errorf("deploying %q, R2 %s; want no lease and R2 canceled", app.Deploying, rel.Status)
			}
		})
	})
}

// exitedProcess returns the ID of a process of this host that has ended.
func exitedProcess(t *testing.T) holder.ID {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run a child process: %v", err)
	}
	id := holder.Self()
	id.PID = cmd.Process.Pid
	if !id.Gone() {
		t.Skip("this OS cannot prove a process gone")
	}
	return id
}

// TestLeaseOfAGoneHolder checks that a lease whose holder's process is
// provably gone does not block the app for its TTL: the app shows no
// deploy in flight, and the next Promote or Cancel compensates the
// abandoned deploy at once; a lease of a live process still blocks.
func TestLeaseOfAGoneHolder(t *testing.T) {
	gone := exitedProcess(t)
	self := holder.Self()
	t.Run("a new deploy compensates the abandoned one, then deploys", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, r := leaseWorld(t)
			ctx := t.Context()
			crashedDeployerProcess(t, ctx, c, r, "R2", &gone)
			app, err := c.App("web").Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if app.Deploying != "" {
				t.Errorf("Deploying = %q, want nothing: the holder is gone", app.Deploying)
			}
			start := len(r.Calls())
			dep, err := c.App("web").Promote(ctx, "R2", nil)
			if err != nil {
				t.Fatalf("Promote under the lease of a gone holder: %v", err)
			}
			if err := dep.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			var applied []string
			for _, call := range r.Calls()[start:] {
				if call.Name() == "Scheduler.Apply" {
					applied = append(applied, call.Args[0].(providers.Desired).Release)
				}
			}
			if want := []string{"R1", "R2"}; !slices.Equal(applied, want) {
				t.Errorf("releases applied = %q, want %q: the abandoned deploy restored first", applied, want)
			}
			app, _ = c.App("web").Get(ctx)
			if app.Active != "R2" || app.Deploying != "" {
				t.Errorf("active %q deploying %q, want R2 and nothing in flight", app.Active, app.Deploying)
			}
		})
	})
	t.Run("cancel compensates at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, r := leaseWorld(t)
			ctx := t.Context()
			crashedDeployerProcess(t, ctx, c, r, "R2", &gone)
			if err := c.App("web").Cancel(ctx); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			st, _ := r.Scheduler().Status(ctx, "web")
			app, _ := convox.LoadApp(ctx, c, "web")
			if app.Active != "R1" || st.Release != "R1" || app.Lease != nil {
				t.Errorf("active %q serving %q lease %+v; want R1, R1, no lease", app.Active, st.Release, app.Lease)
			}
		})
	})
	t.Run("Recover compensates the abandoned deploy, once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, r := leaseWorld(t)
			ctx := t.Context()
			crashedDeployerProcess(t, ctx, c, r, "R2", &gone)
			got, err := c.Recover(ctx)
			if err != nil || !slices.Equal(got, []string{"web"}) {
				t.Fatalf("Recover = %q, %v; want [web]", got, err)
			}
			st, _ := r.Scheduler().Status(ctx, "web")
			app, _ := convox.LoadApp(ctx, c, "web")
			if app.Active != "R1" || st.Release != "R1" || app.Lease != nil {
				t.Errorf("active %q serving %q lease %+v; want R1, R1, no lease", app.Active, st.Release, app.Lease)
			}
			if got, err := c.Recover(ctx); err != nil || len(got) != 0 {
				t.Errorf("a second Recover = %q, %v; want nothing to do", got, err)
			}
		})
	})
	t.Run("Recover leaves the deploy of a live process alone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, r := leaseWorld(t)
			ctx := t.Context()
			crashedDeployerProcess(t, ctx, c, r, "R2", &self)
			if got, err := c.Recover(ctx); err != nil || len(got) != 0 {
				t.Errorf("Recover = %q, %v; want nothing done", got, err)
			}
			if app, _ := convox.LoadApp(ctx, c, "web"); app.Lease == nil || app.Lease.Token != "dead" {
				t.Errorf("lease = %+v, want the live deployer's", app.Lease)
			}
		})
	})
	t.Run("a lease of a live process blocks", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, r := leaseWorld(t)
			ctx := t.Context()
			crashedDeployerProcess(t, ctx, c, r, "R2", &self)
			if _, err := c.App("web").Promote(ctx, "R2", nil); !errors.Is(err, providers.ErrConflict) {
				t.Fatalf("Promote under a live holder's lease = %v, want providers.ErrConflict", err)
			}
		})
	})
}

func TestStoreKeysOrderNumerically(t *testing.T) {
	keys := []string{convox.ReleaseKey("web", 9), convox.ReleaseKey("web", 10), convox.ReleaseKey("web", 100)}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Errorf("%q sorts after %q", keys[i-1], keys[i])
		}
	}
	if err := providers.ValidateKey(convox.ReleaseKey("abcdefghijklmnopqrst", 1<<62)); err != nil {
		t.Errorf("longest release key is invalid: %v", err)
	}
}
