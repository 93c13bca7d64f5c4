// Package poll provides the context-aware backoff used by every wait of
// the SDK. It holds no goroutines and reads the clock only through
// time.NewTimer, so waits run on the fake clock of a testing/synctest bubble.
//
//	b := poll.Backoff{Initial: time.Second, Max: 10 * time.Second}
//	for {
//		if done() { return nil }
//		if err := b.Wait(ctx); err != nil { return err }
//	}
package poll

import (
	"context"
	"time"
)

// Backoff is an exponential backoff: each Wait sleeps the current interval
// and multiplies it by 1.5, up to Max. Reset returns to Initial. The zero
// value waits 1s, 1.5s, ... up to 10s.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration

	cur time.Duration
}

// Next returns the interval the next Wait sleeps and advances the backoff.
func (b *Backoff) Next() time.Duration {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max < b.Initial {
		b.Max = max(b.Initial, 10*time.Second)
	}
	if b.cur == 0 {
		b.cur = b.Initial
	}
	d := b.cur
	b.cur = min(b.cur*3/2, b.Max)
	return d
}

// Reset makes the next Wait sleep Initial again.
func (b *Backoff) Reset() { b.cur = 0 }

// Wait sleeps the next interval or until ctx ends, returning ctx's error then.
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Sleep sleeps d or until ctx ends, returning ctx's error then.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
