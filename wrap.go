package convox

import (
	"context"
	"iter"
	"time"

	"github.com/convox-go/convox/providers"
)

// The providers as the Client calls them: each wraps one provider and
// makes every call through the provider's chain (chain.go). A wrapper
// implements an optional capability if and only if the provider does, so
// a capability check (selection.check, a type assertion) gives the same
// answer on either; a scheduler, whose optional capabilities are too many
// to combine, is the exception: schedulerCalls hands out each capability
// through a method that checks the scheduler itself.

// wrapBalancer returns b with every call through ch. It implements
// providers.WeightShifter if and only if b does, the one optional
// capability of a balancer.
func wrapBalancer(ch *chain, b providers.Balancer) providers.Balancer {
	w := &balancerCalls{ch: ch, b: b}
	if ws, ok := b.(providers.WeightShifter); ok {
		return &weightedBalancerCalls{balancerCalls: w, ws: ws}
	}
	return w
}

// balancerCalls is a balancer whose calls go through a chain.
type balancerCalls struct {
	ch *chain
	b  providers.Balancer
}

func (w *balancerCalls) EnsureRoute(ctx context.Context, spec providers.RouteSpec) (providers.Route, error) {
	return call(ctx, w.ch, opEnsureRoute, func() (providers.Route, error) { return w.b.EnsureRoute(ctx, spec) })
}

func (w *balancerCalls) Health(ctx context.Context, routeID string) ([]providers.TargetHealth, error) {
	return call(ctx, w.ch, opHealth, func() ([]providers.TargetHealth, error) { return w.b.Health(ctx, routeID) })
}

func (w *balancerCalls) DeleteRoute(ctx context.Context, routeID string) error {
	return w.ch.do(ctx, opDeleteRoute, func() error { return w.b.DeleteRoute(ctx, routeID) })
}

// weightedBalancerCalls is a balancerCalls of a WeightShifter.
type weightedBalancerCalls struct {
	*balancerCalls
	ws providers.WeightShifter
}

func (w *weightedBalancerCalls) EnsureTargetSet(ctx context.Context, routeID, set string) (providers.Binding, error) {
	return call(ctx, w.ch, opEnsureTargetSet, func() (providers.Binding, error) { return w.ws.EnsureTargetSet(ctx, routeID, set) })
}

func (w *weightedBalancerCalls) SetWeights(ctx context.Context, routeID string, weights map[string]int) error {
	return w.ch.do(ctx, opSetWeights, func() error { return w.ws.SetWeights(ctx, routeID, weights) })
}

func (w *weightedBalancerCalls) Weights(ctx context.Context, routeID string) (map[string]int, error) {
	return call(ctx, w.ch, opWeights, func() (map[string]int, error) { return w.ws.Weights(ctx, routeID) })
}

func (w *weightedBalancerCalls) DeleteTargetSet(ctx context.Context, routeID, set string) error {
	return w.ch.do(ctx, opDeleteTargetSet, func() error { return w.ws.DeleteTargetSet(ctx, routeID, set) })
}

// schedulerCalls runs the calls the Client makes to a scheduler through
// its chain. Its methods are the Scheduler's; each optional capability the
// Client calls is handed out by a method (stager, canceler, taskRunner,
// ...) that reports whether the scheduler has it, with its calls through
// the chain. The selection keeps the scheduler itself for capability
// checks and for the two capabilities that describe the scheduler rather
// than call it (providers.Bounded, providers.BindingAcceptor).
type schedulerCalls struct {
	ch *chain
	s  providers.Scheduler
}

func (w schedulerCalls) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return call(ctx, w.ch, opApply, func() (providers.Rollout, error) { return w.s.Apply(ctx, d) })
}

func (w schedulerCalls) Status(ctx context.Context, app string) (providers.AppStatus, error) {
	return call(ctx, w.ch, opStatus, func() (providers.AppStatus, error) { return w.s.Status(ctx, app) })
}

func (w schedulerCalls) Delete(ctx context.Context, app string) error {
	return w.ch.do(ctx, opDelete, func() error { return w.s.Delete(ctx, app) })
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
	ch *chain
	st providers.Stager
}

func (w stagerCalls) Stage(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return call(ctx, w.ch, opStage, func() (providers.Rollout, error) { return w.st.Stage(ctx, d) })
}

