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
	"github.com/convox-go/convox/providers/fake"
)

func TestDeploy(t *testing.T) {
	t.Run("a healthy release becomes active with its endpoints", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			rel := w.deployV1(ctx)

			want := &convox.Release{App: "web", ID: "R1", Status: convox.StatusActive, Healthy: true}
			got := &convox.Release{App: rel.App, ID: rel.ID, Status: rel.Status, Healthy: rel.Healthy}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("release (-want +got):\n%s", diff)
			}
			if rel.Image.Digest == "" || rel.ImageRef != "web:v1" {
				t.Errorf("image not pinned: ref %q digest %q", rel.ImageRef, rel.Image.Digest)
			}
			app, err := w.c.App("web").Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"R1", "R1", "R1"}, []string{app.Active, app.LastHealthy, app.Latest}); diff != "" {
				t.Errorf("active, last healthy, latest (-want +got):\n%s", diff)
			}
			if app.Endpoints["web"] == "" || len(app.Endpoints) != 1 {
				t.Errorf("endpoints = %v, want one for web", app.Endpoints)
			}
			if got := w.serving(ctx); got != "R1" {
				t.Errorf("scheduler serves %q, want R1", got)
			}
			wantTypes := []convox.EventType{
				convox.EventAppCreated, convox.EventReleaseCreated, convox.EventDeployStarted,
				convox.EventStep, convox.EventStep, convox.EventWaiting,
			}
			types := w.eventTypes()
			if diff := cmp.Diff(wantTypes, types[:len(wantTypes)]); diff != "" {
				t.Errorf("first events (-want +got):\n%s", diff)
			}
			if last := types[len(types)-1]; last != convox.EventDeploySucceeded {
				t.Errorf("last event %s, want %s", last, convox.EventDeploySucceeded)
			}
		})
	})

	t.Run("every wait event says what it waits for and for how long at most", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			w.deployV1(t.Context())
			n := 0
			for _, e := range w.allEvents() {
				if e.Type != convox.EventWaiting {
					continue
				}
				n++
				if e.Progress == nil || e.Progress.Desired != 3 || e.Progress.Targets != 2 || e.Progress.Limit != 5*time.Minute {
					t.Errorf("waiting event progress = %+v, want 3 desired, 2 targets, 5m limit", e.Progress)
				}
			}
			if n == 0 {
				t.Error("no waiting events")
			}
		})
	})

	t.Run("platform events are written to the app's logs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			var got []string
			for _, e := range w.logs(ctx, convox.LogQuery{Stream: providers.StreamPlatform}) {
				got = append(got, e.Message)
			}
			want := []string{"promoting R1", "R1 is active and healthy"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("platform log (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("notifiers hear the start and the outcome", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			w.deployV1(t.Context())
			var kinds []providers.NotificationKind
			for _, n := range w.rack.Notifications() {
				kinds = append(kinds, n.Kind)
			}
			want := []providers.NotificationKind{providers.NotifyDeployStarted, providers.NotifyDeploySucceeded}
			if diff := cmp.Diff(want, kinds); diff != "" {
				t.Errorf("notifications (-want +got):\n%s", diff)
			}
		})
	})
}

