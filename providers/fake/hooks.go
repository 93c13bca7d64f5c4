package fake

import (
	"context"
	"fmt"
	"iter"

	"github.com/convox-go/convox/providers"
)

// Call describes one provider call. Rack.Calls returns them in order and
// Hooks.Call receives each before it runs.
type Call struct {
	// Provider is "Registry", "Scheduler", "Balancer", "Logs", "Store" or
	// "Notifier".
	Provider string
	// Balancer is the name of the balancer a Balancer call was made on
	// (Balancer.Name), so a Call hook can tell a rack's balancers apart;
	// it is empty for the other providers. Typed Balancer hooks, Fail and
	// Throttle apply to the calls of every balancer of the rack.
	Balancer string
	// Method is the method name ("Apply", "Put", ...).
	Method string
	// Key is the call's principal argument: the app for scheduler and log
	// calls, the store key or prefix, the repository name or reference, the
	// route ID ("<app>-<process>" for EnsureRoute), the notification's app.
	// StatusMany joins its apps with commas; Logs.Write uses the first
	// entry's app.
	Key string
	// Args are the arguments after ctx, in order. Desired and RunSpec print
	// with secret values redacted, and a Store value is recorded as a
	// Value, which prints as its length only.
	Args []any
	// Err is what the call returned; nil while it is still running.
	Err error
}

// Name returns "Provider.Method", the name Rack.Fail and Rack.Throttle take.
func (c Call) Name() string { return c.Provider + "." + c.Method }

// String returns "Provider.Method(Key)", followed by " = error" when the
// call failed.
func (c Call) String() string {
	s := fmt.Sprintf("%s.%s(%s)", c.Provider, c.Method, c.Key)
	if c.Err != nil {
		s += " = " + c.Err.Error()
	}
	return s
}

// Value is a Store value as recorded in Call.Args. It prints as its length
// so that recorded calls never reveal document contents.
type Value []byte

// String returns "<N bytes>".
func (v Value) String() string { return fmt.Sprintf("<%d bytes>", len(v)) }

// Format implements fmt.Formatter so that every verb prints String.
func (v Value) Format(f fmt.State, verb rune) { fmt.Fprint(f, v.String()) }

// Hooks intercept provider calls. A nil hook leaves the method alone. A
// typed hook receives the method's arguments and next, the rack's own
// implementation; it may fail without calling next, call next and alter
// the result, call it twice, or block. Call intercepts every method: it
// receives a description of the call and next, which runs the typed hook
// (if any) and the implementation; the error it returns is the method's
// error, and when it is not nil the method's other results are zero.
//
// Order of one call: it is recorded (Rack.Calls), then Hooks.Call, then the
// typed hook, then the implementation, which first returns the context's
// error if ctx is done and then applies a scripted Fail or Throttle.
//
// A rack's hooks are layers (Options.Hooks, then each Rack.AddHooks): the
// Call hooks of every layer run first, the layer added last outermost, then
// the typed hooks of the method in the same order. A hook's next runs the
// next layer's hook, or the implementation after the first layer.
type Hooks struct {
	// Call intercepts every method of every provider of the rack.
	Call func(ctx context.Context, c Call, next func(context.Context) error) error

	// Registry, Scheduler, Balancer, Logs, Store and Notifier hold the
	// typed hooks of each provider's methods.
	Registry  RegistryHooks
	Scheduler SchedulerHooks
	Balancer  BalancerHooks
	Logs      LogsHooks
	Store     StoreHooks
	Notifier  NotifierHooks
}

// RegistryHooks intercept the Registry's methods.
type RegistryHooks struct {
	// EnsureRepository intercepts Registry.EnsureRepository.
	EnsureRepository func(ctx context.Context, name string, next func(context.Context, string) (providers.Repository, error)) (providers.Repository, error)
	// Resolve intercepts Registry.Resolve.
	Resolve func(ctx context.Context, ref string, next func(context.Context, string) (providers.Image, error)) (providers.Image, error)
	// Credentials intercepts Registry.Credentials.
	Credentials func(ctx context.Context, repo string, next func(context.Context, string) (providers.Credentials, error)) (providers.Credentials, error)
	// ListImages intercepts Registry.ListImages.
	ListImages func(ctx context.Context, repo string, next func(context.Context, string) ([]providers.Image, error)) ([]providers.Image, error)
	// DeleteImage intercepts Registry.DeleteImage.
	DeleteImage func(ctx context.Context, repo, digest string, next func(context.Context, string, string) error) error
}

