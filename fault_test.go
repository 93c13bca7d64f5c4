package convox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// faultKind is one way a provider call can go wrong.
type faultKind string

const (
	faultTransient faultKind = "transient" // fails once with ErrThrottled
	faultPermanent faultKind = "permanent" // fails once with ErrPermission
	faultHang      faultKind = "hang"      // blocks until its context ends
	faultCancel    faultKind = "cancel"    // the caller's context is canceled during the call
)

// operation is a workflow the matrix breaks, starting from R1 active.
type operation struct {
	name string
	// setup runs before the fault is armed.
	setup func(ctx context.Context, w *world)
	run   func(ctx context.Context, w *world) error
}

var operations = []operation{
	{"deploy", func(ctx context.Context, w *world) { w.push("v2") }, func(ctx context.Context, w *world) error {
		_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
		return err
	}},
	{"promote", func(ctx context.Context, w *world) {
		w.push("v2")
		w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"})
	}, func(ctx context.Context, w *world) error {
		dep, err := w.c.App("web").Promote(ctx, "R2", nil)
		if err != nil {
			return err
		}
		return dep.Wait(ctx)
	}},
	{"canary", func(ctx context.Context, w *world) { w.push("v2") }, func(ctx context.Context, w *world) error {
		_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, &convox.DeployOptions{Strategy: convox.CanarySteps(convox.CanaryStep{Percent: 50, Bake: 5 * time.Second})})
		return err
	}},
	{"rollback", func(ctx context.Context, w *world) {
		w.push("v2")
		w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
	}, func(ctx context.Context, w *world) error {
		_, err := w.c.App("web").Rollback(ctx, convox.Previous(), nil)
		return err
	}},
	{"cancel", func(ctx context.Context, w *world) {
		w.push("v2")
		w.rack.FailHealth("R2")
		w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"})
		if _, err := w.c.App("web").Promote(ctx, "R2", &convox.DeployOptions{FailFast: waitOut}); err != nil {
			panic(err)
		}
		time.Sleep(10 * time.Second)
	}, func(ctx context.Context, w *world) error {
		return w.c.App("web").Cancel(ctx)
	}},
}

// injector arms one fault at the n-th provider call.
type injector struct {
	mu     sync.Mutex
	n      int // calls seen
	at     int // call to break; -1 disarmed
	kind   faultKind
	cancel context.CancelFunc
	hit    string
}

func (in *injector) hook(ctx context.Context, c fake.Call, next func(context.Context) error) error {
	in.mu.Lock()
	i := in.n
	in.n++
	fire := i == in.at
	if fire {
		in.hit = c.Name()
	}
	in.mu.Unlock()
	if !fire {
		return next(ctx)
	}
	switch in.kind {
	case faultTransient:
		return fmt.Errorf("injected: %w", providers.ErrThrottled)
	case faultPermanent:
		return fmt.Errorf("injected: %w", providers.ErrPermission)
	case faultHang:
		<-ctx.Done()
		return ctx.Err()
	case faultCancel:
		in.cancel()
		return next(ctx)
	}
	return next(ctx)
}

// checkInvariants verifies what must hold after any run: one release is
// active and it is the one serving, no lease is held, the store decodes,
// and no task or route is orphaned.
func checkInvariants(t *testing.T, ctx context.Context, w *world) {
	t.Helper()
	app, err := w.c.App("web").Get(ctx)
	if err != nil {
		t.Fatalf("GetApp: %v", err)
	}
	if app.Active == "" {
		t.Fatalf("no active release")
	}
	if app.Deploying != "" {
		t.Errorf("lease left held for %s", app.Deploying)
	}
	// The scheduler converges to what it was last given; observe until it settles.
	var st providers.AppStatus
	for range 20 {
		if st, err = w.rack.Scheduler().Status(ctx, "web"); err != nil {
			t.Fatalf("Status: %v", err)
		}
	}
	if st.Release != app.Active {
		t.Errorf("store says %s is active, the scheduler serves %q", app.Active, st.Release)
	}
	for _, task := range st.Tasks {
		if task.State == providers.TaskRunning && task.Release != app.Active {
			t.Errorf("orphan task %s of %s running", task.ID, task.Release)
		}
	}
	n := 0
	for r, err := range w.c.App("web").Releases(ctx) {
		if err != nil {
			t.Fatalf("Releases: %v", err)
		}
		n++
		if r.Status == convox.StatusDeploying {
			t.Errorf("release %s still deploying", r.ID)
		}
		if (r.Status == convox.StatusActive) != (r.ID == app.Active) {
			t.Errorf("release %s has status %s while %s is active", r.ID, r.Status, app.Active)
		}
	}
	if fmt.Sprint("R", n) != app.Latest {
		t.Errorf("%d releases listed, latest is %s", n, app.Latest)
	}
	if _, err := w.rack.Balancer().Health(ctx, "web-web"); err != nil {
		t.Errorf("the app's route is gone: %v", err)
	}
}

func TestFaultMatrix(t *testing.T) {
	cases, hits := 0, map[string]bool{}
	for _, op := range operations {
		// Count the provider calls the operation makes without faults.
		var calls int
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			op.setup(ctx, w)
			in := &injector{at: -1}
			w.rack.SetHooks(fake.Hooks{Call: in.hook})
			if err := op.run(ctx, w); err != nil && op.name != "cancel" {
				t.Fatalf("%s without faults: %v", op.name, err)
			}
			calls = in.n
		})
		for _, kind := range []faultKind{faultTransient, faultPermanent, faultHang, faultCancel} {
			for at := range calls {
				cases++
				t.Run(fmt.Sprintf("%s/%s/call-%d", op.name, kind, at), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						w := newWorld(t, nil)
						ctx := t.Context()
						w.deployV1(ctx)
						op.setup(ctx, w)
						opCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
						defer cancel()
						in := &injector{at: at, kind: kind, cancel: cancel}
						w.rack.SetHooks(fake.Hooks{Call: in.hook})
						err := op.run(opCtx, w)
						w.rack.SetHooks(fake.Hooks{})
						// Whatever the operation returned, let background work settle.
						time.Sleep(time.Hour)
						synctest.Wait()
						hits[in.hit] = true
						t.Logf("%s at %s returned %v", kind, in.hit, err)
						checkInvariants(t, context.Background(), w)
						if t.Failed() {
							for _, e := range w.allEvents() {
								t.Logf("event: %v", e)
							}
						}
					})
				})
			}
		}
	}
	t.Logf("fault matrix: %d cases over %d distinct provider methods", cases, len(hits))
}
