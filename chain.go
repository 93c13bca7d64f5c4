package convox

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/convox-go/convox/internal/limiter"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// The Client calls every provider of its rack through one middleware
// chain per provider, built once by New (see the package doc, # Retries
// and # Calls). For each call the chain
//
//  1. waits for the provider's rate limiter (Options.RateLimit and
//     Options.RateLimits), shared by every deploy of the client;
//  2. makes the call and accounts it (Client.Calls);
//  3. retries a temporary error (providers.IsTemporary) by its policy:
//     the store's calls and Registry.Resolve a bounded number of times
//     (retryAttempts); the calls of a deploy step (the step travels in
//     the ctx, set by Deployment.at) until ctx ends, backing off from
//     Options.PollInterval to Options.MaxPollInterval, each retry an
//     EventRetry; the reads of a following Logs iteration until ctx ends
//     (withFollowRetry); any other call not at all.
//
// No call site limits, accounts or retries a single provider call by
// hand. The loops that stay outside the chain by design each say why:
// compensation's attempts (compensate.go), which retry a whole sequence
// of calls on every error but ErrInvalid, and the polls that observe again
// and again whether or not a call failed (the waits of observe.go and
// compensate.go, a following Logs iteration, Run's task, Cancel's lease).

// Kinds of provider, as Client.Calls and Options.RateLimits name them.
const (
	KindScheduler = "scheduler"
	KindBalancer  = "balancer"
	KindRegistry  = "registry"
	KindLogs      = "logs"
	KindStore     = "store"
	KindNotifier  = "notifier"
)

// Bounded retries of single provider calls outside a deploy's wait (see
// the package doc, # Retries): Store calls and Registry.Resolve.
const (
	retryAttempts = 8
	retryInitial  = 100 * time.Millisecond
	retryMax      = 2 * time.Second
)

// retryKey is the ctx key of a retryScope.
type retryKey struct{}

// retryScope says that the calls made with a ctx retry their temporary
// errors until the ctx ends, backing off from initial to max; with step
// set, each retry is reported as an EventRetry of the deploy's app and
// release at that step.
type retryScope struct {
	initial, max time.Duration
	app, release string
	step         Step
}

// at returns ctx for the provider calls of the deploy at step: the chain
// retries their temporary errors and reports each retry as an EventRetry.
func (d *Deployment) at(ctx context.Context, step Step) context.Context {
	o := d.c.opts
	return context.WithValue(ctx, retryKey{}, retryScope{initial: o.PollInterval, max: o.MaxPollInterval, app: d.App, release: d.Release, step: step})
}

// withFollowRetry returns ctx for the reads of a following iteration: the
// chain retries their temporary errors, silently, until ctx ends.
func withFollowRetry(ctx context.Context, initial, max time.Duration) context.Context {
	return context.WithValue(ctx, retryKey{}, retryScope{initial: initial, max: max})
}

// op is a provider operation, an index into a chain's counters.
type op uint8

// The operations of every kind of provider, by method name.
const (
	opApply op = iota
	opStatus
	opStatusMany
	opDelete
	opStage
	opPromoteStage
	opDiscardStage
	opCancelRollout
	opRunTask
	opGetTask
	opStopTask
	opPlanChanges
	opDetectDrift
	opRolloutEvents
	opKeepSecret
	opEnsureRoute
	opHealth
	opDeleteRoute
	opEnsureTargetSet
	opSetWeights
	opWeights
	opDeleteTargetSet
	opWrite
	opRead
	opTail
	opSubscribe
	opSubscriptions
	opUnsubscribe
	opGet
	opPut
	opList
	opEnsureRepository
	opResolve
	opCredentials
	opListImages
	opDeleteImage
	opNotify
	numOps
)

