package fake

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/convox-go/convox/providers"
)

// Logs is the rack's providers.Logs; it also implements
// providers.LogTailer. The scheduler's tasks write to it.
type Logs struct{ r *Rack }

var (
	_ providers.Logs      = (*Logs)(nil)
	_ providers.LogTailer = (*Logs)(nil)
)

// Page sizes of Read: the size of a page when LogQuery.Limit is zero, and
// the largest page.
const (
	DefaultLogLimit = 1000
	MaxLogLimit     = 10000
)

type tail struct {
	q      providers.LogQuery
	queue  []providers.LogEntry
	signal chan struct{}
}

// match reports whether the tail delivers e: a tail ignores its query's
// Start (it delivers what is written from its start on, whatever the
// entries' times).
func (t *tail) match(e providers.LogEntry) bool {
	q := t.q
	q.Start = time.Time{}
	return q.Match(e)
}

func compareEntries(a, b providers.LogEntry) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// appendLogs stores entries (already valid) and feeds the tails; r.mu is
// held. Entries without an ID get one; entries without a time get now.
func (r *Rack) appendLogs(entries []providers.LogEntry) {
	for _, e := range entries {
		if e.ID == "" {
			r.logSeq++
			e.ID = fmt.Sprintf("%012d", r.logSeq)
		}
		if e.Time.IsZero() {
			e.Time = r.now()
		}
		list := r.logs[e.App]
		i, _ := slices.BinarySearchFunc(list, e, compareEntries)
		r.logs[e.App] = slices.Insert(list, i, e)
		for t := range r.tails {
			if t.match(e) {
				t.queue = append(t.queue, e)
				select {
				case t.signal <- struct{}{}:
				default:
				}
			}
		}
	}
}

// taskLog writes one line of a task to the rack's logs, or queues it for
// Options.TaskLogs; r.mu is held.
func (r *Rack) taskLog(t *task, msg string) {
	e := providers.LogEntry{Time: r.now(), App: t.App, Stream: t.ID, Process: t.Process, Release: t.Release, Message: msg}
	if r.taskLogs != nil {
		r.outbox = append(r.outbox, e)
		return
	}
	r.appendLogs([]providers.LogEntry{e})
}

// Write implements providers.Logs. Entries without a Time get the rack's
// current time; entries with an ID keep it.
func (l *Logs) Write(ctx context.Context, entries []providers.LogEntry) error {
	key := ""
	if len(entries) > 0 {
		key = entries[0].App
	}
	c := Call{Provider: "Logs", Method: "Write", Key: key, Args: []any{slices.Clone(entries)}}
	return do0(l.r, ctx, c, func(ctx context.Context) error {
		if h := l.r.currentHooks().Logs.Write; h != nil {
			return h(ctx, entries, l.write)
		}
		return l.write(ctx, entries)
	})
}

func (l *Logs) write(ctx context.Context, entries []providers.LogEntry) error {
	if err := l.r.enter(ctx, "Logs.Write"); err != nil {
		return err
	}
	for i, e := range entries {
		if e.App == "" || e.Stream == "" {
			return providers.Invalidf("fake logs: entry %d has no app or no stream", i)
		}
	}
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	l.r.appendLogs(entries)
	return nil
}

type logToken struct {
	Query string `json:"q"`
	Time  int64  `json:"t"`
	ID    string `json:"i"`
}

// Read implements providers.Logs. A zero Limit means DefaultLogLimit; a
// larger one than MaxLogLimit is lowered to it. Tokens stay valid across
// changes of Limit.
func (l *Logs) Read(ctx context.Context, q providers.LogQuery, token string) (providers.LogPage, error) {
	c := Call{Provider: "Logs", Method: "Read", Key: q.App, Args: []any{q, token}}
	return do(l.r, ctx, c, func(ctx context.Context) (providers.LogPage, error) {
		if h := l.r.currentHooks().Logs.Read; h != nil {
			return h(ctx, q, token, l.read)
		}
		return l.read(ctx, q, token)
	})
}

