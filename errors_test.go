package convox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
)

// TestDeployErrorContract checks the error contract of the deploy calls:
// every failure is a *DeployError naming the step it stopped at, saying
// whether anything changed, and wrapping the sentinel of its cause.
func TestDeployErrorContract(t *testing.T) {
	unavailable := fmt.Errorf("fake: %w", providers.ErrUnavailable)
	type want struct {
		Step       convox.Step
		Changed    bool
		RolledBack bool
		Canceled   bool
		InProgress bool
	}
	cases := []struct {
		name string
		// run deploys on an app "web" whose R1 (web:v1) is active.
		run      func(ctx context.Context, t *testing.T, w *world) error
		sentinel error
		want     want
		// says is a part of the error's message.
		says string
	}{
		{"bad input fails at prepare and changes nothing", func(ctx context.Context, t *testing.T, w *world) error {
			spec := webSpec("web:v1")
			spec.Processes[0].Count = -1
			_, err := w.c.App("web").Deploy(ctx, spec, nil)
			return err
		}, providers.ErrInvalid, want{Step: convox.StepPrepare}, "nothing changed"},
		{"a missing image fails at resolve and changes nothing", func(ctx context.Context, t *testing.T, w *world) error {
			_, err := w.c.App("web").Deploy(ctx, webSpec("web:v9"), nil)
			return err
		}, providers.ErrNotFound, want{Step: convox.StepResolve}, "failed at resolve"},
		{"a registry that stays unavailable fails at resolve after its retries", func(ctx context.Context, t *testing.T, w *world) error {
			w.push("v2")
			w.rack.Fail("Registry.Resolve", unavailable, 100)
			_, err := w.c.App("web").Deploy(ctx, webSpec("web:v2"), nil)
			return err
		}, providers.ErrUnavailable, want{Step: convox.StepResolve}, "nothing changed"},
		{"a store refusing the release fails at create and changes nothing", func(ctx context.Context, t *testing.T, w *world) error {
			w.push("v2")
			w.rack.Fail("Store.Put", fmt.Errorf("fake: %w", providers.ErrPermission), 1)
			_, err := w.c.App("web").Deploy(ctx, webSpec("web:v2"), nil)
			return err
		}, providers.ErrPermission, want{Step: convox.StepCreate}, "failed at create"},
		{"a deploy in progress fails the next at lease", func(ctx context.Context, t *testing.T, w *world) error {
			w.push("v2")
			rel, err := w.c.App("web").CreateRelease(ctx, webSpec("web:v2"))
			if err != nil {
				return err
			}
			dep, err := w.c.App("web").Promote(ctx, rel.ID, nil)
			if err != nil {
				return err
			}
			_, err = w.c.App("web").Deploy(ctx, webSpec("web:v2"), nil)
			if cerr := dep.Cancel(ctx); cerr != nil {
				t.Errorf("Cancel the first deploy: %v", cerr)
			}
			return err
		}, providers.ErrConflict, want{Step: convox.StepLease}, "nothing changed"},
		{"a crash loop fails at wait, changed and rolled back", func(ctx context.Context, t *testing.T, w *world) error {
			v2 := w.push("v2")
			w.rack.CrashLoop(v2.Digest)
			_, err := w.c.App("web").Deploy(ctx, webSpec("web:v2"), nil)
			return err
		}, providers.ErrUnhealthy, want{Step: convox.StepWait, Changed: true, RolledBack: true}, "rolled back to R1"},
		{"a canceled deploy is reported as canceled", func(ctx context.Context, t *testing.T, w *world) error {
			w.push("v2")
			waiting := make(chan struct{})
			var once sync.Once
			w.c = withEvents(w, func(e convox.Event) {
				if e.Type == convox.EventWaiting {
					once.Do(func() { close(waiting) })
				}
			})
			rel, err := w.c.App("web").CreateRelease(ctx, webSpec("web:v2"))
			if err != nil {
				return err
			}
			dep, err := w.c.App("web").Promote(ctx, rel.ID, nil)
			if err != nil {
				return err
			}
			<-waiting
			if err := dep.Cancel(ctx); err != nil {
				return err
			}
			return dep.Wait(ctx)
		}, context.Canceled, want{Step: convox.StepWait, Changed: true, RolledBack: true, Canceled: true}, "canceled at wait; rolled back to R1"},
		{"a caller that stops waiting sees the deploy in progress", func(ctx context.Context, t *testing.T, w *world) error {
			w.push("v2")
			wctx, cancel := context.WithCancel(ctx)
			var dep *convox.Deployment
			w.c = withEvents(w, func(e convox.Event) {
				if e.Type == convox.EventWaiting {
					cancel()
				}
			})
			rel, err := w.c.App("web").CreateRelease(ctx, webSpec("web:v2"))
			if err != nil {
				return err
			}
			if dep, err = w.c.App("web").Promote(ctx, rel.ID, nil); err != nil {
				return err
			}
			err = dep.Wait(wctx)
			if werr := dep.Wait(ctx); werr != nil {
				t.Errorf("the deploy went on and failed: %v", werr)
			}
			return err
		}, context.Canceled, want{Step: convox.StepWait, Changed: true, InProgress: true}, "the deploy goes on"},
		{"a rollback without a target release fails at prepare", func(ctx context.Context, t *testing.T, w *world) error {
			_, err := w.c.App("web").Rollback(ctx, convox.PreviousHealthy(), nil)
			return err
		}, providers.ErrNotFound, want{Step: convox.StepPrepare}, "nothing changed"},
		{"scaling a missing process fails at prepare", func(ctx context.Context, t *testing.T, w *world) error {
			_, err := w.c.App("web").Scale(ctx, "nope", 1, nil)
			return err
		}, providers.ErrNotFound, want{Step: convox.StepPrepare}, "nothing changed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, nil)
				ctx := t.Context()
				w.deployV1(ctx)
				err := tc.run(ctx, t, w)
				var de *convox.DeployError
				if !errors.As(err, &de) {
					t.Fatalf("err = %v, want a *DeployError", err)
				}
				if !errors.Is(err, tc.sentinel) {
					t.Errorf("err = %v, want it to match %v", err, tc.sentinel)
				}
				got := want{Step: de.Step, Changed: de.Changed, RolledBack: de.RolledBack, Canceled: de.Canceled, InProgress: de.InProgress}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("DeployError (-want +got):\n%s", diff)
				}
				if !strings.Contains(err.Error(), tc.says) {
					t.Errorf("message %q does not say %q", err.Error(), tc.says)
				}
				if !de.Changed {
					if got := w.active(ctx); got != "R1" {
						t.Errorf("active = %s after a failure that changed nothing, want R1", got)
					}
				}
			})
		})
	}
}

