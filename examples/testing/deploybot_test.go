package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// Every test runs inside synctest.Test: the client's waits (poll
// intervals, backoff after throttling, deploy and compensation timeouts)
// then run on the bubble's fake clock, which jumps ahead whenever every
// goroutine of the test is blocked, so a deploy that would wait minutes in
// real time takes microseconds and the outcome never depends on the
// machine's speed. fake.New inside the bubble uses that clock too. Without
// synctest the same tests sleep through every poll interval (1s by
// default, backing off to 10s): seconds per test instead of microseconds.
// The client keeps the default PollInterval for that reason; see run in
// deploybot.go for the real-clock setting.

// newRack returns a fake rack and a client with the app "web" serving
// release R1 (image web:v1). Every setup error ends the test: a test that
// ignored one would go on to check the wrong thing.
func newRack(t *testing.T) (*fake.Rack, *convox.Client) {
	t.Helper()
	r := fake.New(nil)
	c, err := newFakeClient(r, nil)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	if err := setUp(t.Context(), r, c); err != nil {
		t.Fatalf("set up web R1: %v", err)
	}
	return r, c
}

// active returns the app's active release.
func active(t *testing.T, c *convox.Client) string {
	t.Helper()
	app, err := c.App("web").Get(t.Context())
	if err != nil {
		t.Fatalf("get app: %v", err)
	}
	return app.Active
}

// Fault 1: the new release crash-loops. The deploy fails fast and is
// rolled back; the bot says so and R1 serves.
func TestShipItReportsACrashLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, c := newRack(t)
		v2 := r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/broken"}})
		r.CrashLoop(v2.Digest) // every task of this image panics on start

		got := ShipIt(t.Context(), c, "web", "web:v2")

		// The reason is the SDK's wording: check its parts, not every word.
		if !strings.HasPrefix(got, "R2 failed (") || !strings.Contains(got, "exit status 2") || !strings.HasSuffix(got, "); R1 is serving again") {
			t.Errorf("ShipIt = %q, want R2's failure with the crash's exit status and R1 serving again", got)
		}
		if a := active(t, c); a != "R1" {
			t.Errorf("active release = %s, want R1", a)
		}
	})
}

// Fault 0: the image was never pushed. The deploy stops before it changes
// anything, and the bot says so.
func TestShipItReportsARefusedDeploy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := newRack(t)

		got := ShipIt(t.Context(), c, "web", "web:v9")

		if !strings.HasPrefix(got, "deploy of web:v9 refused at resolve (") || !strings.Contains(got, "not found") || !strings.HasSuffix(got, "); nothing changed") {
			t.Errorf("ShipIt = %q, want a refusal at resolve that changed nothing", got)
		}
		if a := active(t, c); a != "R1" {
			t.Errorf("active release = %s, want R1", a)
		}
	})
}

// Fault 2: the scheduler throttles status calls for a while, then
// recovers. The SDK retries throttling (providers.IsTemporary) with backoff,
// so the deploy succeeds; the recorded calls show the throttled ones.
func TestShipItRidesOutThrottling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, c := newRack(t)
		r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/server"}})
		r.ResetCalls()
		r.Throttle("Scheduler.Status", 3) // the next 3 Status calls are rate-limited

		got := ShipIt(t.Context(), c, "web", "web:v2")

		if diff := cmp.Diff("R2 is live", got); diff != "" {
			t.Errorf("ShipIt (-want +got):\n%s", diff)
		}
		throttled := 0
		for _, call := range r.Calls() {
			if call.Name() == "Scheduler.Status" && errors.Is(call.Err, providers.ErrThrottled) {
				throttled++
			}
		}
		if throttled != 3 {
			t.Errorf("%d throttled Status calls, want 3: the fault did not apply as scripted", throttled)
		}
	})
}

// Fault 3: the new release crash-loops and putting R1 back fails too (the
// scheduler refuses to apply R1 again, as when the deploy role loses a
// permission mid-deploy). The bot must not claim R1 serves.
func TestShipItReportsAFailedRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, c := newRack(t)
		v2 := r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/broken"}})
		r.CrashLoop(v2.Digest)
		r.SetHooks(fake.Hooks{Scheduler: fake.SchedulerHooks{
			Apply: func(ctx context.Context, d providers.Desired, next func(context.Context, providers.Desired) (providers.Rollout, error)) (providers.Rollout, error) {
				if d.Release == "R1" {
					return providers.Rollout{}, fmt.Errorf("injected: ecs:UpdateService denied: %w", providers.ErrPermission)
				}
				return next(ctx, d)
			},
		}})

		got := ShipIt(t.Context(), c, "web", "web:v2")

		if !strings.HasPrefix(got, "R2 failed (") || !strings.HasSuffix(got, ") and restoring R1 failed too: check the app now") {
			t.Errorf("ShipIt = %q, want R2's failure and R1 not restored", got)
		}
	})
}

// The program itself runs: one deploy on a fake rack, every error checked.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out strings.Builder
		if err := run(t.Context(), &out); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("R2 is live\n", out.String()); diff != "" {
			t.Errorf("output (-want +got):\n%s", diff)
		}
	})
}