func (l *Logs) read(ctx context.Context, q providers.LogQuery, token string) (providers.LogPage, error) {
	if err := l.r.enter(ctx, "Logs.Read"); err != nil {
		return providers.LogPage{}, err
	}
	if q.App == "" {
		return providers.LogPage{}, providers.Invalidf("fake logs: read: no app")
	}
	if q.Limit < 0 {
		return providers.LogPage{}, providers.Invalidf("fake logs: read: negative limit %d", q.Limit)
	}
	limit := min(cmp.Or(q.Limit, DefaultLogLimit), MaxLogLimit)
	var after *providers.LogEntry
	if token != "" {
		var tok logToken
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err == nil {
			err = json.Unmarshal(raw, &tok)
		}
		if err != nil {
			return providers.LogPage{}, providers.Invalidf("fake logs: read: malformed token")
		}
		if tok.Query != q.Fingerprint() {
			return providers.LogPage{}, providers.Invalidf("fake logs: read: token belongs to another query")
		}
		after = &providers.LogEntry{ID: tok.ID, Time: time.Unix(0, tok.Time)}
	}
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	var page providers.LogPage
	for _, e := range l.r.logs[q.App] {
		if after != nil && compareEntries(e, *after) <= 0 {
			continue
		}
		if !q.Match(e) {
			continue
		}
		if len(page.Entries) == limit {
			last := page.Entries[limit-1]
			raw, _ := json.Marshal(logToken{Query: q.Fingerprint(), Time: last.Time.UnixNano(), ID: last.ID})
			page.Next = base64.RawURLEncoding.EncodeToString(raw)
			break
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// Delete implements providers.Logs.
func (l *Logs) Delete(ctx context.Context, app string) error {
	c := Call{Provider: "Logs", Method: "Delete", Key: app, Args: []any{app}}
	return do0(l.r, ctx, c, func(ctx context.Context) error {
		if h := l.r.currentHooks().Logs.Delete; h != nil {
			return h(ctx, app, l.delete)
		}
		return l.delete(ctx, app)
	})
}

func (l *Logs) delete(ctx context.Context, app string) error {
	if err := l.r.enter(ctx, "Logs.Delete"); err != nil {
		return err
	}
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	delete(l.r.logs, app)
	return nil
}

func errSeq(err error) iter.Seq2[providers.LogEntry, error] {
	return func(yield func(providers.LogEntry, error) bool) { yield(providers.LogEntry{}, err) }
}

// Tail implements providers.LogTailer. The tail starts when the loop over
// the returned sequence starts: entries written from then on that match q
// are yielded in the order they were written. When ctx ends the sequence
// yields the context's error once and stops.
func (l *Logs) Tail(ctx context.Context, q providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
	c := Call{Provider: "Logs", Method: "Tail", Key: q.App, Args: []any{q}}
	seq, err := do(l.r, ctx, c, func(ctx context.Context) (iter.Seq2[providers.LogEntry, error], error) {
		var seq iter.Seq2[providers.LogEntry, error]
		if h := l.r.currentHooks().Logs.Tail; h != nil {
			seq = h(ctx, q, l.tail)
		} else {
			seq = l.tail(ctx, q)
		}
		return seq, nil
	})
	if err != nil {
		return errSeq(err)
	}
	return seq
}

func (l *Logs) tail(ctx context.Context, q providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
	if err := l.r.enter(ctx, "Logs.Tail"); err != nil {
		return errSeq(err)
	}
	if q.App == "" {
		return errSeq(providers.Invalidf("fake logs: tail: no app"))
	}
	return func(yield func(providers.LogEntry, error) bool) {
		t := &tail{q: q, signal: make(chan struct{}, 1)}
		l.r.mu.Lock()
		l.r.tails[t] = true
		l.r.mu.Unlock()
		defer func() {
			l.r.mu.Lock()
			delete(l.r.tails, t)
			l.r.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				yield(providers.LogEntry{}, ctx.Err())
				return
			case <-t.signal:
			}
			l.r.mu.Lock()
			batch := t.queue
			t.queue = nil
			l.r.mu.Unlock()
			for _, e := range batch {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}
