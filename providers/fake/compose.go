package fake

import (
	"context"
	"iter"
	"slices"

	"github.com/convox-go/convox/providers"
)

// A hook layer is one Hooks value added to a rack (Options.Hooks, SetHooks
// or AddHooks). The rack runs the composition of its layers: a call goes
// through the most recently added layer first, whose next is the layer
// added before it, and so on down to the first layer, whose next is the
// rack's implementation. The composition is rebuilt whenever a layer is
// added or removed, so a call already running keeps the hooks it started
// with.
type hookLayer struct{ h Hooks }

// AddHooks adds h as the outermost layer of the rack's hooks and returns a
// function that removes it. Layers compose instead of replacing each other:
// for each method, the hook of the layer added last runs first and its
// next runs the hook of the layer added before it (or, when that layer has
// no hook for the method, the next layer down), ending at the rack's
// implementation. Hooks.Call hooks compose the same way, and all Call hooks
// run before all typed hooks (see Hooks). Calls already running keep the
// hooks they started with. Calling the returned function again does
// nothing; removing a layer leaves the others, and their order, as they
// were.
func (r *Rack) AddHooks(h Hooks) (remove func()) {
	l := &hookLayer{h: h}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.layers = append(r.layers, l)
	r.hooks = composeLayers(r.layers)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if i := slices.Index(r.layers, l); i >= 0 {
			r.layers = slices.Delete(r.layers, i, i+1)
			r.hooks = composeLayers(r.layers)
		}
	}
}

// SetHooks replaces every hook layer of the rack, those of Options.Hooks
// and AddHooks included, with the single layer h; SetHooks(Hooks{}) removes
// them all. Functions returned by earlier AddHooks calls then do nothing.
// Calls already running keep the hooks they started with. To add a hook
// without dropping the others, use AddHooks.
func (r *Rack) SetHooks(h Hooks) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.layers = []*hookLayer{{h: h}}
	r.hooks = composeLayers(r.layers)
}

func (r *Rack) currentHooks() Hooks {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hooks
}

// composeLayers folds layers, first added innermost, into one Hooks.
func composeLayers(layers []*hookLayer) Hooks {
	var h Hooks
	for _, l := range layers {
		h = compose(l.h, h)
	}
	return h
}

// compose returns the hooks that run outer's hook of each method around
// inner's.
func compose(outer, inner Hooks) Hooks {
	return Hooks{
		Call: wrapCall(outer.Call, inner.Call),
		Registry: RegistryHooks{
			EnsureRepository: wrap1(outer.Registry.EnsureRepository, inner.Registry.EnsureRepository),
			Resolve:          wrap1(outer.Registry.Resolve, inner.Registry.Resolve),
			Credentials:      wrap1(outer.Registry.Credentials, inner.Registry.Credentials),
			ListImages:       wrap1(outer.Registry.ListImages, inner.Registry.ListImages),
			DeleteImage:      wrap2e(outer.Registry.DeleteImage, inner.Registry.DeleteImage),
		},
		Scheduler: SchedulerHooks{
			Apply:         wrap1(outer.Scheduler.Apply, inner.Scheduler.Apply),
			Status:        wrap1(outer.Scheduler.Status, inner.Scheduler.Status),
			Delete:        wrap1e(outer.Scheduler.Delete, inner.Scheduler.Delete),
			StatusMany:    wrap1(outer.Scheduler.StatusMany, inner.Scheduler.StatusMany),
			CancelRollout: wrap2e(outer.Scheduler.CancelRollout, inner.Scheduler.CancelRollout),
			RunTask:       wrap1(outer.Scheduler.RunTask, inner.Scheduler.RunTask),
			GetTask:       wrap2(outer.Scheduler.GetTask, inner.Scheduler.GetTask),
			StopTask:      wrap2e(outer.Scheduler.StopTask, inner.Scheduler.StopTask),
			Stage:         wrap1(outer.Scheduler.Stage, inner.Scheduler.Stage),
			PromoteStage:  wrap1e(outer.Scheduler.PromoteStage, inner.Scheduler.PromoteStage),
			DiscardStage:  wrap1e(outer.Scheduler.DiscardStage, inner.Scheduler.DiscardStage),
		},
		Balancer: BalancerHooks{
			EnsureRoute:     wrap1(outer.Balancer.EnsureRoute, inner.Balancer.EnsureRoute),
			Health:          wrap1(outer.Balancer.Health, inner.Balancer.Health),
			DeleteRoute:     wrap1e(outer.Balancer.DeleteRoute, inner.Balancer.DeleteRoute),
			EnsureTargetSet: wrap2(outer.Balancer.EnsureTargetSet, inner.Balancer.EnsureTargetSet),
			SetWeights:      wrap2e(outer.Balancer.SetWeights, inner.Balancer.SetWeights),
			Weights:         wrap1(outer.Balancer.Weights, inner.Balancer.Weights),
			DeleteTargetSet: wrap2e(outer.Balancer.DeleteTargetSet, inner.Balancer.DeleteTargetSet),
		},
		Logs: LogsHooks{
			Write:  wrap1e(outer.Logs.Write, inner.Logs.Write),
			Read:   wrap2(outer.Logs.Read, inner.Logs.Read),
			Delete: wrap1e(outer.Logs.Delete, inner.Logs.Delete),
			Tail:   wrapTail(outer.Logs.Tail, inner.Logs.Tail),
		},
		Store: StoreHooks{
			Get:    wrap1(outer.Store.Get, inner.Store.Get),
			Put:    wrapPut(outer.Store.Put, inner.Store.Put),
			Delete: wrap2e(outer.Store.Delete, inner.Store.Delete),
			List:   wrap2(outer.Store.List, inner.Store.List),
		},
		Notifier: NotifierHooks{
			Notify: wrap1e(outer.Notifier.Notify, inner.Notifier.Notify),
		},
	}
}