func TestDeployFailure(t *testing.T) {
	t.Run("a crash-looping release fails fast and is rolled back with its reason and log lines", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			v2 := w.push("v2")
			w.rack.CrashLoop(v2.Digest)

			start := time.Now()
			_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
			var de *convox.DeployError
			if !errors.As(err, &de) {
				t.Fatalf("Deploy v2 = %v, want a *DeployError", err)
			}
			if !errors.Is(err, providers.ErrUnhealthy) {
				t.Errorf("error does not match providers.ErrUnhealthy")
			}
			if time.Since(start) > time.Minute {
				t.Errorf("failing took %v of fake time; fail fast should not wait for the 5m timeout", time.Since(start))
			}
			want := struct {
				Release, Previous string
				Step              convox.Step
				RolledBack        bool
			}{"R2", "R1", convox.StepWait, true}
			got := want
			got.Release, got.Previous, got.Step, got.RolledBack = de.Release, de.Previous, de.Step, de.RolledBack
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("deploy error (-want +got):\n%s", diff)
			}
			if !strings.Contains(de.Reason, "exit status 2") {
				t.Errorf("reason %q does not name the exit status", de.Reason)
			}
			if len(de.StoppedTasks) < 3 || de.StoppedTasks[0].Reason != "exit status 2" {
				t.Errorf("stopped tasks = %+v, want at least 3 with reason exit status 2", de.StoppedTasks)
			}
			if !hasMessage(de.LastLogLines, "panic: boom") {
				t.Errorf("last log lines %+v lack the crash", de.LastLogLines)
			}
			if a, s := w.active(ctx), w.serving(ctx); a != "R1" || s != "R1" {
				t.Errorf("active %q serving %q, want R1 and R1", a, s)
			}
			want2 := map[string]convox.ReleaseStatus{"R1": convox.StatusActive, "R2": convox.StatusFailed}
			if diff := cmp.Diff(want2, statuses(t, ctx, w.c, "web")); diff != "" {
				t.Errorf("release statuses (-want +got):\n%s", diff)
			}
			if w.countEvents(convox.EventRolledBack) != 1 {
				t.Errorf("want one rolled-back event, got types %v", w.eventTypes())
			}
		})
	})

	t.Run("a failed first deploy stops its processes and leaves no active release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			if _, err := w.c.CreateApp(ctx, "web", nil); err != nil {
				t.Fatal(err)
			}
			w.rack.CrashLoop(w.push("v1").Digest)
			_, err := w.c.App("web").Deploy(ctx, webSpec("web:v1"), nil)
			var de *convox.DeployError
			if !errors.As(err, &de) || !de.RolledBack {
				t.Fatalf("Deploy = %v, want a rolled-back *DeployError", err)
			}
			if got := w.active(ctx); got != "" {
				t.Errorf("active = %q, want none", got)
			}
			if _, err := w.rack.Scheduler().Status(ctx, "web"); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("scheduler still has the app: %v", err)
			}
		})
	})

	t.Run("throttling is retried and the deploy succeeds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			w.rack.Throttle("Scheduler.Status", 3)
			w.rack.Throttle("Scheduler.Apply", 1)
			rel, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
			if err != nil {
				t.Fatalf("Deploy: %v", err)
			}
			if rel.Status != convox.StatusActive {
				t.Errorf("status %s, want active", rel.Status)
			}
			if got := w.countEvents(convox.EventRetry); got != 4 {
				t.Errorf("retry events = %d, want 4", got)
			}
		})
	})

	t.Run("permission denied mid-wait stops at once and compensates", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			denied := fmt.Errorf("fake: not authorized: %w", providers.ErrPermission)
			w.rack.Fail("Scheduler.Status", denied, 1)
			w.rack.ResetCalls()
			_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
			if !errors.Is(err, providers.ErrPermission) {
				t.Fatalf("Deploy = %v, want ErrPermission", err)
			}
			var de *convox.DeployError
			if !errors.As(err, &de) || de.Step != convox.StepWait || !de.RolledBack {
				t.Fatalf("Deploy = %#v, want a rolled-back failure at the wait step", err)
			}
			// The failed Status is not retried: the deploy fails without waiting a poll interval.
			var started, failed time.Time
			for _, e := range w.allEvents() {
				switch {
				case e.Type == convox.EventDeployStarted && e.Release == "R2":
					started = e.Time
				case e.Type == convox.EventDeployFailed:
					failed = e.Time
				}
			}
			if d := failed.Sub(started); d >= time.Second {
				t.Errorf("failed %v after start; a permission error must stop the wait at once", d)
			}
			failedCalls := 0
			for _, c := range w.rack.Calls() {
				if c.Err != nil {
					failedCalls++
				}
			}
			if failedCalls != 1 {
				t.Errorf("%d failed calls, want exactly the one injected", failedCalls)
			}
			if got := w.active(ctx); got != "R1" {
				t.Errorf("active = %q, want R1", got)
			}
		})
	})

	t.Run("a provider's conflict is compensated like any failure, not taken for a lost lease", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			w.rack.Fail("Scheduler.Apply", fmt.Errorf("fake: port held: %w", providers.ErrConflict), 1)
			_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
			var de *convox.DeployError
			if !errors.As(err, &de) || !de.RolledBack || !errors.Is(err, providers.ErrConflict) {
				t.Fatalf("Deploy = %v, want a rolled-back failure matching ErrConflict", err)
			}
			if app, _ := w.c.App("web").Get(ctx); app.Active != "R1" || app.Deploying != "" {
				t.Errorf("active %s, deploying %q; want R1 and no lease", app.Active, app.Deploying)
			}
		})
	})

	t.Run("targets failing health checks fail the deploy fast", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			w.rack.FailHealth("R2")
			start := time.Now()
			_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
			var de *convox.DeployError
			if !errors.As(err, &de) || !de.RolledBack || !strings.Contains(de.Reason, "failed health checks") {
				t.Fatalf("Deploy = %v, want a rolled-back health failure", err)
			}
			if took := time.Since(start); took > time.Minute {
				t.Errorf("took %v of fake time; the default 10m timeout must not be waited out", took)
			}
		})
	})

	t.Run("a task exiting within its grace window fails the deploy at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.rack.CrashLoop(w.push("v2").Digest)
			_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, &convox.DeployOptions{FailFast: convox.FailFastPolicy{MaxStopped: 100}})
			var de *convox.DeployError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, "within its health grace window") {
				t.Fatalf("Deploy = %v, want the early exit as the reason", err)
			}
			_, err = w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, &convox.DeployOptions{FailFast: convox.FailFastPolicy{MaxStopped: 5, AllowEarlyExits: true}})
			if !errors.As(err, &de) || !strings.Contains(de.Reason, "tasks of R3 stopped") {
				t.Fatalf("Deploy allowing early exits = %v, want the crash count as the reason", err)
			}
		})
	})

	t.Run("a timeout reports the last observed state", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			w.rack.FailHealth("R2")
			_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, &convox.DeployOptions{Timeout: time.Minute, FailFast: waitOut})
			var de *convox.DeployError
			if !errors.As(err, &de) {
				t.Fatalf("Deploy = %v, want *DeployError", err)
			}
			if !strings.Contains(de.Reason, "timed out") || de.LastStatus == nil || !de.RolledBack {
				t.Errorf("deploy error = %+v, want a timeout with the last status, rolled back", de)
			}
			if got := w.active(ctx); got != "R1" {
				t.Errorf("active = %q, want R1", got)
			}
		})
	})
}

