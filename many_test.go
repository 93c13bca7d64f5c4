package convox_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// manyWorld creates apps with v1 deployed; image tags are shared across apps.
func manyWorld(t *testing.T, apps ...string) *world {
	w := newWorld(t, nil)
	ctx := t.Context()
	w.push("v1")
	w.push("v2")
	var ds []convox.AppDeploy
	for _, a := range apps {
		if _, err := w.c.CreateApp(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, convox.AppDeploy{App: a, Spec: webSpec("web:v1")})
	}
	if _, err := w.c.DeployMany(ctx, ds, &convox.GroupOptions{Concurrency: len(apps)}); err != nil {
		t.Fatalf("DeployMany v1: %v", err)
	}
	return w
}

func TestDeployMany(t *testing.T) {
	t.Run("concurrent waits share batched status calls", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			apps := []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}
			w := newWorld(t, nil)
			ctx := t.Context()
			w.push("v1")
			var ds []convox.AppDeploy
			for _, a := range apps {
				w.c.CreateApp(ctx, a, nil)
				ds = append(ds, convox.AppDeploy{App: a, Spec: webSpec("web:v1")})
			}
			w.rack.ResetCalls()
			res, err := w.c.DeployMany(ctx, ds, &convox.GroupOptions{Concurrency: len(apps)})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Release == nil || r.Release.Status != convox.StatusActive {
					t.Errorf("%s: %+v", r.App, r)
				}
			}
			calls, observed, single := 0, 0, 0
			for _, c := range w.rack.Calls() {
				switch c.Name() {
				case "Scheduler.StatusMany":
					calls++
					observed += len(strings.Split(c.Key, ","))
				case "Scheduler.Status":
					single++ // a deploy left waiting alone observes at once
				}
			}
			// Each app needs at least four observations to converge on the fake;
			// all but the last deploy's tail go through batches of several apps.
			if observed+single < 4*len(apps) || calls*3 > observed || single > 4 {
				t.Errorf("%d StatusMany calls observed %d app statuses, plus %d single Status calls; want at least %d observations, batches of 3 or more, at most 4 single calls", calls, observed, single, 4*len(apps))
			}
			t.Logf("%d StatusMany calls for %d app observations", calls, observed)
		})
	})

	t.Run("all-or-nothing rolls back the apps that succeeded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := manyWorld(t, "a", "b", "c")
			ctx := t.Context()
			bad := w.rack.Push("bad", "v2", &fake.ImageConfig{Entrypoint: []string{"/crash"}})
			w.rack.CrashLoop(bad.Digest)
			res, err := w.c.DeployMany(ctx, []convox.AppDeploy{
				{App: "a", Spec: convox.ReleaseSpec{Image: "web:v2"}},
				{App: "b", Spec: convox.ReleaseSpec{Image: "web:v2"}},
				{App: "c", Spec: convox.ReleaseSpec{Image: "bad:v2"}},
			}, &convox.GroupOptions{Concurrency: 3, AllOrNothing: true})
			if !errors.As(err, new(*convox.DeployError)) {
				t.Fatalf("DeployMany = %v, want a deploy failure", err)
			}
			type outcome struct{ Deployed, Failed, RolledBackTo, Active string }
			var got []outcome
			for _, r := range res {
				o := outcome{}
				if r.Release != nil {
					o.Deployed = r.Release.ID
				}
				if r.Err != nil {
					o.Failed = "yes"
				}
				if r.RolledBack != nil {
					o.RolledBackTo = r.RolledBack.Parent
				}
				app, _ := w.c.App(r.App).Get(ctx)
				o.Active = app.Active
				got = append(got, o)
			}
			want := []outcome{
				{Deployed: "R2", RolledBackTo: "R1", Active: "R3"},
				{Deployed: "R2", RolledBackTo: "R1", Active: "R3"},
				{Failed: "yes", Active: "R1"},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("without all-or-nothing the successes stay", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := manyWorld(t, "a", "b")
			ctx := t.Context()
			w.rack.CrashLoop(w.rack.Push("bad", "v2", &fake.ImageConfig{Entrypoint: []string{"/crash"}}).Digest)
			res, err := w.c.DeployMany(ctx, []convox.AppDeploy{
				{App: "a", Spec: convox.ReleaseSpec{Image: "web:v2"}},
				{App: "b", Spec: convox.ReleaseSpec{Image: "bad:v2"}},
			}, nil)
			if err == nil || res[0].Err != nil || res[1].Err == nil || res[0].RolledBack != nil {
				t.Fatalf("DeployMany = %v, %+v; want a kept, b failed", err, res)
			}
			app, _ := w.c.App("a").Get(ctx)
			if app.Active != "R2" {
				t.Errorf("a active %s, want R2", app.Active)
			}
		})
	})

	t.Run("bad input fails before any deploy", func(t *testing.T) {
		w := newWorld(t, nil)
		_, err := w.c.DeployMany(t.Context(), []convox.AppDeploy{{App: "a"}, {App: "a"}}, nil)
		if !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("duplicate app = %v, want ErrInvalid", err)
		}
	})
}
