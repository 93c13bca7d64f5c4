package convox

import (
	"context"
	"iter"
	"time"

	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// LogQuery selects an app's log lines. Zero fields do not filter.
type LogQuery struct {
	// Since keeps lines newer than this long ago; zero reads from the beginning.
	Since time.Duration
	// Follow keeps reading new lines until the context ends.
	Follow bool
	// Filter keeps lines whose message contains it (case-sensitive); at
	// most providers.MaxLogFilter bytes.
	Filter string
	// Process, Release and Stream keep lines with exactly that value
	// (Stream "convox" holds the platform's own events); each at most
	// providers.MaxLogField bytes.
	Process string
	Release string
	Stream  string
}

// Logs yields the app's log lines in time order. With Follow it keeps
// polling for new lines, backing off while idle, until ctx ends (which ends
// the iteration without an error); lines are yielded once each even when
// pages overlap. An error is yielded once, last; a query over the bounds
// of providers.LogQuery.Validate yields providers.ErrInvalid before any call.
func (a *AppClient) Logs(ctx context.Context, q LogQuery) iter.Seq2[providers.LogEntry, error] {
	return func(yield func(providers.LogEntry, error) bool) {
		pq := providers.LogQuery{App: a.name, Filter: q.Filter, Process: q.Process, Release: q.Release, Stream: q.Stream}
		if err := pq.Validate(); err != nil {
			yield(providers.LogEntry{}, wrapErr("Logs", a.name, "", err))
			return
		}
		app, err := a.c.loadApp(ctx, a.name)
		if err != nil {
			if q.Follow && ctx.Err() != nil {
				return // a follow ends quietly with its context
			}
			yield(providers.LogEntry{}, wrapErr("Logs", a.name, "", err))
			return
		}
		sel, err := a.c.rack.selectFor(app.Spec)
		if err != nil {
			yield(providers.LogEntry{}, wrapErr("Logs", a.name, "", err))
			return
		}
		if q.Since > 0 {
			pq.Start = time.Now().Add(-q.Since)
		}
		t := &tailer{logs: sel.logs, q: pq}
		b := poll.Backoff{Initial: min(a.c.opts.PollInterval, time.Second), Max: min(a.c.opts.MaxPollInterval, 5*time.Second)}
		rctx := ctx
		if q.Follow {
			// The logs backend's chain retries a following read's
			// temporary errors until ctx ends (chain.go).
			rctx = withFollowRetry(ctx, b.Initial, b.Max)
		}
		for {
			n, err := t.drain(rctx, func(e providers.LogEntry) bool { return yield(e, nil) })
			if err != nil {
				if q.Follow && ctx.Err() != nil {
					return
				}
				yield(providers.LogEntry{}, wrapErr("Logs", a.name, "", err))
				return
			}
			if n < 0 || !q.Follow {
				return
			}
			if n > 0 {
				b.Reset()
			}
			// Not the chain: following polls for new lines, backing off
			// while there are none; a failed read was retried above.
			if err := b.Wait(ctx); err != nil {
				return
			}
		}
	}
}

// tailer reads a query repeatedly, yielding each entry once: it remembers
// the time of the newest entry seen and the IDs seen at that time.
type tailer struct {
	logs   providers.Logs
	q      providers.LogQuery
	cursor time.Time
	seen   map[string]bool
}

// drain yields every new entry available now and returns how many it
// yielded, or -1 when yield asked to stop.
func (t *tailer) drain(ctx context.Context, yield func(providers.LogEntry) bool) (int, error) {
	q := t.q
	if !t.cursor.IsZero() {
		q.Start = t.cursor
	}
	n, token := 0, ""
	for {
		page, err := t.logs.Read(ctx, q, token)
		if err != nil {
			return n, err
		}
		for _, e := range page.Entries {
			if e.Time.Before(t.cursor) || t.seen[e.ID] {
				continue
			}
			if e.Time.After(t.cursor) {
				t.cursor, t.seen = e.Time, map[string]bool{}
			}
			t.seen[e.ID] = true
			n++
			if !yield(e) {
				return -1, nil
			}
		}
		if page.Next == "" {
			return n, nil
		}
		token = page.Next
	}
}
