// Package limiter is a token-bucket rate limiter shared by every wait of a
// client, so that many concurrent deploys stay under an account's API rate
// limit instead of each backing off alone. It starts no goroutines and
// sleeps with time.NewTimer, so it runs on a testing/synctest fake clock.
//
//	l := limiter.New(20, 20) // 20 calls per second, bursts of 20
//	if err := l.Wait(ctx); err != nil {
//		return err
//	}
//	// make the call
package limiter

import (
	"context"
	"sync"
	"time"
)

// Limiter hands out tokens at a steady rate with a bounded burst. A nil
// *Limiter never waits. It is safe for concurrent use.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// New returns a limiter of rate tokens per second holding at most burst
// tokens (at least one); it starts full. A rate of zero or less returns
// nil, which never waits.
func New(rate float64, burst int) *Limiter {
	if rate <= 0 {
		return nil
	}
	b := float64(max(burst, 1))
	return &Limiter{rate: rate, burst: b, tokens: b}
}

// reserve takes a token and returns how long to wait before using it.
func (l *Limiter) reserve(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	l.tokens--
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}

// Wait blocks until a token is available or ctx ends. A token taken by a
// Wait that ctx ended is not returned; callers give up rarely enough that
// this keeps the limiter simple and conservative.
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil {
		return ctx.Err()
	}
	d := l.reserve(time.Now())
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