var opNames = [numOps]string{
	opApply: "Apply", opStatus: "Status", opStatusMany: "StatusMany", opDelete: "Delete",
	opStage: "Stage", opPromoteStage: "PromoteStage", opDiscardStage: "DiscardStage",
	opCancelRollout: "CancelRollout", opRunTask: "RunTask", opGetTask: "GetTask", opStopTask: "StopTask",
	opPlanChanges: "PlanChanges", opDetectDrift: "DetectDrift", opRolloutEvents: "RolloutEvents",
	opKeepSecret: "KeepSecret", opEnsureRoute: "EnsureRoute", opHealth: "Health", opDeleteRoute: "DeleteRoute",
	opEnsureTargetSet: "EnsureTargetSet", opSetWeights: "SetWeights", opWeights: "Weights",
	opDeleteTargetSet: "DeleteTargetSet", opWrite: "Write", opRead: "Read", opTail: "Tail",
	opSubscribe: "Subscribe", opSubscriptions: "Subscriptions", opUnsubscribe: "Unsubscribe",
	opGet: "Get", opPut: "Put", opList: "List", opEnsureRepository: "EnsureRepository",
	opResolve: "Resolve", opCredentials: "Credentials", opListImages: "ListImages",
	opDeleteImage: "DeleteImage", opNotify: "Notify",
}

// opStats counts the calls of one operation of one provider.
type opStats struct {
	calls, errors, retries, nanos atomic.Int64
}

// chain runs the calls of one provider: the provider of kind and name in
// the rack (a notifier's name is its index in Rack.Notifiers).
type chain struct {
	c          *Client
	kind, name string
	lim        *limiter.Limiter // nil: no limit
	// bounded lists the operations retried up to retryAttempts times
	// whatever the ctx; the others retry only in a retryScope, and none
	// when noScope.
	bounded uint64
	noScope bool
	stats   [numOps]opStats
}

// newChain returns the chain of one provider of c's rack.
func (c *Client) newChain(kind, name string) *chain {
	ch := &chain{c: c, kind: kind, name: name}
	if r := c.rateOf(kind); r.PerSecond > 0 {
		ch.lim = limiter.New(r.PerSecond, r.Burst)
	}
	switch kind {
	case KindStore:
		ch.bounded = 1<<opGet | 1<<opPut | 1<<opDelete | 1<<opList
	case KindRegistry:
		ch.bounded = 1 << opResolve
	case KindNotifier:
		ch.noScope = true
	}
	c.chains = append(c.chains, ch)
	return ch
}

// do runs fn, one call of operation o, through the chain. A nil chain (a
// rack only checked, never called) runs fn as it is.
func (ch *chain) do(ctx context.Context, o op, fn func() error) error {
	return ch.doAfter(ctx, o, nil, fn)
}

// doAfter is do that runs prep, when not nil, once: after the first wait
// for the rate limit, before the call and outside its time.
func (ch *chain) doAfter(ctx context.Context, o op, prep func(), fn func() error) error {
	if ch == nil {
		if prep != nil {
			prep()
		}
		return fn()
	}
	st := &ch.stats[o]
	var scope retryScope
	var b poll.Backoff
	bounded := ch.bounded&(1<<o) != 0
	retry := bounded
	if bounded {
		b = poll.Backoff{Initial: retryInitial, Max: retryMax}
	} else if !ch.noScope {
		scope, retry = ctx.Value(retryKey{}).(retryScope)
		b = poll.Backoff{Initial: scope.initial, Max: scope.max}
	}
	for attempt := 1; ; attempt++ {
		if ch.lim != nil {
			if err := ch.lim.Wait(ctx); err != nil {
				return err
			}
		}
		if prep != nil && attempt == 1 {
			prep()
		}
		start := time.Now()
		err := fn()
		st.nanos.Add(int64(time.Since(start)))
		st.calls.Add(1)
		if attempt > 1 {
			st.retries.Add(1)
		}
		if err == nil {
			return nil
		}
		st.errors.Add(1)
		if !retry || !providers.IsTemporary(err) || ctx.Err() != nil || bounded && attempt >= retryAttempts {
			return err
		}
		if scope.step != "" {
			ch.c.emit(Event{Type: EventRetry, App: scope.app, Release: scope.release, Step: scope.step, Message: "retrying", Reason: err.Error()})
		}
		if werr := b.Wait(ctx); werr != nil {
			return err
		}
	}
}

// call runs fn, one call of operation o, through ch and returns its result.
func call[T any](ctx context.Context, ch *chain, o op, fn func() (T, error)) (T, error) {
	var v T
	err := ch.do(ctx, o, func() error {
		var err error
		v, err = fn()
		return err
	})
	return v, err
}