// withEvents returns a client over w's rack that also passes every event
// to fn.
func withEvents(w *world, fn func(convox.Event)) *convox.Client {
	c, err := convox.New(w.rack.ConvoxRack(), &convox.Options{
		OnEvent:      func(e convox.Event) { w.record(e); fn(e) },
		PollInterval: time.Second, MaxPollInterval: 5 * time.Second,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// TestTemporaryResolveIsRetried checks that a registry error that is
// temporary is retried like the other provider calls, so that the deploy
// succeeds.
func TestTemporaryResolveIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		w.deployV1(ctx)
		w.push("v2")
		w.rack.Fail("Registry.Resolve", fmt.Errorf("fake: %w", providers.ErrThrottled), 2)
		rel, err := w.c.App("web").Deploy(ctx, webSpec("web:v2"), nil)
		if err != nil {
			t.Fatalf("Deploy after two throttled resolves = %v, want success", err)
		}
		if rel.ID != "R2" || rel.Status != convox.StatusActive {
			t.Errorf("Deploy = %s %s, want R2 active", rel.ID, rel.Status)
		}
	})
}

// TestRollbackTargets checks which release each rollback target copies.
func TestRollbackTargets(t *testing.T) {
	cases := []struct {
		name string
		// setup runs after R1 (web:v1) was deployed on app "web".
		setup  func(ctx context.Context, t *testing.T, w *world)
		target convox.RollbackTarget
		// wantParent is the release the rollback copies ("" for an error
		// matching providers.ErrNotFound).
		wantParent string
	}{
		{"LastHealthy restores the active release when the automatic rollback failed", failedCompensation, convox.LastHealthy(), "R1"},
		{"PreviousHealthy finds nothing before a first release", failedCompensation, convox.PreviousHealthy(), ""},
		{"LastHealthy of a healthy app is its active release", deployV2, convox.LastHealthy(), "R2"},
		{"PreviousHealthy is the healthy release before the active one", deployV2, convox.PreviousHealthy(), "R1"},
		{"Previous is the release active before the active one", deployV2, convox.Previous(), "R1"},
		{"PreviousHealthy skips a release rolled back from", rolledBackFromV2, convox.PreviousHealthy(), "R1"},
		{"Previous undoes a rollback", rolledBackFromV2, convox.Previous(), "R2"},
		{"ToRelease copies the named release", deployV2, convox.ToRelease("R1"), "R1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, nil)
				ctx := t.Context()
				w.deployV1(ctx)
				tc.setup(ctx, t, w)
				rel, err := w.c.App("web").Rollback(ctx, tc.target, nil)
				if tc.wantParent == "" {
					if !errors.Is(err, providers.ErrNotFound) {
						t.Fatalf("Rollback(%s) = %v, want an error matching ErrNotFound", tc.target, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Rollback(%s): %v", tc.target, err)
				}
				if rel.Parent != tc.wantParent {
					t.Errorf("Rollback(%s) copied %s, want %s", tc.target, rel.Parent, tc.wantParent)
				}
				if got := w.serving(ctx); got != rel.ID {
					t.Errorf("serving %s, want the rollback release %s", got, rel.ID)
				}
				app, err := w.c.App("web").Get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if app.LastHealthy != rel.ID {
					t.Errorf("App.LastHealthy = %s, want %s", app.LastHealthy, rel.ID)
				}
			})
		})
	}
}

