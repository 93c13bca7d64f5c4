package convox_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// callKey names one operation of one provider.
type callKey struct{ Kind, Provider, Op string }

// callsSince returns what the client counted since before, by operation,
// without Time (the fake's calls take no time under synctest).
func callsSince(c *convox.Client, before []convox.CallStats) map[callKey]convox.CallStats {
	prev := map[callKey]convox.CallStats{}
	for _, s := range before {
		prev[callKey{s.Kind, s.Provider, s.Op}] = s
	}
	out := map[callKey]convox.CallStats{}
	for _, s := range c.Calls() {
		k := callKey{s.Kind, s.Provider, s.Op}
		p := prev[k]
		s.Calls, s.Errors, s.Retries, s.Time = s.Calls-p.Calls, s.Errors-p.Errors, s.Retries-p.Retries, 0
		if s.Calls != 0 {
			out[k] = s
		}
	}
	return out
}

// fakeKinds maps the fake's provider names to the client's kinds.
var fakeKinds = map[string]string{
	"Registry": convox.KindRegistry, "Scheduler": convox.KindScheduler, "Balancer": convox.KindBalancer,
	"Logs": convox.KindLogs, "Store": convox.KindStore, "Notifier": convox.KindNotifier,
}

// recordedCalls counts the calls the fake rack recorded, and their
// errors, as the client names them (its one balancer and one notifier
// are "default" and "0").
func recordedCalls(r *fake.Rack) map[callKey]convox.CallStats {
	out := map[callKey]convox.CallStats{}
	for _, c := range r.Calls() {
		name := convox.DefaultName
		if c.Provider == "Notifier" {
			name = "0"
		}
		k := callKey{fakeKinds[c.Provider], name, c.Method}
		s := out[k]
		s.Kind, s.Provider, s.Op = k.Kind, k.Provider, k.Op
		s.Calls++
		if c.Err != nil {
			s.Errors++
		}
		out[k] = s
	}
	return out
}

