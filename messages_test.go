package convox_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
)

func TestProgressString(t *testing.T) {
	cases := []struct {
		name string
		p    convox.Progress
		want string
	}{
		{"a wait with a limit shows its timing", convox.Progress{Running: 1, Desired: 2, Healthy: 1, Targets: 2, Elapsed: 12 * time.Second, Limit: 10 * time.Minute},
			"1/2 running, 1/2 healthy, 12s of 10m0s"},
		{"an observation without a limit shows no blank timing", convox.Progress{Running: 0, Desired: 2, Healthy: 2, Targets: 2},
			"0/2 running, 2/2 healthy"},
		{"a release without routes shows no health", convox.Progress{Running: 1, Desired: 1, Limit: time.Minute},
			"1/1 running, 0s of 1m0s"},
		{"stopped tasks are counted", convox.Progress{Running: 1, Desired: 2, Stopped: 3},
			"1/2 running, 3 stopped"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.p.String()); diff != "" {
				t.Errorf("String (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCrashLoopMessage checks that a failed deploy's message counts the
// stops of each process only when there are several.
func TestCrashLoopMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		w.deployV1(ctx)
		v2 := w.push("v2")
		w.rack.CrashLoop(v2.Digest)
		_, err := w.c.App("web").Deploy(ctx, webSpec("web:v2"), nil)
		want := "convox: deploy of web R2 failed at wait: 3 tasks of R2 stopped: web: exit status 2 (2 tasks), worker: exit status 2; rolled back to R1"
		if err == nil || err.Error() != want {
			t.Errorf("Deploy = %v, want %q", err, want)
		}
	})
}

// TestEndpointsOnlyForServingApps checks that an app lists an endpoint
// for each routed process of its active release that runs, and none
// before it serves.
func TestEndpointsOnlyForServingApps(t *testing.T) {
	cases := []struct {
		name string
		// setup acts on app "web", created with no release.
		setup func(ctx context.Context, t *testing.T, w *world)
		want  []string
	}{
		{"an app never deployed lists none", func(context.Context, *testing.T, *world) {}, nil},
		{"a failed first deploy lists none", func(ctx context.Context, t *testing.T, w *world) {
			v1 := w.push("v1")
			w.rack.CrashLoop(v1.Digest)
			if _, err := w.c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err == nil {
				t.Fatal("the crash-looping first deploy succeeded")
			}
		}, nil},
		{"a deployed app lists its routed process only", func(ctx context.Context, t *testing.T, w *world) {
			w.push("v1")
			if _, err := w.c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err != nil {
				t.Fatal(err)
			}
		}, []string{"web"}},
		{"a routed process scaled to zero lists none", func(ctx context.Context, t *testing.T, w *world) {
			w.push("v1")
			if _, err := w.c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := w.c.App("web").Scale(ctx, "web", 0, nil); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, nil)
				ctx := t.Context()
				if _, err := w.c.CreateApp(ctx, "web", nil); err != nil {
					t.Fatal(err)
				}
				tc.setup(ctx, t, w)
				app, err := w.c.App("web").Get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for p := range app.Endpoints {
					got = append(got, p)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Get endpoints (-want +got):\n%s", diff)
				}
				for a, err := range w.c.Apps(ctx) {
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(app.Endpoints, a.Endpoints); diff != "" {
						t.Errorf("Apps endpoints differ from Get's (-get +apps):\n%s", diff)
					}
				}
			})
		})
	}
}