// waitOut keeps a deploy whose targets stay unhealthy waiting (for tests
// of timeouts and cancellation) instead of failing fast.
var waitOut = convox.FailFastPolicy{MaxUnhealthy: -1}

func hasMessage(es []providers.LogEntry, msg string) bool {
	for _, e := range es {
		if e.Message == msg {
			return true
		}
	}
	return false
}

func TestCancel(t *testing.T) {
	t.Run("cancel mid-deploy restores the previous release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			w.rack.FailHealth("R2") // R2 never becomes healthy: the deploy waits
			rel, err := w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"})
			if err != nil {
				t.Fatal(err)
			}
			dep, err := w.c.App("web").Promote(ctx, rel.ID, &convox.DeployOptions{FailFast: waitOut})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Second)
			synctest.Wait()
			if err := w.c.App("web").Cancel(ctx); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			err = dep.Wait(ctx)
			var de *convox.DeployError
			if !errors.As(err, &de) || !de.Canceled || !de.RolledBack {
				t.Fatalf("Wait = %v, want a canceled, rolled-back *DeployError", err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("canceled deploy error does not match context.Canceled")
			}
			if a, s := w.active(ctx), w.serving(ctx); a != "R1" || s != "R1" {
				t.Errorf("active %q serving %q, want R1 and R1", a, s)
			}
			want := map[string]convox.ReleaseStatus{"R1": convox.StatusActive, "R2": convox.StatusCanceled}
			if diff := cmp.Diff(want, statuses(t, ctx, w.c, "web")); diff != "" {
				t.Errorf("release statuses (-want +got):\n%s", diff)
			}
			if err := w.c.App("web").Cancel(ctx); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("second Cancel = %v, want ErrNotFound (nothing in flight)", err)
			}
		})
	})

	t.Run("cancel from another client goes through the store", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			w.rack.FailHealth("R2")
			rel, _ := w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"})
			dep, err := w.c.App("web").Promote(ctx, rel.ID, &convox.DeployOptions{FailFast: waitOut})
			if err != nil {
				t.Fatal(err)
			}
			other, err := convox.New(w.rack.ConvoxRack(), &convox.Options{Holder: "other"})
			if err != nil {
				t.Fatal(err)
			}
			if err := other.App("web").Cancel(ctx); err != nil {
				t.Fatalf("Cancel from another client: %v", err)
			}
			var de *convox.DeployError
			if err := dep.Wait(ctx); !errors.As(err, &de) || !de.Canceled {
				t.Fatalf("Wait = %v, want canceled", err)
			}
			if got := w.active(ctx); got != "R1" {
				t.Errorf("active = %q, want R1", got)
			}
		})
	})
}

