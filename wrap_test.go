package convox

import (
	"context"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// BenchmarkChain measures what the chain adds to one provider call: a
// store Get through the client's chain (limit, accounting, retry policy)
// against the same Get made directly, and a scheduler Status made at a
// deploy step under the default rate limit's burst.
func BenchmarkChain(b *testing.B) {
	s := memStore{"app/web": {Key: "app/web", Value: []byte("{}"), Version: 1}}
	c, err := New(Rack{Registry: nopRegistry{}, Scheduler: baseScheduler{}, Logs: nopLogs{}, Store: s}, &Options{RateLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("store Get, direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, "app/web"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store Get, through the chain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.rack.store.Get(ctx, "app/web"); err != nil {
				b.Fatal(err)
			}
		}
	})
	sel, err := c.rack.selectFor(AppSpec{})
	if err != nil {
		b.Fatal(err)
	}
	sctx := (&Deployment{c: c, App: "web", Release: "R1"}).at(ctx, StepWait)
	b.Run("scheduler Status at a step, through the chain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sel.sched.Status(sctx, "web"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// scriptedTail is a LogTailer yielding its entries, then err if set.
type scriptedTail struct {
	nopLogs
	entries []providers.LogEntry
	err     error
}

func (scriptedTail) Write(context.Context, []providers.LogEntry) error { return nil }

func (s scriptedTail) Tail(context.Context, providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
	return func(yield func(providers.LogEntry, error) bool) {
		for _, e := range s.entries {
			if !yield(e, nil) {
				return
			}
		}
		if s.err != nil {
			yield(providers.LogEntry{}, s.err)
		}
	}
}

// TestTailThroughTheChain: a tail is one call, never retried, that fails
// when it yields an error; a tail the rate limit never let start yields
// the limit's error.
func TestTailThroughTheChain(t *testing.T) {
	unavailable := fmt.Errorf("logs: %w", providers.ErrUnavailable)
	entries := []providers.LogEntry{{ID: "1"}, {ID: "2"}}
	type result struct {
		IDs    []string
		Err    bool
		Calls  int64
		Errors int64
	}
	tests := []struct {
		name     string
		tail     scriptedTail
		take     int  // entries the consumer takes before it stops; 0 takes all
		canceled bool // the ctx ends before the tail starts, under a rate limit
		want     result
	}{
		{name: "every entry", tail: scriptedTail{entries: entries}, want: result{IDs: []string{"1", "2"}, Calls: 1}},
		{name: "an error ends it, not retried", tail: scriptedTail{entries: entries, err: unavailable}, want: result{IDs: []string{"1", "2"}, Err: true, Calls: 1, Errors: 1}},
		{name: "the consumer stops early", tail: scriptedTail{entries: entries, err: unavailable}, take: 1, want: result{IDs: []string{"1"}, Calls: 1}},
		{name: "the rate limit's wait ends", tail: scriptedTail{entries: entries}, canceled: true, want: result{Err: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Rack{Registry: nopRegistry{}, Scheduler: baseScheduler{}, Logs: tc.tail, Store: memStore{}},
				&Options{RateLimits: map[string]Rate{KindLogs: {PerSecond: 0.001, Burst: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := withFollowRetry(context.Background(), time.Millisecond, time.Millisecond) // a tail ignores it
			if tc.canceled {
				_ = c.rack.logs.items[0].Provider.Write(ctx, nil) // takes the one token
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				cancel()
			}
			var got result
			for e, err := range c.rack.logs.items[0].Provider.(providers.LogTailer).Tail(ctx, providers.LogQuery{}) {
				if err != nil {
					got.Err = true
					break
				}
				got.IDs = append(got.IDs, e.ID)
				if len(got.IDs) == tc.take {
					break
				}
			}
			for _, s := range c.Calls() {
				if s.Op == "Tail" {
					got.Calls, got.Errors = s.Calls, s.Errors
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