// SchedulerHooks intercept the Scheduler's methods.
type SchedulerHooks struct {
	// Apply intercepts Scheduler.Apply.
	Apply func(ctx context.Context, d providers.Desired, next func(context.Context, providers.Desired) (providers.Rollout, error)) (providers.Rollout, error)
	// Status intercepts Scheduler.Status.
	Status func(ctx context.Context, app string, next func(context.Context, string) (providers.AppStatus, error)) (providers.AppStatus, error)
	// Delete intercepts Scheduler.Delete.
	Delete func(ctx context.Context, app string, next func(context.Context, string) error) error
	// StatusMany intercepts Scheduler.StatusMany.
	StatusMany func(ctx context.Context, apps []string, next func(context.Context, []string) (map[string]providers.AppStatus, error)) (map[string]providers.AppStatus, error)
	// CancelRollout intercepts Scheduler.CancelRollout.
	CancelRollout func(ctx context.Context, app, rolloutID string, next func(context.Context, string, string) error) error
	// RunTask intercepts Scheduler.RunTask.
	RunTask func(ctx context.Context, spec providers.RunSpec, next func(context.Context, providers.RunSpec) (providers.Task, error)) (providers.Task, error)
	// GetTask intercepts Scheduler.GetTask.
	GetTask func(ctx context.Context, app, id string, next func(context.Context, string, string) (providers.Task, error)) (providers.Task, error)
	// StopTask intercepts Scheduler.StopTask.
	StopTask func(ctx context.Context, app, id string, next func(context.Context, string, string) error) error
	// Stage intercepts Scheduler.Stage.
	Stage func(ctx context.Context, d providers.Desired, next func(context.Context, providers.Desired) (providers.Rollout, error)) (providers.Rollout, error)
	// PromoteStage intercepts Scheduler.PromoteStage.
	PromoteStage func(ctx context.Context, app string, next func(context.Context, string) error) error
	// DiscardStage intercepts Scheduler.DiscardStage.
	DiscardStage func(ctx context.Context, app string, next func(context.Context, string) error) error
}

// BalancerHooks intercept the methods of every Balancer of the rack; a
// hook that must tell them apart uses Hooks.Call and Call.Balancer.
type BalancerHooks struct {
	// EnsureRoute intercepts Balancer.EnsureRoute.
	EnsureRoute func(ctx context.Context, spec providers.RouteSpec, next func(context.Context, providers.RouteSpec) (providers.Route, error)) (providers.Route, error)
	// Health intercepts Balancer.Health.
	Health func(ctx context.Context, routeID string, next func(context.Context, string) ([]providers.TargetHealth, error)) ([]providers.TargetHealth, error)
	// DeleteRoute intercepts Balancer.DeleteRoute.
	DeleteRoute func(ctx context.Context, routeID string, next func(context.Context, string) error) error
	// EnsureTargetSet intercepts Balancer.EnsureTargetSet.
	EnsureTargetSet func(ctx context.Context, routeID, set string, next func(context.Context, string, string) (providers.Binding, error)) (providers.Binding, error)
	// SetWeights intercepts Balancer.SetWeights.
	SetWeights func(ctx context.Context, routeID string, weights map[string]int, next func(context.Context, string, map[string]int) error) error
	// Weights intercepts Balancer.Weights.
	Weights func(ctx context.Context, routeID string, next func(context.Context, string) (map[string]int, error)) (map[string]int, error)
	// DeleteTargetSet intercepts Balancer.DeleteTargetSet.
	DeleteTargetSet func(ctx context.Context, routeID, set string, next func(context.Context, string, string) error) error
}

// LogsHooks intercept the Logs' methods.
type LogsHooks struct {
	// Write intercepts Logs.Write.
	Write func(ctx context.Context, entries []providers.LogEntry, next func(context.Context, []providers.LogEntry) error) error
	// Read intercepts Logs.Read.
	Read func(ctx context.Context, q providers.LogQuery, token string, next func(context.Context, providers.LogQuery, string) (providers.LogPage, error)) (providers.LogPage, error)
	// Delete intercepts Logs.Delete.
	Delete func(ctx context.Context, app string, next func(context.Context, string) error) error
	// Tail intercepts Logs.Tail.
	Tail func(ctx context.Context, q providers.LogQuery, next func(context.Context, providers.LogQuery) iter.Seq2[providers.LogEntry, error]) iter.Seq2[providers.LogEntry, error]
}

// StoreHooks intercept the Store's methods.
type StoreHooks struct {
	// Get intercepts Store.Get.
	Get func(ctx context.Context, key string, next func(context.Context, string) (providers.Doc, error)) (providers.Doc, error)
	// Put intercepts Store.Put.
	Put func(ctx context.Context, key string, value []byte, ifVersion int64, next func(context.Context, string, []byte, int64) (int64, error)) (int64, error)
	// Delete intercepts Store.Delete.
	Delete func(ctx context.Context, key string, ifVersion int64, next func(context.Context, string, int64) error) error
	// List intercepts Store.List.
	List func(ctx context.Context, prefix string, opts providers.ListOptions, next func(context.Context, string, providers.ListOptions) (providers.DocPage, error)) (providers.DocPage, error)
}

// NotifierHooks intercept the Notifier's method.
type NotifierHooks struct {
	// Notify intercepts Notifier.Notify.
	Notify func(ctx context.Context, n providers.Notification, next func(context.Context, providers.Notification) error) error
}