func TestConcurrentDeploys(t *testing.T) {
	t.Run("of two concurrent promotes exactly one wins; the other gets ErrConflict", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			w.push("v3")
			r2, _ := w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"})
			r3, _ := w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v3"})
			const n = 100
			var wg sync.WaitGroup
			errs := make([]error, n)
			deps := make([]*convox.Deployment, n)
			for i := range n {
				wg.Go(func() {
					id := r2.ID
					if i%2 == 1 {
						id = r3.ID
					}
					deps[i], errs[i] = w.c.App("web").Promote(ctx, id, nil)
				})
			}
			wg.Wait()
			won, conflicts := 0, 0
			var winner *convox.Deployment
			for i, err := range errs {
				switch {
				case err == nil:
					won++
					winner = deps[i]
				case errors.Is(err, providers.ErrConflict):
					conflicts++
				default:
					t.Errorf("promote %d: %v", i, err)
				}
			}
			if won != 1 || conflicts != n-1 {
				t.Fatalf("won %d, conflicts %d; want 1 and %d", won, conflicts, n-1)
			}
			if err := winner.Wait(ctx); err != nil {
				t.Fatalf("winner: %v", err)
			}
			if got := w.active(ctx); got != winner.Release {
				t.Errorf("active %q, want the winner %q", got, winner.Release)
			}
		})
	})
}

func TestRollback(t *testing.T) {
	t.Run("rollback to previous creates a copy of it and promotes it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			r1 := w.deployV1(ctx)
			w.push("v2")
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				t.Fatal(err)
			}
			rb, err := w.c.App("web").Rollback(ctx, convox.Previous(), nil)
			if err != nil {
				t.Fatalf("Rollback: %v", err)
			}
			want := struct{ ID, Parent, Digest string }{"R3", "R1", r1.Image.Digest}
			got := struct{ ID, Parent, Digest string }{rb.ID, rb.Parent, rb.Image.Digest}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rollback release (-want +got):\n%s", diff)
			}
			if a, s := w.active(ctx), w.serving(ctx); a != "R3" || s != "R3" {
				t.Errorf("active %q serving %q, want R3", a, s)
			}
		})
	})

	t.Run("last healthy skips failed releases", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			w.rack.CrashLoop(w.push("v3").Digest)
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v3"}, nil); err == nil {
				t.Fatal("deploy of crashing v3 succeeded")
			}
			// Active is R2; R3 failed. Last healthy before R2 is R1.
			rb, err := w.c.App("web").Rollback(ctx, convox.PreviousHealthy(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if rb.Parent != "R1" {
				t.Errorf("rolled back to %s, want R1", rb.Parent)
			}
		})
	})

	t.Run("previous and last healthy differ after a rollback away from a bad release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			for _, tag := range []string{"v2", "v3"} {
				w.push(tag)
				if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:" + tag}, nil); err != nil {
					t.Fatal(err)
				}
			}
			// R3 misbehaves in production: roll back to R2 (as R4).
			if rb, err := w.c.App("web").Rollback(ctx, convox.Previous(), nil); err != nil || rb.Parent != "R2" {
				t.Fatalf("Rollback = %+v, %v; want a copy of R2", rb, err)
			}
			r3, _ := w.c.App("web").Release(ctx, "R3")
			if !r3.RolledBack {
				t.Errorf("R3 is not marked rolled back")
			}
			prev, err := w.c.App("web").CheckRollback(ctx, convox.Previous())
			if err != nil {
				t.Fatal(err)
			}
			healthy, err := w.c.App("web").CheckRollback(ctx, convox.PreviousHealthy())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"R3", "R2"}, []string{prev.Target, healthy.Target}); diff != "" {
				t.Errorf("previous, last healthy (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("rollback with nothing before the active release is not found", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			_, err := w.c.App("web").Rollback(ctx, convox.Previous(), nil)
			if !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("Rollback = %v, want ErrNotFound", err)
			}
		})
	})
}