// TestCallsCountEveryProviderCall: after a deploy, Client.Calls counts
// exactly the calls the providers received (each operation's calls and
// errors), a retried temporary error is counted once as an error and its
// retry once as a retry, and nothing else counts a retry.
func TestCallsCountEveryProviderCall(t *testing.T) {
	unavailable := fmt.Errorf("fake: %w", providers.ErrUnavailable)
	tests := []struct {
		name string
		// fault is armed after v1 is deployed, before v2 is.
		fault func(r *fake.Rack)
		// want is the exact count of these operations in the deploy of
		// v2; every operation's calls and errors are also checked
		// against what the fake received.
		want []convox.CallStats
		// retries are the retries of operations not in want; every
		// other operation has none.
		retries map[callKey]int64
	}{
		{
			name: "a rolling deploy of one routed process and a worker",
			want: []convox.CallStats{
				{Kind: "balancer", Provider: "default", Op: "EnsureRoute", Calls: 1},
				{Kind: "notifier", Provider: "0", Op: "Notify", Calls: 2}, // started, succeeded
				{Kind: "registry", Provider: "default", Op: "Resolve", Calls: 1},
				{Kind: "scheduler", Provider: "default", Op: "Apply", Calls: 1},
			},
		},
		{
			name:  "a throttled Apply is retried at its step",
			fault: func(r *fake.Rack) { r.Throttle("Scheduler.Apply", 2) },
			want:  []convox.CallStats{{Kind: "scheduler", Provider: "default", Op: "Apply", Calls: 3, Errors: 2, Retries: 2}},
		},
		{
			name:  "a throttled EnsureRoute is retried at its step",
			fault: func(r *fake.Rack) { r.Throttle("Balancer.EnsureRoute", 1) },
			want:  []convox.CallStats{{Kind: "balancer", Provider: "default", Op: "EnsureRoute", Calls: 2, Errors: 1, Retries: 1}},
		},
		{
			name:  "a throttled Resolve is retried by the registry's bounded policy",
			fault: func(r *fake.Rack) { r.Throttle("Registry.Resolve", 3) },
			want:  []convox.CallStats{{Kind: "registry", Provider: "default", Op: "Resolve", Calls: 4, Errors: 3, Retries: 3}},
		},
		{
			name:    "an unavailable store write is retried once, not twice",
			fault:   func(r *fake.Rack) { r.Fail("Store.Put", unavailable, 1) },
			retries: map[callKey]int64{{"store", "default", "Put"}: 1},
		},
		{
			name:  "a failing notifier is not retried",
			fault: func(r *fake.Rack) { r.Fail("Notifier.Notify", unavailable, 1) },
			want:  []convox.CallStats{{Kind: "notifier", Provider: "0", Op: "Notify", Calls: 2, Errors: 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				w := newWorld(t, nil)
				w.deployV1(ctx)
				w.push("v2")
				if tc.fault != nil {
					tc.fault(w.rack)
				}
				w.rack.ResetCalls()
				before := w.c.Calls()
				if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
					t.Fatalf("Deploy v2: %v", err)
				}
				got := callsSince(w.c, before)
				for _, s := range tc.want {
					if diff := cmp.Diff(s, got[callKey{s.Kind, s.Provider, s.Op}]); diff != "" {
						t.Errorf("%s %s (-want +got):\n%s", s.Kind, s.Op, diff)
					}
				}
				wantRetries := map[callKey]int64{}
				for _, s := range tc.want {
					if s.Retries > 0 {
						wantRetries[callKey{s.Kind, s.Provider, s.Op}] = s.Retries
					}
				}
				for k, n := range tc.retries {
					wantRetries[k] = n
				}
				gotRetries := map[callKey]int64{}
				for k, s := range got {
					if s.Retries > 0 {
						gotRetries[k] = s.Retries
					}
					s.Retries = 0
					got[k] = s
				}
				if diff := cmp.Diff(wantRetries, gotRetries); diff != "" {
					t.Errorf("retries by operation (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(recordedCalls(w.rack), got); diff != "" {
					t.Errorf("calls and errors counted vs the calls the providers received (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestCallsSnapshot: Calls lists each operation called once, sorted by
// kind, provider and operation, and may be read while deploys run.
func TestCallsSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &world{t: t, rack: fake.New(nil)}
		var reads atomic.Int64
		c, err := convox.New(w.rack.ConvoxRack(), &convox.Options{
			OnEvent: func(e convox.Event) {
				if e.Type == convox.EventWaiting {
					_ = w.c.Calls() // while the deploy makes its calls
					reads.Add(1)
				}
			},
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		w.c = c
		w.deployV1(context.Background())
		if reads.Load() == 0 {
			t.Fatal("Calls was never read during the deploy")
		}
		got := c.Calls()
		if len(got) == 0 {
			t.Fatal("no calls counted")
		}
		key := func(s convox.CallStats) string { return s.Kind + "\x00" + s.Provider + "\x00" + s.Op }
		for i, s := range got {
			if s.Calls <= 0 {
				t.Errorf("%+v listed with no calls", s)
			}
			if i > 0 && key(got[i-1]) >= key(s) {
				t.Errorf("Calls()[%d] %s/%s/%s is not after %s/%s/%s", i, s.Kind, s.Provider, s.Op, got[i-1].Kind, got[i-1].Provider, got[i-1].Op)
			}
		}
	})
}

// TestCallsOutsideDeploys: the calls outside a deploy go through the
// chains too, retried by their policy: a following Logs iteration retries
// its reads' temporary errors, a one-shot read does not, and a one-off
// task's polls poll again (no retry).
func TestCallsOutsideDeploys(t *testing.T) {
	tests := []struct {
		name    string
		fault   string // a fake method throttled twice
		run     func(ctx context.Context, w *world) error
		wantErr bool
		want    convox.CallStats
	}{
		{
			name:  "a following Logs read is retried",
			fault: "Logs.Read",
			run: func(ctx context.Context, w *world) error {
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				_, err := collect(w.c.App("web").Logs(ctx, convox.LogQuery{Follow: true}))
				return err
			},
			want: convox.CallStats{Kind: "logs", Provider: "default", Op: "Read", Errors: 2, Retries: 2},
		},
		{
			name:  "a one-shot Logs read is not retried",
			fault: "Logs.Read",
			run: func(ctx context.Context, w *world) error {
				_, err := collect(w.c.App("web").Logs(ctx, convox.LogQuery{}))
				return err
			},
			wantErr: true,
			want:    convox.CallStats{Kind: "logs", Provider: "default", Op: "Read", Calls: 1, Errors: 1},
		},
		{
			name:  "a one-off task's polls outlast temporary errors",
			fault: "Scheduler.GetTask",
			run: func(ctx context.Context, w *world) error {
				_, err := w.c.App("web").Run(ctx, "worker", nil, nil)
				return err
			},
			want: convox.CallStats{Kind: "scheduler", Provider: "default", Op: "GetTask", Calls: 4, Errors: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				w := newWorld(t, nil)
				w.deployV1(ctx)
				w.rack.Throttle(tc.fault, 2)
				before := w.c.Calls()
				err := tc.run(ctx, w)
				if (err != nil) != tc.wantErr {
					t.Fatalf("error %v, want one: %v", err, tc.wantErr)
				}
				got := callsSince(w.c, before)[callKey{tc.want.Kind, tc.want.Provider, tc.want.Op}]
				if tc.want.Calls == 0 {
					// A follow reads until ctx ends: how often is the
					// poll's business; the retries are the chain's.
					tc.want.Calls = got.Calls
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestCallsMatchWhatTheProvidersReceive: whatever the client does, it
// counts each operation's calls and errors exactly as the providers
// received them.
func TestCallsMatchWhatTheProvidersReceive(t *testing.T) {
	tests := []struct {
		name string
		// ops must be among the operations called ("Kind.Op").
		ops []string
		run func(ctx context.Context, w *world) error
	}{
		{"rollback", []string{"registry.Resolve", "scheduler.Apply"}, func(ctx context.Context, w *world) error {
			w.push("v2")
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				return err
			}
			_, err := w.c.App("web").Rollback(ctx, convox.Previous(), nil)
			return err
		}},
		{"failed deploy, compensated", []string{"scheduler.Apply", "scheduler.CancelRollout", "logs.Read"}, func(ctx context.Context, w *world) error {
			w.push("v2")
			w.rack.CrashLoop("R2")
			_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
			if err == nil {
				return fmt.Errorf("the deploy of a crashing release succeeded")
			}
			return nil
		}},
		{"one-off task", []string{"scheduler.RunTask", "scheduler.GetTask", "logs.Read"}, func(ctx context.Context, w *world) error {
			_, err := w.c.App("web").Run(ctx, "worker", nil, nil)
			return err
		}},
		{"prune images", []string{"registry.DeleteImage"}, func(ctx context.Context, w *world) error {
			for _, v := range []string{"v2", "v3"} {
				w.push(v)
				if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:" + v}, nil); err != nil {
					return err
				}
			}
			_, err := w.c.App("web").PruneImages(ctx, &convox.PruneOptions{Keep: 1})
			return err
		}},
		{"plan", []string{"registry.Resolve"}, func(ctx context.Context, w *world) error {
			w.push("v2")
			_, err := w.c.App("web").Plan(ctx, convox.ReleaseSpec{Image: "web:v2"})
			return err
		}},
		{"logs", []string{"logs.Read"}, func(ctx context.Context, w *world) error {
			_, err := collect(w.c.App("web").Logs(ctx, convox.LogQuery{}))
			return err
		}},
		{"delete the app", []string{"scheduler.Delete", "balancer.DeleteRoute", "logs.Delete", "store.Delete"}, func(ctx context.Context, w *world) error {
			return w.c.DeleteApp(ctx, "web")
		}},
		{"two apps at once", []string{"scheduler.StatusMany"}, func(ctx context.Context, w *world) error {
			w.rack.Push("api", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/api"}})
			if _, err := w.c.CreateApp(ctx, "api", nil); err != nil {
				return err
			}
			w.push("v2")
			_, err := w.c.DeployMany(ctx, []convox.AppDeploy{
				{App: "web", Spec: convox.ReleaseSpec{Image: "web:v2"}},
				{App: "api", Spec: convox.ReleaseSpec{Image: "api:v1", Processes: []convox.Process{{Name: "api", Count: 1, Port: 80}}}},
			}, nil)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				w := newWorld(t, nil)
				w.deployV1(ctx)
				w.rack.ResetCalls()
				before := w.c.Calls()
				if err := tc.run(ctx, w); err != nil {
					t.Fatal(err)
				}
				got := callsSince(w.c, before)
				for k, s := range got {
					s.Retries = 0
					got[k] = s
				}
				want := recordedCalls(w.rack)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				for _, op := range tc.ops {
					found := false
					for k := range got {
						found = found || k.Kind+"."+k.Op == op
					}
					if !found {
						t.Errorf("no %s call counted", op)
					}
				}
			})
		})
	}
}
