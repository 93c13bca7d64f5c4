package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// The many part deploys 1,000 apps at once (DeployMany with a concurrency
// of 1,000) on one fake rack through one client, whose shared limiter
// (Options.RateLimit and RateBurst, one token bucket per provider shared
// by every deploy) paces the calls its waits make: Scheduler.Status and
// StatusMany (status observations, batched across apps) and
// Balancer.Health (one per routed process per observation).
//
// A Hooks.Call hook of the fake rack simulates the account's rate limit on
// those same API calls, as a cloud account has one per service: a token
// bucket per provider, shared by every app, that refuses a call over the
// limit with an error wrapping providers.ErrThrottled. The part counts
// those errors, and compares the total time with the lower bound the
// account limit sets for the limited calls that were made: (calls - burst)
// / rate for the busiest provider. The other calls (creating releases,
// Apply, EnsureRoute, the store) are outside both limits and are listed
// with their counts.
//
// Each app is a routed web process and a worker; the client polls with
// its default intervals (1s backing off to 10s). A control run of 200 apps
// with the client's limiter turned off shows that the simulated limit
// does refuse calls when nothing paces them.

// Shape of the many part.
const (
	manyApps      = 1000
	manyAppsShort = 100
	// The simulated account limit, per provider, and the client's shared
	// limiter set slightly below it.
	manyAccountRate  = 100.0
	manyAccountBurst = 100
	manyClientRate   = 95.0
	manyClientBurst  = 95
	// manyControlApps is the size of the control run, made without the
	// client's limiter (in both modes: it must exceed the account limit).
	manyControlApps = 200
)

// limitedMethods are the calls the simulated account limit applies to:
// those the client's waits make under its shared limiter.
var limitedMethods = map[string]bool{
	"Scheduler.Status": true, "Scheduler.StatusMany": true, "Balancer.Health": true,
}

// bucket is a token bucket that refuses, rather than delays, a call over
// its limit, as a rate-limited API does.
type bucket struct {
	rate, burst float64

	mu       sync.Mutex
	tokens   float64
	last     time.Time
	admitted int
	refused  int
}

func newBucket(rate float64, burst int) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take reports whether a call at now is within the limit, and counts it.
func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		b.refused++
		return false
	}
	b.tokens--
	b.admitted++
	return true
}

// account simulates an account's rate limits: one bucket per provider
// (per balancer for balancers) for the limited methods. It counts every
// call of the rack by method.
type account struct {
	rate  float64
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	calls     map[string]int // every call, by "Provider.Method"
	throttled map[string]int // refused calls, by "Provider.Method"
}

func newAccount(rate float64, burst int) *account {
	return &account{rate: rate, burst: burst, buckets: map[string]*bucket{}, calls: map[string]int{}, throttled: map[string]int{}}
}

// hook is the rack's Hooks.Call.
func (a *account) hook(ctx context.Context, c fake.Call, next func(context.Context) error) error {
	name := c.Name()
	a.mu.Lock()
	a.calls[name]++
	var b *bucket
	if limitedMethods[name] {
		key := c.Provider
		if c.Balancer != "" {
			key += " " + c.Balancer
		}
		b = a.buckets[key]
		if b == nil {
			b = newBucket(a.rate, a.burst)
			a.buckets[key] = b
		}
	}
	a.mu.Unlock()
	if b != nil && !b.take(time.Now()) {
		a.mu.Lock()
		a.throttled[name]++
		a.mu.Unlock()
		return fmt.Errorf("%s: account rate limit of %.0f calls/s exceeded: %w", name, a.rate, providers.ErrThrottled)
	}
	return next(ctx)
}

// manyResult is the outcome of one DeployMany under the simulated limit.
type manyResult struct {
	apps     int
	elapsed  time.Duration
	acct     *account
	failed   int
	firstErr error
}

// throttled returns the calls the account limit refused.
func (r *manyResult) throttled() int64 {
	var n int64
	for _, c := range r.acct.throttled {
		n += int64(c)
	}
	return n
}

