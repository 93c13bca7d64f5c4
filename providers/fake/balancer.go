package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/convox-go/convox/providers"
)

// Balancer is one of the rack's balancers (Rack.Balancer, the default, or
// Rack.BalancerNamed): a providers.Balancer that also implements
// providers.WeightShifter. Each balancer has routes and target sets of its
// own, so two balancers may each hold a route of the same app and process.
// A route's ID is ResourceName(app, process, "") and its bindings have
// Balancer set to the balancer's Name, Kind providers.BindingLocal and
// Target ResourceName(app, process, set). Its targets are the rack
// scheduler's tasks applied with those bindings; a task bound to routes of
// two balancers is a target of both.
type Balancer struct {
	r    *Rack
	name string

	// guarded by r.mu
	routes map[string]*route
	sets   map[string]*targetSet // by binding target
}

var (
	_ providers.Balancer      = (*Balancer)(nil)
	_ providers.WeightShifter = (*Balancer)(nil)
)

func newBalancer(r *Rack, name string) *Balancer {
	return &Balancer{r: r, name: name, routes: map[string]*route{}, sets: map[string]*targetSet{}}
}

// Name returns the balancer's name: the Balancer field of its bindings.
func (b *Balancer) Name() string { return b.name }

type route struct {
	id       string
	spec     providers.RouteSpec
	endpoint string
	sets     map[string]*targetSet // by set name; "" is the default set
}

type targetSet struct {
	name    string
	target  string // the binding target
	weight  int
	targets map[string]*task // by address
}

// targetHealth derives a target's health from its task.
func (r *Rack) targetHealth(t *task) (providers.TargetState, string) {
	switch {
	case t.State == providers.TaskPending:
		return providers.TargetInitial, "Target registration is in progress"
	case t.draining:
		return providers.TargetDraining, "Target deregistration is in progress"
	case r.unhealthy(t):
		return providers.TargetUnhealthy, "Health checks failed"
	default:
		return providers.TargetHealthy, ""
	}
}

func (b *Balancer) binding(rt *route, ts *targetSet) providers.Binding {
	return providers.Binding{Balancer: b.name, Kind: providers.BindingLocal, Target: ts.target, Port: rt.spec.Port}
}

// boundSet returns the target set a binding names, or nil when its
// balancer or set does not exist (any more); r.mu is held.
func (r *Rack) boundSet(b providers.Binding) *targetSet {
	if bal := r.balancers[b.Balancer]; bal != nil {
		return bal.sets[b.Target]
	}
	return nil
}

// setTarget registers a task as a target of the set bound by b; r.mu is
// held. A binding whose set no longer exists is ignored.
func (r *Rack) setTarget(b providers.Binding, t *task) {
	if ts := r.boundSet(b); ts != nil {
		ts.targets[t.Address] = t
	}
}

// removeTarget deregisters a target from the set bound by b; r.mu is held.
func (r *Rack) removeTarget(b providers.Binding, addr string) {
	if ts := r.boundSet(b); ts != nil {
		delete(ts.targets, addr)
	}
}

// call describes a call of one of the balancer's methods.
func (b *Balancer) call(method, key string, args ...any) Call {
	return Call{Provider: "Balancer", Balancer: b.name, Method: method, Key: key, Args: args}
}

func validateRouteSpec(spec providers.RouteSpec) error {
	if err := providers.ValidateAppProcess(spec.App, spec.Process); err != nil {
		return err
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return providers.Invalidf("fake balancer: route port %d out of range", spec.Port)
	}
	if err := spec.Protocol.Validate(); err != nil {
		return fmt.Errorf("fake balancer: %w", err)
	}
	if spec.DeregistrationDelay < 0 {
		return providers.Invalidf("fake balancer: negative deregistration delay")
	}
	return nil
}

// EnsureRoute implements providers.Balancer. The endpoint is
// "http://<app>-<process>.fake.test" on the default balancer and
// "http://<app>-<process>.<balancer>.fake.test" on an additional one
// (https for HTTPS and HTTP2), or the spec's Host and Path when Host is set.
func (b *Balancer) EnsureRoute(ctx context.Context, spec providers.RouteSpec) (providers.Route, error) {
	c := b.call("EnsureRoute", providers.ResourceName(spec.App, spec.Process, ""), spec)
	return do(b.r, ctx, c, func(ctx context.Context) (providers.Route, error) {
		if h := b.r.currentHooks().Balancer.EnsureRoute; h != nil {
			return h(ctx, spec, b.ensureRoute)
		}
		return b.ensureRoute(ctx, spec)
	})
}

