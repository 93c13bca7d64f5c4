package convox

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/convox-go/convox/providers"
)

// CallStats counts the calls a Client made to one operation of one
// provider since New (see the package doc, # Calls).
type CallStats struct {
	// Kind is the provider's kind: KindScheduler, KindBalancer,
	// KindRegistry, KindLogs, KindStore or KindNotifier.
	Kind string
	// Provider is the provider's name in the rack (DefaultName for a
	// single-provider field and for the store); a notifier's is its index
	// in Rack.Notifiers ("0", "1", ...).
	Provider string
	// Op is the method called ("Apply", "Get", "Notify", ...).
	Op string
	// Calls counts the calls made to the provider, each retry included.
	Calls int64
	// Errors counts the calls that returned an error, retried or not.
	Errors int64
	// Retries counts the calls that repeated a call that had failed with
	// a temporary error (they are among Calls).
	Retries int64
	// Time is the time spent in the calls, summed over calls that ran at
	// once, without the waits for the rate limiter and between retries.
	Time time.Duration
}

// Calls returns how many calls the client made to each operation of each
// provider of its rack, with their errors, retries and time, for the
// operations called at least once, sorted by Kind, Provider and Op. It is
// a snapshot: counting goes on while it is read, so two counters of one
// operation may be a call apart. It is safe for concurrent use and does
// not slow the calls it counts.
func (c *Client) Calls() []CallStats {
	var out []CallStats
	for _, ch := range c.chains {
		for o := range numOps {
			st := &ch.stats[o]
			n := st.calls.Load()
			if n == 0 {
				continue
			}
			out = append(out, CallStats{
				Kind: ch.kind, Provider: ch.name, Op: opNames[o],
				Calls: n, Errors: st.errors.Load(), Retries: st.retries.Load(), Time: time.Duration(st.nanos.Load()),
			})
		}
	}
	slices.SortFunc(out, func(a, b CallStats) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Op, b.Op))
	})
	return out
}

// Rate is a rate limit of calls to a provider: a token bucket of Burst
// calls refilled at PerSecond calls per second. A PerSecond of zero or
// less means no limit; a Burst of zero or less defaults to PerSecond
// (at least 1, at most 1,048,576).
type Rate struct {
	PerSecond float64
	Burst     int
}

// maxBurst bounds Rate.Burst.
const maxBurst = 1 << 20

// kinds lists every kind of provider.
var kinds = []string{KindScheduler, KindBalancer, KindRegistry, KindLogs, KindStore, KindNotifier}

// checkRates refuses Options.RateLimits naming an unknown kind.
func (o *Options) checkRates() error {
	for k, r := range o.RateLimits {
		if !slices.Contains(kinds, k) {
			return providers.Invalidf("Options.RateLimits names an unknown kind of provider %q (kinds: %v)", k, kinds)
		}
		if math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) || r.Burst > maxBurst {
			return providers.Invalidf("Options.RateLimits[%q] is %v calls per second with bursts of %d: want a finite rate and bursts of at most %d", k, r.PerSecond, r.Burst, maxBurst)
		}
	}
	return nil
}

// rateOf returns the rate limit of each provider of kind: its entry in
// Options.RateLimits, else RateLimit and RateBurst for schedulers and
// balancers, else none.
func (c *Client) rateOf(kind string) Rate {
	r, ok := c.opts.RateLimits[kind]
	switch {
	case ok:
	case (kind == KindScheduler || kind == KindBalancer) && c.opts.RateLimit > 0:
		r = Rate{PerSecond: c.opts.RateLimit, Burst: c.opts.RateBurst}
	default:
		return Rate{}
	}
	if r.Burst <= 0 {
		r.Burst = int(min(max(r.PerSecond, 1), maxBurst))
	}
	return r
}