// deployV2 makes R2 (web:v2) the active release.
func deployV2(ctx context.Context, t *testing.T, w *world) {
	w.push("v2")
	if _, err := w.c.App("web").Deploy(ctx, webSpec("web:v2"), nil); err != nil {
		t.Fatal(err)
	}
}

// rolledBackFromV2 deploys R2, then rolls back to R1 as R3.
func rolledBackFromV2(ctx context.Context, t *testing.T, w *world) {
	deployV2(ctx, t, w)
	if _, err := w.c.App("web").Rollback(ctx, convox.ToRelease("R1"), nil); err != nil {
		t.Fatal(err)
	}
}

// failedCompensation makes a deploy of R2 fail and its automatic rollback
// fail too: the scheduler refuses to apply R1 again.
func failedCompensation(ctx context.Context, t *testing.T, w *world) {
	v2 := w.push("v2")
	undo := w.rack.CrashLoop(v2.Digest)
	c := withEvents(w, func(e convox.Event) {
		if e.Type == convox.EventCompensating {
			w.rack.Fail("Scheduler.Apply", fmt.Errorf("fake: %w", providers.ErrInvalid), 1)
		}
	})
	_, err := c.App("web").Deploy(ctx, webSpec("web:v2"), nil)
	var de *convox.DeployError
	if !errors.As(err, &de) || de.RolledBack {
		t.Fatalf("Deploy v2 = %v, want a *DeployError that was not rolled back", err)
	}
	undo()
}