// deployMany deploys apps new apps at once on a new fake rack under the
// simulated account limit, through a client with the given shared limit
// (a negative rate turns the client's limiter off).
func deployMany(ctx context.Context, apps int, clientRate float64, clientBurst int) (*manyResult, error) {
	acct := newAccount(manyAccountRate, manyAccountBurst)
	rack := fake.New(&fake.Options{Hooks: fake.Hooks{Call: acct.hook}})
	c, err := convox.New(fakeRackOf(rack), &convox.Options{RateLimit: clientRate, RateBurst: clientBurst})
	if err != nil {
		return nil, err
	}
	rack.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/a"}})
	var deploys []convox.AppDeploy
	for i := range apps {
		name := fmt.Sprintf("app%04d", i)
		if _, err := c.CreateApp(ctx, name, nil); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		deploys = append(deploys, convox.AppDeploy{App: name, Spec: webSpec("web:v1")})
	}
	acct.mu.Lock()
	clear(acct.calls)
	acct.mu.Unlock()

	start := time.Now()
	results, err := c.DeployMany(ctx, deploys, &convox.GroupOptions{Concurrency: apps})
	res := &manyResult{apps: apps, elapsed: time.Since(start), acct: acct}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, r := range results {
		if r.Err != nil {
			res.failed++
			if res.firstErr == nil {
				res.firstErr = r.Err
			}
		}
	}
	if err != nil && res.failed == 0 {
		return nil, err
	}
	return res, nil
}

func runMany(ctx context.Context, cfg config) error {
	apps := manyApps
	if cfg.short {
		apps = manyAppsShort
	}
	res, err := deployMany(ctx, apps, manyClientRate, manyClientBurst)
	if err != nil {
		return err
	}
	acct := res.acct
	acct.mu.Lock()
	defer acct.mu.Unlock()
	fmt.Fprintf(cfg.out, "setup: %d apps (web x2 routed + worker), DeployMany concurrency %d, client PollInterval 1s..10s\n", apps, apps)
	fmt.Fprintf(cfg.out, "account limit: %.0f calls/s, burst %d, per provider, on %s; client shared limiter: %.0f calls/s, burst %d\n",
		manyAccountRate, manyAccountBurst, strings.Join(slices.Sorted(maps.Keys(limitedMethods)), ", "), manyClientRate, manyClientBurst)
	var bound time.Duration
	for _, key := range slices.Sorted(maps.Keys(acct.buckets)) {
		b := acct.buckets[key]
		lb := time.Duration(float64(max(b.admitted-manyAccountBurst, 0)) / manyAccountRate * float64(time.Second))
		bound = max(bound, lb)
		fmt.Fprintf(cfg.out, "  %-14s %6d limited calls admitted, %d refused; lower bound %s\n", key+":", b.admitted, b.refused, lb.Round(10*time.Millisecond))
	}
	var limited, outside []string
	for _, name := range slices.Sorted(maps.Keys(acct.calls)) {
		if limitedMethods[name] {
			limited = append(limited, fmt.Sprintf("%s %d", name, acct.calls[name]))
		} else {
			outside = append(outside, fmt.Sprintf("%s %d", name, acct.calls[name]))
		}
	}
	fmt.Fprintf(cfg.out, "limited calls by method: %s\n", strings.Join(limited, ", "))
	fmt.Fprintf(cfg.out, "calls outside both limits: %s\n", strings.Join(outside, ", "))
	fmt.Fprintf(cfg.out, "deploys: %d succeeded, %d failed", apps-res.failed, res.failed)
	if res.firstErr != nil {
		fmt.Fprintf(cfg.out, " (first: %v)", res.firstErr)
	}
	fmt.Fprintln(cfg.out)
	if len(acct.throttled) > 0 {
		var by []string
		for _, name := range slices.Sorted(maps.Keys(acct.throttled)) {
			by = append(by, fmt.Sprintf("%s %d", name, acct.throttled[name]))
		}
		fmt.Fprintf(cfg.out, "throttling errors by method: %s\n", strings.Join(by, ", "))
	}
	fmt.Fprintf(cfg.out, "total time %s; the account limit's lower bound for these calls %s\n", res.elapsed.Round(10*time.Millisecond), bound.Round(10*time.Millisecond))
	if bound > 0 {
		fmt.Fprintf(cfg.out, "ratio total time / lower bound = %.2f\n", float64(res.elapsed)/float64(bound))
	}

	// A control run without the client's limiter shows that the simulated
	// account limit bites.
	control, err := deployMany(ctx, manyControlApps, -1, 0)
	if err != nil {
		return fmt.Errorf("control run: %w", err)
	}
	fmt.Fprintf(cfg.out, "control, client limiter off: %d apps, %d throttling errors, %d deploys failed, total time %s\n",
		control.apps, control.throttled(), control.failed, control.elapsed.Round(10*time.Millisecond))

	goalCount(cfg.out, "throttling errors seen", res.throttled(), 0)
	goalCount(cfg.out, "failed deploys", int64(res.failed), 0)
	return nil
}