func (w stagerCalls) PromoteStage(ctx context.Context, app string) error {
	return w.ch.do(ctx, opPromoteStage, func() error { return w.st.PromoteStage(ctx, app) })
}

func (w stagerCalls) DiscardStage(ctx context.Context, app string) error {
	return w.ch.do(ctx, opDiscardStage, func() error { return w.st.DiscardStage(ctx, app) })
}

// batchStatus reports whether the scheduler implements BatchStatus; the
// status batcher calls it with statusMany.
func (w schedulerCalls) batchStatus() (providers.BatchStatus, bool) {
	bs, ok := w.s.(providers.BatchStatus)
	return bs, ok
}

// canceler returns the scheduler's Canceler with its calls through the chain.
func (w schedulerCalls) canceler() (providers.Canceler, bool) {
	c, ok := w.s.(providers.Canceler)
	if !ok {
		return nil, false
	}
	return cancelerCalls{ch: w.ch, c: c}, true
}

type cancelerCalls struct {
	ch *chain
	c  providers.Canceler
}

func (w cancelerCalls) CancelRollout(ctx context.Context, app, rolloutID string) error {
	return w.ch.do(ctx, opCancelRollout, func() error { return w.c.CancelRollout(ctx, app, rolloutID) })
}

// taskRunner returns the scheduler's TaskRunner with its calls through the chain.
func (w schedulerCalls) taskRunner() (providers.TaskRunner, bool) {
	r, ok := w.s.(providers.TaskRunner)
	if !ok {
		return nil, false
	}
	return taskRunnerCalls{ch: w.ch, r: r}, true
}

type taskRunnerCalls struct {
	ch *chain
	r  providers.TaskRunner
}

func (w taskRunnerCalls) RunTask(ctx context.Context, spec providers.RunSpec) (providers.Task, error) {
	return call(ctx, w.ch, opRunTask, func() (providers.Task, error) { return w.r.RunTask(ctx, spec) })
}

func (w taskRunnerCalls) GetTask(ctx context.Context, app, id string) (providers.Task, error) {
	return call(ctx, w.ch, opGetTask, func() (providers.Task, error) { return w.r.GetTask(ctx, app, id) })
}

func (w taskRunnerCalls) StopTask(ctx context.Context, app, id string) error {
	return w.ch.do(ctx, opStopTask, func() error { return w.r.StopTask(ctx, app, id) })
}

// changePlanner returns the scheduler's ChangePlanner with its calls through the chain.
func (w schedulerCalls) changePlanner() (providers.ChangePlanner, bool) {
	p, ok := w.s.(providers.ChangePlanner)
	if !ok {
		return nil, false
	}
	return changePlannerCalls{ch: w.ch, p: p}, true
}

type changePlannerCalls struct {
	ch *chain
	p  providers.ChangePlanner
}

func (w changePlannerCalls) PlanChanges(ctx context.Context, d providers.Desired) ([]providers.ResourceChange, error) {
	return call(ctx, w.ch, opPlanChanges, func() ([]providers.ResourceChange, error) { return w.p.PlanChanges(ctx, d) })
}

// driftDetector returns the scheduler's DriftDetector with its calls through the chain.
func (w schedulerCalls) driftDetector() (providers.DriftDetector, bool) {
	d, ok := w.s.(providers.DriftDetector)
	if !ok {
		return nil, false
	}
	return driftDetectorCalls{ch: w.ch, d: d}, true
}

type driftDetectorCalls struct {
	ch *chain
	d  providers.DriftDetector
}

func (w driftDetectorCalls) DetectDrift(ctx context.Context, app string) ([]providers.ResourceDrift, error) {
	return call(ctx, w.ch, opDetectDrift, func() ([]providers.ResourceDrift, error) { return w.d.DetectDrift(ctx, app) })
}

// eventReporter returns the scheduler's EventReporter with its calls through the chain.
func (w schedulerCalls) eventReporter() (providers.EventReporter, bool) {
	r, ok := w.s.(providers.EventReporter)
	if !ok {
		return nil, false
	}
	return eventReporterCalls{ch: w.ch, r: r}, true
}

type eventReporterCalls struct {
	ch *chain
	r  providers.EventReporter
}

