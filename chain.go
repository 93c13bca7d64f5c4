package convox

import (
	"context"

	"github.com/convox-go/convox/providers"
)

// The Client calls its schedulers and balancers through one middleware
// chain, built once per provider (see the package doc, # Retries):
//
//  1. the client's shared rate limiter of the provider (Options.RateLimit);
//  2. for a call a deploy makes at one of its steps (the step travels in
//     the ctx, set by Deployment.at), retries of temporary errors until
//     ctx ends, backing off from Options.PollInterval to
//     Options.MaxPollInterval;
//  3. an EventRetry with the deploy's app, release and step for each retry.
//
// A call made outside a deploy step is limited but not retried.

// scopeKey is the ctx key of a deploy step's callScope.
type scopeKey struct{}

// callScope is the deploy step a provider call is made for.
type callScope struct {
	app, release string
	step         Step
}

// at returns ctx for the provider calls of the deploy at step: the chain
// retries their temporary errors and reports each retry as an EventRetry.
func (d *Deployment) at(ctx context.Context, step Step) context.Context {
	return context.WithValue(ctx, scopeKey{}, callScope{app: d.App, release: d.Release, step: step})
}

// chain runs the calls of one provider, of kind ("scheduler", "balancer")
// and name in the rack.
type chain struct {
	c          *Client
	kind, name string
}

// do runs fn, one provider call, through the chain.
func (ch chain) do(ctx context.Context, fn func() error) error {
	scope, retry := ctx.Value(scopeKey{}).(callScope)
	b := ch.c.pollBackoff()
	for {
		if err := ch.c.limit(ctx, ch.kind, ch.name); err != nil {
			return err
		}
		err := fn()
		if !retry || err == nil || !providers.IsTemporary(err) || ctx.Err() != nil {
			return err
		}
		ch.c.emit(Event{Type: EventRetry, App: scope.app, Release: scope.release, Step: scope.step, Message: "retrying", Reason: err.Error()})
		if werr := b.Wait(ctx); werr != nil {
			return err
		}
	}
}

// call runs fn through ch and returns its result.
func call[T any](ctx context.Context, ch chain, fn func() (T, error)) (T, error) {
	var v T
	err := ch.do(ctx, func() error {
		var err error
		v, err = fn()
		return err
	})
	return v, err
}

// wrapBalancer returns b with every call through ch. It implements
// providers.WeightShifter if and only if b does, the one optional
// capability of a balancer.
func wrapBalancer(ch chain, b providers.Balancer) providers.Balancer {
	w := &balancerCalls{ch: ch, b: b}
	if ws, ok := b.(providers.WeightShifter); ok {
		return &weightedBalancerCalls{balancerCalls: w, ws: ws}
	}
	return w
}

// balancerCalls is a balancer whose calls go through a chain.
type balancerCalls struct {
	ch chain
	b  providers.Balancer
}

func (w *balancerCalls) EnsureRoute(ctx context.Context, spec providers.RouteSpec) (providers.Route, error) {
	return call(ctx, w.ch, func() (providers.Route, error) { return w.b.EnsureRoute(ctx, spec) })
}

func (w *balancerCalls) Health(ctx context.Context, routeID string) ([]providers.TargetHealth, error) {
	return call(ctx, w.ch, func() ([]providers.TargetHealth, error) { return w.b.Health(ctx, routeID) })
}

func (w *balancerCalls) DeleteRoute(ctx context.Context, routeID string) error {
	return w.ch.do(ctx, func() error { return w.b.DeleteRoute(ctx, routeID) })
}

// weightedBalancerCalls is a balancerCalls of a WeightShifter.
type weightedBalancerCalls struct {
	*balancerCalls
	ws providers.WeightShifter
}

func (w *weightedBalancerCalls) EnsureTargetSet(ctx context.Context, routeID, set string) (providers.Binding, error) {
	return call(ctx, w.ch, func() (providers.Binding, error) { return w.ws.EnsureTargetSet(ctx, routeID, set) })
}

func (w *weightedBalancerCalls) SetWeights(ctx context.Context, routeID string, weights map[string]int) error {
	return w.ch.do(ctx, func() error { return w.ws.SetWeights(ctx, routeID, weights) })
}

func (w *weightedBalancerCalls) Weights(ctx context.Context, routeID string) (map[string]int, error) {
	return call(ctx, w.ch, func() (map[string]int, error) { return w.ws.Weights(ctx, routeID) })
}

func (w *weightedBalancerCalls) DeleteTargetSet(ctx context.Context, routeID, set string) error {
	return w.ch.do(ctx, func() error { return w.ws.DeleteTargetSet(ctx, routeID, set) })
}

// schedulerCalls runs the calls of a scheduler the deploy engine makes
// through a chain. A scheduler has many optional capabilities, so the
// selection keeps the scheduler itself for capability checks and the
// calls the engine makes of them (runs, plans, drift), and makes its
// rollout calls (Apply, Status, Delete and staging) through schedulerCalls;
// the status batcher calls StatusMany through its chain.
type schedulerCalls struct {
	ch chain
	s  providers.Scheduler
}

func (w schedulerCalls) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return call(ctx, w.ch, func() (providers.Rollout, error) { return w.s.Apply(ctx, d) })
}

func (w schedulerCalls) Status(ctx context.Context, app string) (providers.AppStatus, error) {
	return call(ctx, w.ch, func() (providers.AppStatus, error) { return w.s.Status(ctx, app) })
}

func (w schedulerCalls) Delete(ctx context.Context, app string) error {
	return w.ch.do(ctx, func() error { return w.s.Delete(ctx, app) })
}

// stager returns the scheduler's Stager with its calls through the chain.
func (w schedulerCalls) stager() (providers.Stager, bool) {
	st, ok := w.s.(providers.Stager)
	if !ok {
		return nil, false
	}
	return stagerCalls{ch: w.ch, st: st}, true
}

// stagerCalls is a Stager whose calls go through a chain.
type stagerCalls struct {
	ch chain
	st providers.Stager
}

func (w stagerCalls) Stage(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return call(ctx, w.ch, func() (providers.Rollout, error) { return w.st.Stage(ctx, d) })
}

func (w stagerCalls) PromoteStage(ctx context.Context, app string) error {
	return w.ch.do(ctx, func() error { return w.st.PromoteStage(ctx, app) })
}

func (w stagerCalls) DiscardStage(ctx context.Context, app string) error {
	return w.ch.do(ctx, func() error { return w.st.DiscardStage(ctx, app) })
}