type (
	hook1[A, R any]    = func(context.Context, A, func(context.Context, A) (R, error)) (R, error)
	hook1e[A any]      = func(context.Context, A, func(context.Context, A) error) error
	hook2[A, B, R any] = func(context.Context, A, B, func(context.Context, A, B) (R, error)) (R, error)
	hook2e[A, B any]   = func(context.Context, A, B, func(context.Context, A, B) error) error
)

func wrap1[A, R any](outer, inner hook1[A, R]) hook1[A, R] {
	if outer == nil || inner == nil {
		if outer == nil {
			return inner
		}
		return outer
	}
	return func(ctx context.Context, a A, next func(context.Context, A) (R, error)) (R, error) {
		return outer(ctx, a, func(ctx context.Context, a A) (R, error) { return inner(ctx, a, next) })
	}
}

func wrap1e[A any](outer, inner hook1e[A]) hook1e[A] {
	if outer == nil || inner == nil {
		if outer == nil {
			return inner
		}
		return outer
	}
	return func(ctx context.Context, a A, next func(context.Context, A) error) error {
		return outer(ctx, a, func(ctx context.Context, a A) error { return inner(ctx, a, next) })
	}
}

func wrap2[A, B, R any](outer, inner hook2[A, B, R]) hook2[A, B, R] {
	if outer == nil || inner == nil {
		if outer == nil {
			return inner
		}
		return outer
	}
	return func(ctx context.Context, a A, b B, next func(context.Context, A, B) (R, error)) (R, error) {
		return outer(ctx, a, b, func(ctx context.Context, a A, b B) (R, error) { return inner(ctx, a, b, next) })
	}
}

func wrap2e[A, B any](outer, inner hook2e[A, B]) hook2e[A, B] {
	if outer == nil || inner == nil {
		if outer == nil {
			return inner
		}
		return outer
	}
	return func(ctx context.Context, a A, b B, next func(context.Context, A, B) error) error {
		return outer(ctx, a, b, func(ctx context.Context, a A, b B) error { return inner(ctx, a, b, next) })
	}
}

type putHook = func(context.Context, string, []byte, int64, func(context.Context, string, []byte, int64) (int64, error)) (int64, error)

func wrapPut(outer, inner putHook) putHook {
	if outer == nil || inner == nil {
		if outer == nil {
			return inner
		}
		return outer
	}
	return func(ctx context.Context, key string, value []byte, ifVersion int64, next func(context.Context, string, []byte, int64) (int64, error)) (int64, error) {
		return outer(ctx, key, value, ifVersion, func(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
			return inner(ctx, key, value, ifVersion, next)
		})
	}
}

type tailHook = func(context.Context, providers.LogQuery, func(context.Context, providers.LogQuery) iter.Seq2[providers.LogEntry, error]) iter.Seq2[providers.LogEntry, error]

func wrapTail(outer, inner tailHook) tailHook {
	if outer == nil || inner == nil {
		if outer == nil {
			return inner
		}
		return outer
	}
	return func(ctx context.Context, q providers.LogQuery, next func(context.Context, providers.LogQuery) iter.Seq2[providers.LogEntry, error]) iter.Seq2[providers.LogEntry, error] {
		return outer(ctx, q, func(ctx context.Context, q providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
			return inner(ctx, q, next)
		})
	}
}

type callHook = func(context.Context, Call, func(context.Context) error) error

func wrapCall(outer, inner callHook) callHook {
	if outer == nil || inner == nil {
		if outer == nil {
			return inner
		}
		return outer
	}
	return func(ctx context.Context, c Call, next func(context.Context) error) error {
		return outer(ctx, c, func(ctx context.Context) error { return inner(ctx, c, next) })
	}
}
