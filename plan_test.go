package convox_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
)

func TestPlan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		r1 := w.deployV1(ctx)
		v2 := w.push("v2")
		w.rack.ResetCalls()

		procs := webSpec("").Processes
		procs[0].Count = 3
		procs = append(procs[:1], convox.Process{Name: "cron", Count: 1, Command: []string{"/app/cron"}})
		plan, err := w.c.App("web").Plan(ctx, convox.ReleaseSpec{
			Image:     "web:v2",
			Env:       map[string]string{"FEATURE": "on"},
			Secrets:   map[string]convox.Secret{"TOKEN": "very-secret"},
			Processes: procs,
		})
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		want := &convox.Plan{
			App:   "web",
			From:  "R1",
			Image: &convox.FieldChange{Field: "image", From: r1.Image.Digest, To: v2.Digest},
			Env: []convox.EnvChange{
				{Name: "FEATURE", Kind: convox.Added},
				{Name: "MODE", Kind: convox.Removed},
				{Name: "TOKEN", Kind: convox.Added, Secret: true},
			},
			Processes: []convox.ProcessChange{
				{Name: "worker", Kind: convox.Removed},
				{Name: "cron", Kind: convox.Added},
				{Name: "web", Kind: convox.Changed, Fields: []convox.FieldChange{{Field: "count", From: "2", To: "3"}}},
			},
		}
		if diff := cmp.Diff(want, plan); diff != "" {
			t.Errorf("plan (-want +got):\n%s", diff)
		}
		if s := fmt.Sprintf("%v %+v %s", plan, plan, plan); strings.Contains(s, "very-secret") || strings.Contains(s, "production") {
			t.Errorf("plan renders env values: %s", s)
		}
		for _, c := range w.rack.Calls() {
			switch c.Name() {
			case "Store.Put", "Store.Delete", "Scheduler.Apply", "Balancer.EnsureRoute":
				t.Errorf("Plan had a side effect: %s", c)
			}
		}
		if got := w.active(ctx); got != "R1" {
			t.Errorf("active %s after Plan", got)
		}

		{ // a diff of a release with itself is empty
			p, err := w.c.App("web").Diff(ctx, "R1", "R1")
			if err != nil || !p.Empty() || p.String() != "no changes" {
				t.Errorf("Diff(R1, R1) = %v, %v; want no changes", p, err)
			}
		}
		{ // a scale shows in the diff and the notification summary
			if _, err := w.c.App("web").Scale(ctx, "web", 4, nil); err != nil {
				t.Fatal(err)
			}
			p, err := w.c.App("web").Diff(ctx, "R1", "R2")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff("web count 2 → 4", p.String()); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			ns := w.rack.Notifications()
			if last := ns[len(ns)-1]; !strings.Contains(last.Summary, "web count 2 → 4") {
				t.Errorf("notification summary %q lacks the plan", last.Summary)
			}
		}
	})
}

func TestCheckRollback(t *testing.T) {
	t.Run("ready when the image and routes still resolve", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				t.Fatal(err)
			}
			res, err := w.c.App("web").CheckRollback(ctx, convox.Previous())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&convox.RollbackCheck{Target: "R1"}, res); diff != "" {
				t.Errorf("check (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("not ready after the target's image was deleted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			r1 := w.deployV1(ctx)
			w.push("v2")
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				t.Fatal(err)
			}
			if err := w.rack.Registry().DeleteImage(ctx, "web", r1.Image.Digest); err != nil {
				t.Fatal(err)
			}
			res, err := w.c.App("web").CheckRollback(ctx, convox.Previous())
			if err != nil {
				t.Fatal(err)
			}
			if res.Ready() || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "no longer resolves") {
				t.Errorf("check = %+v, want one problem about the image", res)
			}
			// And the rollback itself refuses before any change.
			if _, err := w.c.App("web").Rollback(ctx, convox.Previous(), nil); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("Rollback = %v, want ErrNotFound for the missing image", err)
			}
			if got := w.active(ctx); got != "R2" {
				t.Errorf("active %s, want R2 untouched", got)
			}
		})
	})

	t.Run("a registry outage is an error, not a verdict", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				t.Fatal(err)
			}
			w.rack.Fail("Registry.Resolve", fmt.Errorf("fake: %w", providers.ErrUnavailable), 100)
			if _, err := w.c.App("web").CheckRollback(ctx, convox.Previous()); !providers.IsTemporary(err) {
				t.Errorf("CheckRollback = %v, want a temporary error", err)
			}
		})
	})
}

func TestPlanIncludesTheSchedulersResourceChanges(t *testing.T) {
	changes := []providers.ResourceChange{
		{Resource: "ServiceOfweb", Type: "AWS::ECS::Service", Action: providers.ChangeModify, Replacement: providers.ReplacementNo, Scopes: []string{"Properties"}},
		{Resource: "TaskOfwebV1", Type: "AWS::ECS::TaskDefinition", Action: providers.ChangeRemove},
		{Resource: "TaskOfwebV2", Type: "AWS::ECS::TaskDefinition", Action: providers.ChangeAdd},
		{Resource: "TargetGroupOfweb", Type: "AWS::ElasticLoadBalancingV2::TargetGroup", Action: providers.ChangeModify, Replacement: providers.ReplacementYes},
		{Resource: "RuleOfweb", Type: "AWS::ElasticLoadBalancingV2::ListenerRule", Action: providers.ChangeModify, Replacement: providers.ReplacementConditional},
	}
	for _, tc := range []struct {
		name       string
		changes    []providers.ResourceChange
		planErr    error
		wantString string
		wantErr    error
	}{
		{
			name: "the scheduler's changes are the plan's resources", changes: changes,
			wantString: "env +FEATURE; resources ~ServiceOfweb -TaskOfwebV1 +TaskOfwebV2 ~TargetGroupOfweb! ~RuleOfweb?",
		},
		{name: "no resource change adds nothing to the summary", wantString: "env +FEATURE"},
		{name: "a failing plan of the scheduler fails Plan", planErr: providers.ErrUnavailable, wantErr: providers.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				s := &stackScheduler{}
				w := newStackWorld(t, s)
				w.deployV1(ctx)
				s.changes, s.planErr = tc.changes, tc.planErr
				w.rack.ResetCalls()
				spec := webSpec("web:v1")
				spec.Env["FEATURE"] = "on"
				plan, err := w.c.App("web").Plan(ctx, spec)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("Plan = %v, %v; want an error matching %v", plan, err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Plan: %v", err)
				}
				if diff := cmp.Diff(tc.changes, plan.Resources); diff != "" {
					t.Errorf("plan's resources (-want +got):\n%s", diff)
				}
				if got := plan.String(); got != tc.wantString {
					t.Errorf("plan.String() = %q, want %q", got, tc.wantString)
				}
				if len(s.planned) != 1 {
					t.Fatalf("PlanChanges called %d times, want 1", len(s.planned))
				}
				d := s.planned[0]
				if d.App != "web" || d.Release != "R2" || d.Env["FEATURE"] != "on" || len(d.Bindings) != 1 || len(d.Bindings["web"]) != 1 || d.Bindings["web"][0].Target == "" {
					t.Errorf("planned Desired %+v, want release R2 of web with FEATURE and web's one binding", d)
				}
				for _, c := range w.rack.Calls() {
					switch c.Name() {
					case "Store.Put", "Store.Delete", "Scheduler.Apply", "Balancer.EnsureRoute":
						t.Errorf("Plan had a side effect: %s", c)
					}
				}
			})
		})
	}
}
