package convox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// weightsOf returns the web route's weights.
func (w *world) weightsOf() map[string]int {
	w.t.Helper()
	ws, err := w.rack.Balancer().Weights(w.t.Context(), "web-web")
	if err != nil {
		w.t.Fatalf("Weights: %v", err)
	}
	return ws
}

// weightLog records every SetWeights call on the fake balancer.
func weightLog(r *fake.Rack) *[]map[string]int {
	var log []map[string]int
	r.SetHooks(fake.Hooks{Balancer: fake.BalancerHooks{
		SetWeights: func(ctx context.Context, id string, ws map[string]int, next func(context.Context, string, map[string]int) error) error {
			log = append(log, ws)
			return next(ctx, id, ws)
		},
	}})
	return &log
}

func TestStrategies(t *testing.T) {
	t.Run("blue/green stages at weight 0, switches all traffic, then stops the old release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			log := weightLog(w.rack)
			rel, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, &convox.DeployOptions{Strategy: convox.BlueGreen(30 * time.Second)})
			if err != nil {
				t.Fatalf("blue/green deploy: %v", err)
			}
			if rel.Status != convox.StatusActive {
				t.Errorf("status %s", rel.Status)
			}
			want := []map[string]int{{"": 100, "g": 0}, {"": 0, "g": 100}}
			if diff := cmp.Diff(want, *log); diff != "" {
				t.Errorf("weights set (-want +got):\n%s", diff)
			}
			if s := w.serving(ctx); s != "R2" {
				t.Errorf("serving %s, want R2", s)
			}
			// The next deploy alternates back to the default set.
			w.push("v3")
			*log = nil
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v3"}, &convox.DeployOptions{Strategy: convox.BlueGreen(0)}); err != nil {
				t.Fatal(err)
			}
			want = []map[string]int{{"g": 100, "": 0}, {"g": 0, "": 100}}
			if diff := cmp.Diff(want, *log); diff != "" {
				t.Errorf("weights of the second blue/green (-want +got):\n%s", diff)
			}
			var bake int
			for _, e := range w.allEvents() {
				if e.Step == convox.StepBake && e.Type == convox.EventWaiting && e.Progress.Limit == 30*time.Second {
					bake++
				}
			}
			if bake == 0 {
				t.Error("no bake progress event with the bake time as its limit")
			}
		})
	})

	t.Run("a canary aborted at 10% puts all traffic back on the old release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			log := weightLog(w.rack)
			// The new release turns unhealthy while baking at 10%.
			rel, err := w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"})
			if err != nil {
				t.Fatal(err)
			}
			dep, err := w.c.App("web").Promote(ctx, rel.ID, &convox.DeployOptions{Strategy: convox.Canary(10, 50)})
			if err != nil {
				t.Fatal(err)
			}
			for !w.sawStep(convox.StepBake) {
				time.Sleep(time.Second)
			}
			w.rack.FailHealth(rel.ID)
			err = dep.Wait(ctx)
			var de *convox.DeployError
			if !errors.As(err, &de) || de.Step != convox.StepBake || !de.RolledBack {
				t.Fatalf("Wait = %v, want a rolled-back failure while baking", err)
			}
			want := []map[string]int{{"": 100, "g": 0}, {"": 90, "g": 10}, {"": 100, "g": 0}}
			if diff := cmp.Diff(want, *log); diff != "" {
				t.Errorf("weights set (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]int{"": 100, "g": 0}, w.weightsOf()); diff != "" {
				t.Errorf("final weights (-want +got):\n%s", diff)
			}
			if a, s := w.active(ctx), w.serving(ctx); a != "R1" || s != "R1" {
				t.Errorf("active %s serving %s, want R1", a, s)
			}
			ts, _ := collect(w.c.App("web").Tasks(ctx))
			for _, task := range ts {
				if task.Release == "R2" && task.State != providers.TaskStopped {
					t.Errorf("staged task %s of R2 still %s", task.ID, task.State)
				}
			}
		})
	})

	t.Run("a canary walks its steps and bakes each", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			log := weightLog(w.rack)
			start := time.Now()
			_, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, &convox.DeployOptions{
				Strategy: convox.CanarySteps(convox.CanaryStep{Percent: 10, Bake: time.Minute}, convox.CanaryStep{Percent: 50, Bake: 2 * time.Minute}),
			})
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < 3*time.Minute {
				t.Errorf("canary took %v of fake time, less than its 3m of bakes", took)
			}
			want := []map[string]int{{"": 100, "g": 0}, {"": 90, "g": 10}, {"": 50, "g": 50}, {"": 0, "g": 100}}
			if diff := cmp.Diff(want, *log); diff != "" {
				t.Errorf("weights set (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("a strategy is refused before any change when the rack lacks what it needs", func(t *testing.T) {
		full := func(r *fake.Rack) convox.Rack { return r.ConvoxRack() }
		noWeights := func(r *fake.Rack) convox.Rack { // a classic ELB
			rk := r.ConvoxRack()
			rk.Balancer = plainBalancer{r.Balancer()}
			return rk
		}
		noStager := func(r *fake.Rack) convox.Rack {
			rk := r.ConvoxRack()
			rk.Scheduler = plainScheduler{r.Scheduler()}
			return rk
		}
		racks := []struct {
			name string
			rack func(r *fake.Rack) convox.Rack
			// refuses holds the capability the rack lacks ("" for none).
			refuses convox.Capability
		}{
			{"a complete rack", full, ""},
			{"a balancer without WeightShifter", noWeights, convox.CapWeightShifter},
			{"a scheduler without Stager", noStager, convox.CapStager},
		}
		strategies := []struct {
			strategy convox.Strategy
			needs    []convox.Capability
		}{
			{convox.Rolling(), nil},
			{convox.BlueGreen(0), []convox.Capability{convox.CapWeightShifter, convox.CapStager}},
			{convox.Canary(10), []convox.Capability{convox.CapWeightShifter, convox.CapStager}},
		}
		for _, rk := range racks {
			for _, st := range strategies {
				refused := rk.refuses != "" && slices.Contains(st.needs, rk.refuses)
				verdict := "is accepted"
				if refused {
					verdict = "is refused"
				}
				t.Run(fmt.Sprintf("%s on %s %s", st.strategy, rk.name, verdict), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						w := newWorld(t, nil)
						ctx := t.Context()
						w.deployV1(ctx)
						w.push("v2")
						crk := rk.rack(w.rack)
						if err := crk.Check(st.needs...); refused != errors.Is(err, providers.ErrUnimplemented) {
							t.Errorf("Rack.Check(%v) = %v, want refused %v", st.needs, err, refused)
						}
						c, err := convox.New(crk, &convox.Options{PollInterval: time.Second})
						if err != nil {
							t.Fatal(err)
						}
						rel, err := c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"})
						if err != nil {
							t.Fatal(err)
						}
						w.rack.ResetCalls()
						dep, err := c.App("web").Promote(ctx, rel.ID, &convox.DeployOptions{Strategy: st.strategy})
						if !refused {
							if err != nil {
								t.Fatalf("Promote = %v, want accepted", err)
							}
							if err := dep.Wait(ctx); err != nil {
								t.Fatalf("Wait = %v", err)
							}
							return
						}
						var de *convox.DeployError
						if !errors.As(err, &de) || !errors.Is(err, providers.ErrUnimplemented) || de.Step != convox.StepPrepare || de.Changed {
							t.Fatalf("Promote = %v, want a *DeployError at %s matching ErrUnimplemented that changed nothing", err, convox.StepPrepare)
						}
						if !strings.Contains(err.Error(), string(rk.refuses)) {
							t.Errorf("Promote = %q, want it to name the missing %s", err, rk.refuses)
						}
						for _, call := range w.rack.Calls() {
							switch call.Provider {
							case "Scheduler", "Balancer":
								t.Errorf("refused deploy called %s", call)
							case "Store":
								if call.Method == "Put" {
									t.Errorf("refused deploy wrote %s", call.Key)
								}
							}
						}
					})
				})
			}
		}
	})

	t.Run("malformed canary steps are invalid", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			for _, s := range []convox.Strategy{convox.Canary(), convox.Canary(50, 10), convox.Canary(100), convox.Canary(0)} {
				if _, err := w.c.App("web").Promote(ctx, "R1", &convox.DeployOptions{Strategy: s}); !errors.Is(err, providers.ErrInvalid) {
					t.Errorf("%v: Promote = %v, want ErrInvalid", s, err)
				}
			}
		})
	})

	t.Run("cancel during a canary restores traffic at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.push("v2")
			rel, _ := w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"})
			dep, err := w.c.App("web").Promote(ctx, rel.ID, &convox.DeployOptions{Strategy: convox.Canary(25)})
			if err != nil {
				t.Fatal(err)
			}
			for !w.sawStep(convox.StepBake) {
				time.Sleep(time.Second)
			}
			if err := w.c.App("web").Cancel(ctx); err != nil {
				t.Fatal(err)
			}
			var de *convox.DeployError
			if err := dep.Wait(ctx); !errors.As(err, &de) || !de.Canceled || !de.RolledBack {
				t.Fatalf("Wait = %v, want canceled and rolled back", err)
			}
			if diff := cmp.Diff(map[string]int{"": 100, "g": 0}, w.weightsOf()); diff != "" {
				t.Errorf("weights (-want +got):\n%s", diff)
			}
			if !strings.Contains(w.active(ctx), "R1") {
				t.Errorf("active %s", w.active(ctx))
			}
		})
	})
}