func TestScaleAndEnv(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		w.deployV1(ctx)
		app := w.c.App("web")
		r2, err := app.Scale(ctx, "web", 3, nil)
		if err != nil {
			t.Fatalf("Scale: %v", err)
		}
		r3, err := app.SetEnv(ctx, map[string]string{"FEATURE": "on"}, map[string]convox.Secret{"TOKEN": "s3cr3t-value"}, nil)
		if err != nil {
			t.Fatalf("SetEnv: %v", err)
		}
		r4, err := app.UnsetEnv(ctx, []string{"MODE"}, nil)
		if err != nil {
			t.Fatalf("UnsetEnv: %v", err)
		}
		type summary struct {
			ID      string
			WebN    int
			Env     map[string]string
			Secrets []string
		}
		sum := func(r *convox.Release) summary {
			s := summary{ID: r.ID, Env: r.Env}
			for _, p := range r.Processes {
				if p.Name == "web" {
					s.WebN = p.Count
				}
			}
			for k := range r.Secrets {
				s.Secrets = append(s.Secrets, k)
			}
			return s
		}
		want := []summary{
			{ID: "R2", WebN: 3, Env: map[string]string{"MODE": "production"}},
			{ID: "R3", WebN: 3, Env: map[string]string{"MODE": "production", "FEATURE": "on"}, Secrets: []string{"TOKEN"}},
			{ID: "R4", WebN: 3, Env: map[string]string{"FEATURE": "on"}, Secrets: []string{"TOKEN"}},
		}
		got := []summary{sum(r2), sum(r3), sum(r4)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("releases (-want +got):\n%s", diff)
		}
		rb, err := app.Rollback(ctx, convox.ToRelease("R1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(summary{ID: "R5", WebN: 2, Env: map[string]string{"MODE": "production"}}, sum(rb)); diff != "" {
			t.Errorf("rollback restores formation and env (-want +got):\n%s", diff)
		}
		if _, err := app.Scale(ctx, "nope", 1, nil); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("Scale of a missing process = %v, want ErrNotFound", err)
		}
	})
}

func TestFakeWithCircuitBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, &fake.Options{CircuitBreaker: 1})
		ctx := t.Context()
		w.deployV1(ctx)
		w.rack.CrashLoop(w.push("v2").Digest)
		_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, &convox.DeployOptions{FailFast: convox.FailFastPolicy{MaxStopped: -1}})
		var de *convox.DeployError
		if !errors.As(err, &de) || !strings.Contains(de.Reason, "rollout failed") {
			t.Fatalf("Deploy = %v, want a failure reporting the scheduler's failed rollout", err)
		}
	})
}

// slowNotifier blocks until its context ends.
type slowNotifier struct{}

func (slowNotifier) Notify(ctx context.Context, n providers.Notification) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestSlowNotifierDoesNotFailOrStallDeploys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := fake.New(nil)
		rk := r.ConvoxRack()
		rk.Notifiers = []providers.Notifier{slowNotifier{}, r.Notifier()}
		var failed int
		c, err := convox.New(rk, &convox.Options{PollInterval: time.Second, NotifyTimeout: 2 * time.Second, OnEvent: func(e convox.Event) {
			if e.Type == convox.EventNotifyFailed {
				failed++
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		c.CreateApp(ctx, "web", nil)
		r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/x"}})
		start := time.Now()
		if _, err := c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err != nil {
			t.Fatalf("Deploy with a hanging notifier: %v", err)
		}
		// Two notifications (started, succeeded), each bounded by the 2s timeout,
		// plus the deploy's own polling.
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("deploy took %v of fake time", took)
		}
		if failed != 2 {
			t.Errorf("%d notify-failed events, want 2", failed)
		}
		if n := len(r.Notifications()); n != 2 {
			t.Errorf("the healthy notifier got %d notifications, want 2", n)
		}
	})
}

func TestChangesBuildOnTheLastGoodRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		w.deployV1(ctx)
		w.rack.CrashLoop("R2")
		if _, err := w.c.App("web").SetEnv(ctx, map[string]string{"CRASH": "1"}, nil, nil); err == nil {
			t.Fatal("crashing env change succeeded")
		}
		r3, err := w.c.App("web").Scale(ctx, "web", 3, nil)
		if err != nil {
			t.Fatalf("Scale after a failed env change: %v", err)
		}
		if _, ok := r3.Env["CRASH"]; ok {
			t.Errorf("the scale copied the failed release's env: %v", r3.Env)
		}
	})
}
