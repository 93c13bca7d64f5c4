package convox

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
)

// Deploy steps of weighted strategies (blue/green and canary).
const (
	StepStage  Step = "stage"  // run the new release beside the serving one, at weight 0
	StepShift  Step = "shift"  // move traffic to the new release
	StepBake   Step = "bake"   // hold a traffic split while watching health
	StepSwitch Step = "switch" // make the staged release the serving one and drain the old
)

// DefaultBake is how long each canary step holds when no bake time is given.
const DefaultBake = time.Minute

// CanaryStep sends Percent of the traffic to the new release and holds it
// for Bake while watching its health.
type CanaryStep struct {
	Percent int
	Bake    time.Duration
}

// Strategy is how a release replaces the serving one. The zero value is
// Rolling.
type Strategy struct {
	impl strategyImpl
}

// strategyImpl is one way of replacing the serving release.
type strategyImpl interface {
	// String names the strategy for messages and events.
	String() string
	// needs lists the optional capabilities of the app's providers the
	// strategy uses; Promote refuses the deploy before any change when
	// one is missing.
	needs() []Capability
	// validate checks the strategy's own parameters.
	validate() error
	// promote replaces the serving release by rel, once routes are
	// ensured (bindings are the serving target sets, per process).
	promote(ctx context.Context, d *Deployment, rel *releaseDoc, sel selection, bindings map[string][]providers.Binding) *stepError
}

// Rolling replaces tasks in place through the scheduler: start new, wait
// healthy, stop old. It needs no optional capability.
func Rolling() Strategy { return Strategy{impl: rolling{}} }

// BlueGreen runs the new release beside the serving one in a second target
// set at weight 0, waits until it is healthy, switches all traffic to it,
// holds for bake (zero: no hold) watching its health, then drains and stops
// the old release. A failure before the old release stopped restores
// traffic to it at once. It needs a balancer with WeightShifter and a
// scheduler with Stager.
func BlueGreen(bake time.Duration) Strategy { return Strategy{impl: blueGreen{bake: bake}} }

// Canary is a canary deploy sending the given percentages of traffic to
// the new release in turn, each held for DefaultBake while its health is
// watched, then 100%. Canary(10, 50) goes 10% → 50% → 100%. Like
// BlueGreen, it needs a balancer with WeightShifter and a scheduler with
// Stager.
func Canary(percents ...int) Strategy {
	steps := make([]CanaryStep, len(percents))
	for i, p := range percents {
		steps[i] = CanaryStep{Percent: p, Bake: DefaultBake}
	}
	return Strategy{impl: canary{steps: steps}}
}

// CanarySteps is a canary deploy with explicit steps; see Canary.
func CanarySteps(steps ...CanaryStep) Strategy {
	return Strategy{impl: canary{steps: slices.Clone(steps)}}
}

// String names the strategy ("rolling", "blue-green", "canary 10%/1m0s → 50%/1m0s").
func (s Strategy) String() string { return s.get().String() }

func (s Strategy) get() strategyImpl {
	if s.impl == nil {
		return rolling{}
	}
	return s.impl
}

// weighted reports whether the strategy splits traffic between two
// releases, which a balancer migration in progress rules out.
func (s Strategy) weighted() bool { return slices.Contains(s.get().needs(), CapWeightShifter) }

// validate checks the strategy against the release and the app's
// providers, before any side effect.
func (s Strategy) validate(rel *releaseDoc, sel selection) error {
	impl := s.get()
	if err := impl.validate(); err != nil {
		return err
	}
	needs := impl.needs()
	if len(needs) == 0 {
		return nil
	}
	routed := slices.ContainsFunc(rel.Processes, func(p Process) bool { return p.Port > 0 && p.Count > 0 })
	if !routed {
		return providers.Invalidf("a %s deploy needs a running process with a port", impl)
	}
	if err := sel.check(needs...); err != nil {
		return fmt.Errorf("%s deploys split traffic between two releases running side by side: %w", impl, err)
	}
	return nil
}

// rolling is the Rolling strategy.
type rolling struct{}

func (rolling) String() string      { return "rolling" }
func (rolling) needs() []Capability { return nil }
func (rolling) validate() error     { return nil }

func (rolling) promote(ctx context.Context, d *Deployment, rel *releaseDoc, sel selection, bindings map[string][]providers.Binding) *stepError {
	d.stepEvent(StepApply, fmt.Sprintf("applying %s to scheduler %s", d.Release, sel.spec.Scheduler))
	desired := rel.desired(d.token, bindings)
	if _, err := sel.sched.Apply(d.at(ctx, StepApply), desired); err != nil {
		return d.ctxOr(ctx, failStep(StepApply, err, "apply: %v", err))
	}
	return d.wait(ctx, rel, sel)
}

// weightedNeeds are the capabilities of the weighted strategies.
var weightedNeeds = []Capability{CapWeightShifter, CapStager}