func (w eventReporterCalls) RolloutEvents(ctx context.Context, app string, since time.Time) ([]providers.PlatformEvent, error) {
	return call(ctx, w.ch, opRolloutEvents, func() ([]providers.PlatformEvent, error) { return w.r.RolloutEvents(ctx, app, since) })
}

// secretKeeper returns the scheduler's SecretKeeper with its calls through the chain.
func (w schedulerCalls) secretKeeper() (providers.SecretKeeper, bool) {
	k, ok := w.s.(providers.SecretKeeper)
	if !ok {
		return nil, false
	}
	return secretKeeperCalls{ch: w.ch, k: k}, true
}

type secretKeeperCalls struct {
	ch *chain
	k  providers.SecretKeeper
}

func (w secretKeeperCalls) KeepSecret(ctx context.Context, app, name, value string) (string, error) {
	return call(ctx, w.ch, opKeepSecret, func() (string, error) { return w.k.KeepSecret(ctx, app, name, value) })
}

// storeCalls is the rack's Store as the Client uses it: every call
// through the store's chain, which retries a temporary error a bounded
// number of times (retryAttempts: the store holds the truth about what is
// active, so a throttled write must not abandon a workflow midway). A conditional Put or Delete is retried as it was asked, with
// the same version: when an attempt that reported a temporary error did
// write, the retry reports ErrConflict, which the caller handles as any
// concurrent write (updateApp and updateRelease read again). The Store
// interface has no optional capabilities, so the wrapper hides none.
type storeCalls struct {
	ch *chain
	s  providers.Store
}

func (w storeCalls) Get(ctx context.Context, key string) (providers.Doc, error) {
	return call(ctx, w.ch, opGet, func() (providers.Doc, error) { return w.s.Get(ctx, key) })
}

func (w storeCalls) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	return call(ctx, w.ch, opPut, func() (int64, error) { return w.s.Put(ctx, key, value, ifVersion) })
}

func (w storeCalls) Delete(ctx context.Context, key string, ifVersion int64) error {
	return w.ch.do(ctx, opDelete, func() error { return w.s.Delete(ctx, key, ifVersion) })
}

func (w storeCalls) List(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	return call(ctx, w.ch, opList, func() (providers.DocPage, error) { return w.s.List(ctx, prefix, opts) })
}

// wrapRegistry returns r with every call through ch, which retries a
// temporary error of Resolve a bounded number of times, as the store's
// calls are. It implements providers.ImageLister and providers.ImageDeleter
// if and only if r does.
func wrapRegistry(ch *chain, r providers.Registry) providers.Registry {
	w := registryCalls{ch: ch, r: r}
	l, lister := r.(providers.ImageLister)
	d, deleter := r.(providers.ImageDeleter)
	switch {
	case lister && deleter:
		return struct {
			registryCalls
			imageListerCalls
			imageDeleterCalls
		}{w, imageListerCalls{ch, l}, imageDeleterCalls{ch, d}}
	case lister:
		return struct {
			registryCalls
			imageListerCalls
		}{w, imageListerCalls{ch, l}}
	case deleter:
		return struct {
			registryCalls
			imageDeleterCalls
		}{w, imageDeleterCalls{ch, d}}
	}
	return w
}

// registryCalls is a registry whose calls go through a chain.
type registryCalls struct {
	ch *chain
	r  providers.Registry
}

func (w registryCalls) EnsureRepository(ctx context.Context, name string) (providers.Repository, error) {
	return call(ctx, w.ch, opEnsureRepository, func() (providers.Repository, error) { return w.r.EnsureRepository(ctx, name) })
}

func (w registryCalls) Resolve(ctx context.Context, ref string) (providers.Image, error) {
	return call(ctx, w.ch, opResolve, func() (providers.Image, error) { return w.r.Resolve(ctx, ref) })
}

func (w registryCalls) Credentials(ctx context.Context, repo string) (providers.Credentials, error) {
	return call(ctx, w.ch, opCredentials, func() (providers.Credentials, error) { return w.r.Credentials(ctx, repo) })
}

type imageListerCalls struct {
	lch *chain
	l   providers.ImageLister
}