func (b *Balancer) ensureRoute(ctx context.Context, spec providers.RouteSpec) (providers.Route, error) {
	if err := b.r.enter(ctx, "Balancer.EnsureRoute"); err != nil {
		return providers.Route{}, err
	}
	if err := validateRouteSpec(spec); err != nil {
		return providers.Route{}, err
	}
	id := providers.ResourceName(spec.App, spec.Process, "")
	scheme := "http"
	if spec.Protocol == providers.HTTPS || spec.Protocol == providers.HTTP2 {
		scheme = "https"
	}
	host := id + ".fake.test"
	if b != b.r.balancer {
		host = id + "." + b.name + ".fake.test"
	}
	endpoint := scheme + "://" + host
	if spec.Host != "" {
		endpoint = scheme + "://" + spec.Host + spec.Path
	}
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	rt, ok := b.routes[id]
	if !ok {
		rt = &route{id: id, sets: map[string]*targetSet{}}
		ts := &targetSet{target: id, weight: 100, targets: map[string]*task{}}
		rt.sets[""] = ts
		b.sets[ts.target] = ts
		b.routes[id] = rt
	}
	rt.spec = spec
	rt.endpoint = endpoint
	return providers.Route{ID: id, Endpoint: endpoint, Binding: b.binding(rt, rt.sets[""])}, nil
}

// findRoute returns the balancer's route; r.mu is held.
func (b *Balancer) findRoute(method, id string) (*route, error) {
	rt, ok := b.routes[id]
	if !ok {
		return nil, fmt.Errorf("fake balancer %s: %s: route %q: %w", b.name, method, id, providers.ErrNotFound)
	}
	return rt, nil
}

// Health implements providers.Balancer.
func (b *Balancer) Health(ctx context.Context, routeID string) ([]providers.TargetHealth, error) {
	c := b.call("Health", routeID, routeID)
	return do(b.r, ctx, c, func(ctx context.Context) ([]providers.TargetHealth, error) {
		if h := b.r.currentHooks().Balancer.Health; h != nil {
			return h(ctx, routeID, b.health)
		}
		return b.health(ctx, routeID)
	})
}

func (b *Balancer) health(ctx context.Context, routeID string) ([]providers.TargetHealth, error) {
	if err := b.r.enter(ctx, "Balancer.Health"); err != nil {
		return nil, err
	}
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	rt, err := b.findRoute("health", routeID)
	if err != nil {
		return nil, err
	}
	out := []providers.TargetHealth{}
	for _, name := range slices.Sorted(maps.Keys(rt.sets)) {
		ts := rt.sets[name]
		for _, addr := range slices.Sorted(maps.Keys(ts.targets)) {
			state, reason := b.r.targetHealth(ts.targets[addr])
			out = append(out, providers.TargetHealth{Target: addr, Set: name, State: state, Reason: reason})
		}
	}
	return out, nil
}

// DeleteRoute implements providers.Balancer.
func (b *Balancer) DeleteRoute(ctx context.Context, routeID string) error {
	c := b.call("DeleteRoute", routeID, routeID)
	return do0(b.r, ctx, c, func(ctx context.Context) error {
		if h := b.r.currentHooks().Balancer.DeleteRoute; h != nil {
			return h(ctx, routeID, b.deleteRoute)
		}
		return b.deleteRoute(ctx, routeID)
	})
}

func (b *Balancer) deleteRoute(ctx context.Context, routeID string) error {
	if err := b.r.enter(ctx, "Balancer.DeleteRoute"); err != nil {
		return err
	}
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	rt, ok := b.routes[routeID]
	if !ok {
		return nil
	}
	for _, ts := range rt.sets {
		delete(b.sets, ts.target)
	}
	delete(b.routes, routeID)
	return nil
}

// EnsureTargetSet implements providers.WeightShifter.
func (b *Balancer) EnsureTargetSet(ctx context.Context, routeID, set string) (providers.Binding, error) {
	c := b.call("EnsureTargetSet", routeID, routeID, set)
	return do(b.r, ctx, c, func(ctx context.Context) (providers.Binding, error) {
		if h := b.r.currentHooks().Balancer.EnsureTargetSet; h != nil {
			return h(ctx, routeID, set, b.ensureTargetSet)
		}
		return b.ensureTargetSet(ctx, routeID, set)
	})
}