// blueGreen is the BlueGreen strategy.
type blueGreen struct{ bake time.Duration }

func (blueGreen) String() string      { return "blue-green" }
func (blueGreen) needs() []Capability { return weightedNeeds }

func (s blueGreen) validate() error {
	if s.bake < 0 {
		return providers.Invalidf("bake time %s is negative", s.bake)
	}
	return nil
}

func (s blueGreen) promote(ctx context.Context, d *Deployment, rel *releaseDoc, sel selection, _ map[string][]providers.Binding) *stepError {
	return d.promoteWeighted(ctx, rel, sel, []CanaryStep{{Percent: 100, Bake: s.bake}})
}

// canary is the Canary strategy.
type canary struct{ steps []CanaryStep }

func (s canary) String() string {
	parts := make([]string, len(s.steps))
	for i, st := range s.steps {
		parts[i] = fmt.Sprintf("%d%%/%s", st.Percent, st.Bake)
	}
	return "canary " + strings.Join(parts, " → ")
}

func (canary) needs() []Capability { return weightedNeeds }

func (s canary) validate() error {
	if len(s.steps) == 0 {
		return providers.Invalidf("a canary needs at least one step")
	}
	prev := 0
	for _, st := range s.steps {
		if st.Percent <= prev || st.Percent >= 100 {
			return providers.Invalidf("canary percentages must increase strictly between 0 and 100, got %d after %d", st.Percent, prev)
		}
		if st.Bake < 0 {
			return providers.Invalidf("canary bake time %s is negative", st.Bake)
		}
		prev = st.Percent
	}
	return nil
}

func (s canary) promote(ctx context.Context, d *Deployment, rel *releaseDoc, sel selection, _ map[string][]providers.Binding) *stepError {
	return d.promoteWeighted(ctx, rel, sel, append(slices.Clone(s.steps), CanaryStep{Percent: 100}))
}

// weightedPlan is the target sets of a weighted deploy, per routed process.
type weightedPlan struct {
	routes map[string]routeDoc // by process
	other  map[string]string   // the set the new release is staged into
	oth    map[string]providers.Binding
}

func (wp weightedPlan) weights(p string, newPercent int) map[string]int {
	r := wp.routes[p]
	return map[string]int{r.Live: 100 - newPercent, wp.other[p]: newPercent}
}

// setWeights sends newPercent of every route's traffic to the staged set.
func (d *Deployment) setWeights(ctx context.Context, ws providers.WeightShifter, wp weightedPlan, newPercent int) error {
	for _, p := range slices.Sorted(maps.Keys(wp.routes)) {
		id := wp.routes[p].ID
		if err := ws.SetWeights(d.at(ctx, StepShift), id, wp.weights(p, newPercent)); err != nil {
			return fmt.Errorf("set weights of %s: %w", p, err)
		}
	}
	return nil
}

// planWeighted ensures the staging target set of every routed process.
func (d *Deployment) planWeighted(ctx context.Context, rel *releaseDoc, ws providers.WeightShifter) (weightedPlan, error) {
	app, err := d.c.loadApp(ctx, d.App)
	if err != nil {
		return weightedPlan{}, err
	}
	wp := weightedPlan{routes: map[string]routeDoc{}, other: map[string]string{}, oth: map[string]providers.Binding{}}
	for _, p := range rel.Processes {
		r, ok := app.Routes[p.Name]
		if p.Port == 0 || !ok {
			continue
		}
		wp.routes[p.Name] = r
		o := r.other()
		wp.other[p.Name] = o
		if o == "" {
			wp.oth[p.Name] = r.Binding
			continue
		}
		b, err := ws.EnsureTargetSet(d.at(ctx, StepStage), r.ID, o)
		if err != nil {
			return wp, fmt.Errorf("ensure target set %q of %s: %w", o, p.Name, err)
		}
		if b.Balancer == "" {
			b.Balancer = r.Balancer
		}
		wp.oth[p.Name] = b
	}
	return wp, nil
}