func (w imageListerCalls) ListImages(ctx context.Context, repo string) ([]providers.Image, error) {
	return call(ctx, w.lch, opListImages, func() ([]providers.Image, error) { return w.l.ListImages(ctx, repo) })
}

type imageDeleterCalls struct {
	dch *chain
	d   providers.ImageDeleter
}

func (w imageDeleterCalls) DeleteImage(ctx context.Context, repo, digest string) error {
	return w.dch.do(ctx, opDeleteImage, func() error { return w.d.DeleteImage(ctx, repo, digest) })
}

// wrapLogs returns l with every call through ch. It implements
// providers.LogTailer and providers.LogSubscriber if and only if l does.
func wrapLogs(ch *chain, l providers.Logs) providers.Logs {
	w := logsCalls{ch: ch, l: l}
	t, tailer := l.(providers.LogTailer)
	s, subscriber := l.(providers.LogSubscriber)
	switch {
	case tailer && subscriber:
		return struct {
			logsCalls
			logTailerCalls
			logSubscriberCalls
		}{w, logTailerCalls{ch, t}, logSubscriberCalls{ch, s}}
	case tailer:
		return struct {
			logsCalls
			logTailerCalls
		}{w, logTailerCalls{ch, t}}
	case subscriber:
		return struct {
			logsCalls
			logSubscriberCalls
		}{w, logSubscriberCalls{ch, s}}
	}
	return w
}

// logsCalls is a logs backend whose calls go through a chain.
type logsCalls struct {
	ch *chain
	l  providers.Logs
}

func (w logsCalls) Write(ctx context.Context, entries []providers.LogEntry) error {
	return w.ch.do(ctx, opWrite, func() error { return w.l.Write(ctx, entries) })
}

func (w logsCalls) Read(ctx context.Context, q providers.LogQuery, token string) (providers.LogPage, error) {
	return call(ctx, w.ch, opRead, func() (providers.LogPage, error) { return w.l.Read(ctx, q, token) })
}

func (w logsCalls) Delete(ctx context.Context, app string) error {
	return w.ch.do(ctx, opDelete, func() error { return w.l.Delete(ctx, app) })
}

type logTailerCalls struct {
	tch *chain
	t   providers.LogTailer
}

// Tail counts one call per iteration of the tail, from its start to its
// end, an error if it yields one. It is never retried, whatever ctx says:
// a tail that fails has yielded its lines and its error already.
func (w logTailerCalls) Tail(ctx context.Context, q providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
	return func(yield func(providers.LogEntry, error) bool) {
		once := context.WithValue(ctx, retryKey{}, nil)
		called := false
		err := w.tch.do(once, opTail, func() error {
			called = true
			for e, err := range w.t.Tail(ctx, q) {
				more := yield(e, err)
				if err != nil {
					return err
				}
				if !more {
					return nil
				}
			}
			return nil
		})
		if err != nil && !called {
			yield(providers.LogEntry{}, err) // the rate limit's wait ended with ctx
		}
	}
}

type logSubscriberCalls struct {
	sch *chain
	s   providers.LogSubscriber
}

func (w logSubscriberCalls) Subscribe(ctx context.Context, app string, s providers.Subscription) (providers.Subscription, error) {
	return call(ctx, w.sch, opSubscribe, func() (providers.Subscription, error) { return w.s.Subscribe(ctx, app, s) })
}

func (w logSubscriberCalls) Subscriptions(ctx context.Context, app string) ([]providers.Subscription, error) {
	return call(ctx, w.sch, opSubscriptions, func() ([]providers.Subscription, error) { return w.s.Subscriptions(ctx, app) })
}

func (w logSubscriberCalls) Unsubscribe(ctx context.Context, app, name string) error {
	return w.sch.do(ctx, opUnsubscribe, func() error { return w.s.Unsubscribe(ctx, app, name) })
}

// notifierCalls is a notifier whose calls go through a chain. A
// notification is never retried: a notifier that failed may have
// delivered it (a webhook that timed out after posting), and a failed
// notification never fails the deploy it reports (EventNotifyFailed).
type notifierCalls struct {
	ch *chain
	n  providers.Notifier
}

func (w notifierCalls) Notify(ctx context.Context, n providers.Notification) error {
	return w.ch.do(ctx, opNotify, func() error { return w.n.Notify(ctx, n) })
}
