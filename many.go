package convox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/convox-go/convox/providers"
)

// statusBatcher coalesces the Status calls of concurrent waits on one
// scheduler into StatusMany calls: the first caller of a window becomes
// the leader, waits the window, and observes every app asked for meanwhile
// in one batch.
type statusBatcher struct {
	mu      sync.Mutex
	leading bool
	pending map[string][]chan statusResult
}

type statusResult struct {
	st  providers.AppStatus
	err error
}

// status observes one app, through BatchStatus when the scheduler has it
// and other deploys of the client are waiting too.
func (c *Client) status(ctx context.Context, sel selection, app string) (providers.AppStatus, error) {
	bs, ok := sel.sched.batchStatus()
	c.mu.Lock()
	concurrent := len(c.inflight) > 1
	c.mu.Unlock()
	if !ok || !concurrent {
		// Nothing to batch with: observe at once.
		return sel.sched.Status(ctx, app)
	}
	c.mu.Lock()
	b := c.batchers[sel.spec.Scheduler]
	if b == nil {
		b = &statusBatcher{pending: map[string][]chan statusResult{}}
		c.batchers[sel.spec.Scheduler] = b
	}
	c.mu.Unlock()

	ch := make(chan statusResult, 1)
	b.mu.Lock()
	b.pending[app] = append(b.pending[app], ch)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()
	if lead {
		c.flushStatus(ctx, sel, bs, b)
	}
	select {
	case r := <-ch:
		return r.st, r.err
	case <-ctx.Done():
		return providers.AppStatus{}, ctx.Err()
	}
}

func (c *Client) flushStatus(ctx context.Context, sel selection, bs providers.BatchStatus, b *statusBatcher) {
	// The leader observes for every waiter: its own cancellation must not fail theirs.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var batch map[string][]chan statusResult
	take := func() {
		t := time.NewTimer(c.opts.BatchWindow)
		<-t.C
		b.mu.Lock()
		batch = b.pending
		b.pending = map[string][]chan statusResult{}
		b.leading = false
		b.mu.Unlock()
	}
	// The scheduler's chain waits for the rate limit before it calls:
	// taking the batch after that wait lets every request that arrives
	// meanwhile join it, so under load, batches grow by themselves.
	var m map[string]providers.AppStatus
	err := sel.sched.ch.doAfter(fctx, opStatusMany, take, func() error {
		var err error
		m, err = bs.StatusMany(fctx, slices.Sorted(maps.Keys(batch)))
		return err
	})
	if batch == nil {
		take() // the rate limit gave up: the batch gets its error
	}
	for app, chans := range batch {
		r := statusResult{err: err}
		if err == nil {
			st, ok := m[app]
			if ok {
				r.st = st
			} else {
				r.err = fmt.Errorf("status of %q: %w", app, providers.ErrNotFound)
			}
		}
		for _, ch := range chans {
			ch <- r
		}
	}
}

// AppDeploy is one app's part of DeployMany.
type AppDeploy struct {
	App     string
	Spec    ReleaseSpec
	Options *DeployOptions
}

// GroupOptions tune DeployMany. Nil or zero fields take defaults.
type GroupOptions struct {
	// Concurrency bounds the deploys running at once (default 4).
	Concurrency int
	// AllOrNothing rolls back every app that deployed successfully when
	// any app fails, and starts no further deploys after a failure.
	AllOrNothing bool
}

// GroupResult is one app's outcome in DeployMany.
type GroupResult struct {
	App string
	// Release is the deployed release when the deploy succeeded.
	Release *Release
	// Err is the deploy's error, a *DeployError; nil on success.
	Err error
	// Skipped is true when the deploy never started (all-or-nothing after a failure).
	Skipped bool
	// RolledBack is the rollback release when all-or-nothing undid this app.
	RolledBack *Release
}

// DeployMany deploys several apps concurrently, each as Deploy does. It
// returns one result per app, in the order given, and an error joining
// the failures (nil when every app deployed, and with AllOrNothing every
// undo succeeded). With AllOrNothing, a failure stops new deploys from
// starting and the apps that succeeded are rolled back to the release
// that was active before; apps that had none are left as deployed and
// reported in the error.
func (c *Client) DeployMany(ctx context.Context, deploys []AppDeploy, opts *GroupOptions) ([]GroupResult, error) {
	var o GroupOptions
	if opts != nil {
		o = *opts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if err := c.precheckGroup(ctx, deploys); err != nil {
		return nil, err
	}
	results := make([]GroupResult, len(deploys))
	previous := make([]string, len(deploys))
	var failed bool
	var mu sync.Mutex
	g := new(errgroup.Group)
	g.SetLimit(o.Concurrency)
	for i, d := range deploys {
		results[i].App = d.App
		g.Go(func() error {
			mu.Lock()
			skip := o.AllOrNothing && failed
			mu.Unlock()
			if skip {
				results[i].Skipped = true
				return nil
			}
			if app, err := c.App(d.App).Get(ctx); err == nil {
				previous[i] = app.Active
			}
			rel, err := c.App(d.App).Deploy(ctx, d.Spec, d.Options)
			results[i].Release, results[i].Err = rel, err
			if err != nil {
				mu.Lock()
				failed = true
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()

	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.App, r.Err))
		}
	}
	if o.AllOrNothing && failed {
		errs = append(errs, c.undo(ctx, results, previous, o.Concurrency)...)
	}
	if len(errs) == 0 {
		return results, nil
	}
	return results, &Error{Op: "DeployMany", Err: errors.Join(errs...)}
}

// undo rolls the apps of a failed all-or-nothing group that deployed back
// to previous[i], the release each had active before, at most concurrency
// at a time, and returns what could not be undone.
func (c *Client) undo(ctx context.Context, results []GroupResult, previous []string, concurrency int) []error {
	var errs []error
	u := new(errgroup.Group)
	u.SetLimit(concurrency)
	var umu sync.Mutex
	for i := range results {
		if results[i].Err != nil || results[i].Skipped || results[i].Release == nil {
			continue
		}
		if previous[i] == "" {
			umu.Lock()
			errs = append(errs, fmt.Errorf("%s: %s was its first release; there is nothing to roll back to", results[i].App, results[i].Release.ID))
			umu.Unlock()
			continue
		}
		u.Go(func() error {
			rb, err := c.App(results[i].App).Rollback(ctx, ToRelease(previous[i]), nil)
			umu.Lock()
			defer umu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: undo: %w", results[i].App, err))
				return nil
			}
			results[i].RolledBack = rb
			return nil
		})
	}
	_ = u.Wait()
	return errs
}

// precheckGroup refuses, before any change, a group that lists an app twice
// or holds a deploy that precheck refuses.
func (c *Client) precheckGroup(ctx context.Context, deploys []AppDeploy) error {
	seen := map[string]bool{}
	for _, d := range deploys {
		if err := c.precheck(ctx, d.App, d.Spec); err != nil {
			return deployErr(d.App, "", StepPrepare, err)
		}
		if seen[d.App] {
			return deployErr(d.App, "", StepPrepare, providers.Invalidf("app %q is listed twice", d.App))
		}
		seen[d.App] = true
	}
	return nil
}