// promoteWeighted runs a blue/green or canary deploy: it stages rel beside
// the serving release, shifts traffic to it in steps (the last at 100%),
// each held for its bake, then switches and drains the old release.
func (d *Deployment) promoteWeighted(ctx context.Context, rel *releaseDoc, sel selection, steps []CanaryStep) *stepError {
	ws := sel.balancer.(providers.WeightShifter)
	stager, _ := sel.sched.stager()
	wp, serr := d.stage(ctx, rel, sel, ws, stager)
	if serr != nil {
		return serr
	}
	for _, st := range steps {
		d.stepEvent(StepShift, fmt.Sprintf("sending %d%% of traffic to %s", st.Percent, d.Release))
		if err := d.setWeights(ctx, ws, wp, st.Percent); err != nil {
			return d.ctxOr(ctx, failStep(StepShift, err, "%v", err))
		}
		if st.Bake > 0 {
			if serr := d.waitFor(ctx, rel, sel, waitSpec{
				step: StepBake, message: fmt.Sprintf("baking at %d%%", st.Percent), sets: wp.other, bake: st.Bake,
			}); serr != nil {
				return serr
			}
		}
	}

	d.stepEvent(StepSwitch, fmt.Sprintf("%s serves all traffic; draining and stopping the old release", d.Release))
	if serr := d.markLease(ctx, StepSwitch, func(l *leaseDoc) { l.Switched = true }); serr != nil {
		return serr
	}
	d.switched = true
	if err := stager.PromoteStage(d.at(ctx, StepSwitch), d.App); err != nil {
		return d.ctxOr(ctx, failStep(StepSwitch, err, "promote staged release: %v", err))
	}
	if err := d.setLive(ctx, wp); err != nil {
		return d.ctxOr(ctx, failStep(StepSwitch, err, "record live target sets: %v", err))
	}
	if serr := d.waitFor(ctx, rel, sel, waitSpec{
		step: StepSwitch, message: "waiting for the old release to drain and stop",
		done: func(o observation) bool { return o.converged(d.Release) },
	}); serr != nil {
		return serr
	}
	for _, p := range slices.Sorted(maps.Keys(wp.routes)) {
		if old := wp.routes[p].Live; old != "" {
			if err := ws.DeleteTargetSet(ctx, wp.routes[p].ID, old); err != nil {
				d.c.log.Warn("convox: delete drained target set", "app", d.App, "process", p, "set", old, "err", err)
			}
		}
	}
	return nil
}

// stage runs rel beside the serving release in the other target set of
// every routed process, at weight 0, and waits until it is healthy.
func (d *Deployment) stage(ctx context.Context, rel *releaseDoc, sel selection, ws providers.WeightShifter, stager providers.Stager) (weightedPlan, *stepError) {
	d.stepEvent(StepStage, fmt.Sprintf("staging %s beside the serving release (%s)", d.Release, d.opts.Strategy))
	wp, err := d.planWeighted(ctx, rel, ws)
	if err != nil {
		return wp, d.ctxOr(ctx, failStep(StepStage, err, "%v", err))
	}
	if err := d.setWeights(ctx, ws, wp, 0); err != nil {
		return wp, d.ctxOr(ctx, failStep(StepStage, err, "%v", err))
	}
	if serr := d.markLease(ctx, StepStage, func(l *leaseDoc) { l.Staged = true }); serr != nil {
		return wp, serr
	}
	d.staged = &wp
	bindings := map[string][]providers.Binding{}
	for p, b := range wp.oth {
		bindings[p] = []providers.Binding{b}
	}
	desired := rel.desired(d.token, bindings)
	if _, err := stager.Stage(d.at(ctx, StepStage), desired); err != nil {
		return wp, d.ctxOr(ctx, failStep(StepStage, err, "stage: %v", err))
	}
	return wp, d.waitFor(ctx, rel, sel, waitSpec{
		step: StepStage, message: "waiting for the staged release's tasks running and targets healthy", sets: wp.other,
		done: func(o observation) bool {
			return o.progress.Running == o.progress.Desired && o.progress.Healthy == o.progress.Targets
		},
	})
}

// setLive records that the staged sets now serve traffic.
func (d *Deployment) setLive(ctx context.Context, wp weightedPlan) error {
	_, err := d.c.updateApp(ctx, d.App, func(a *appDoc) error {
		for p, o := range wp.other {
			r := a.Routes[p]
			r.Live = o
			if o == "" {
				r.LiveBinding = nil
			} else {
				b := wp.oth[p]
				r.LiveBinding = &b
			}
			a.Routes[p] = r
		}
		return nil
	})
	return err
}

// unstage compensates a weighted deploy that has not switched: traffic
// goes back to the serving release at once and the staged tasks stop.
func (d *Deployment) unstage(ctx context.Context, sel selection) error {
	ws, ok1 := sel.balancer.(providers.WeightShifter)
	stager, ok2 := sel.sched.stager()
	if !ok1 || !ok2 {
		return fmt.Errorf("%w: the rack no longer offers weighted deploys for this app", providers.ErrUnimplemented)
	}
	wp := d.staged
	if wp == nil {
		rel, err := d.c.loadRelease(ctx, d.App, d.Release)
		if err != nil {
			return err
		}
		p, err := d.planWeighted(ctx, rel, ws)
		if err != nil {
			return err
		}
		wp = &p
	}
	if err := d.setWeights(ctx, ws, *wp, 0); err != nil {
		return err
	}
	d.stepEvent(StepCompensate, "all traffic is back on the serving release; stopping the staged one")
	return stager.DiscardStage(d.at(ctx, StepCompensate), d.App)
}