func (b *Balancer) ensureTargetSet(ctx context.Context, routeID, set string) (providers.Binding, error) {
	if err := b.r.enter(ctx, "Balancer.EnsureTargetSet"); err != nil {
		return providers.Binding{}, err
	}
	if err := providers.ValidateName("target set", set, providers.MaxSetName); err != nil {
		return providers.Binding{}, err
	}
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	rt, err := b.findRoute("ensure target set", routeID)
	if err != nil {
		return providers.Binding{}, err
	}
	ts, ok := rt.sets[set]
	if !ok {
		ts = &targetSet{name: set, target: providers.ResourceName(rt.spec.App, rt.spec.Process, set), targets: map[string]*task{}}
		rt.sets[set] = ts
		b.sets[ts.target] = ts
	}
	return b.binding(rt, ts), nil
}

// SetWeights implements providers.WeightShifter. Sets not named get
// weight zero.
func (b *Balancer) SetWeights(ctx context.Context, routeID string, weights map[string]int) error {
	c := b.call("SetWeights", routeID, routeID, maps.Clone(weights))
	return do0(b.r, ctx, c, func(ctx context.Context) error {
		if h := b.r.currentHooks().Balancer.SetWeights; h != nil {
			return h(ctx, routeID, weights, b.setWeights)
		}
		return b.setWeights(ctx, routeID, weights)
	})
}

func (b *Balancer) setWeights(ctx context.Context, routeID string, weights map[string]int) error {
	if err := b.r.enter(ctx, "Balancer.SetWeights"); err != nil {
		return err
	}
	sum := 0
	for set, w := range weights {
		if w < 0 || w > 100 {
			return providers.Invalidf("fake balancer: weight %d of set %q out of range 0-100", w, set)
		}
		sum += w
	}
	if sum != 100 {
		return providers.Invalidf("fake balancer: weights sum to %d, not 100", sum)
	}
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	rt, err := b.findRoute("set weights", routeID)
	if err != nil {
		return err
	}
	for set := range weights {
		if rt.sets[set] == nil {
			return fmt.Errorf("fake balancer: set weights: target set %q of route %q: %w", set, routeID, providers.ErrNotFound)
		}
	}
	for name, ts := range rt.sets {
		ts.weight = weights[name]
	}
	return nil
}

// Weights implements providers.WeightShifter.
func (b *Balancer) Weights(ctx context.Context, routeID string) (map[string]int, error) {
	c := b.call("Weights", routeID, routeID)
	return do(b.r, ctx, c, func(ctx context.Context) (map[string]int, error) {
		if h := b.r.currentHooks().Balancer.Weights; h != nil {
			return h(ctx, routeID, b.weights)
		}
		return b.weights(ctx, routeID)
	})
}

func (b *Balancer) weights(ctx context.Context, routeID string) (map[string]int, error) {
	if err := b.r.enter(ctx, "Balancer.Weights"); err != nil {
		return nil, err
	}
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	rt, err := b.findRoute("weights", routeID)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for name, ts := range rt.sets {
		out[name] = ts.weight
	}
	return out, nil
}

// DeleteTargetSet implements providers.WeightShifter. The default set ""
// cannot be deleted (ErrInvalid); a missing route returns nil like a
// missing set.
func (b *Balancer) DeleteTargetSet(ctx context.Context, routeID, set string) error {
	c := b.call("DeleteTargetSet", routeID, routeID, set)
	return do0(b.r, ctx, c, func(ctx context.Context) error {
		if h := b.r.currentHooks().Balancer.DeleteTargetSet; h != nil {
			return h(ctx, routeID, set, b.deleteTargetSet)
		}
		return b.deleteTargetSet(ctx, routeID, set)
	})
}

func (b *Balancer) deleteTargetSet(ctx context.Context, routeID, set string) error {
	if err := b.r.enter(ctx, "Balancer.DeleteTargetSet"); err != nil {
		return err
	}
	if set == "" {
		return providers.Invalidf("fake balancer: the default target set of route %q cannot be deleted", routeID)
	}
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	rt, ok := b.routes[routeID]
	if !ok {
		return nil
	}
	ts, ok := rt.sets[set]
	if !ok {
		return nil
	}
	if ts.weight > 0 {
		return fmt.Errorf("fake balancer: target set %q of route %q has weight %d: %w", set, routeID, ts.weight, providers.ErrConflict)
	}
	delete(b.sets, ts.target)
	delete(rt.sets, set)
	return nil
}
