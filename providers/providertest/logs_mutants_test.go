package providertest_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/providertest"
)

// logsMutants are memLogs with one bug each.
func logsMutants() []mutant {
	rows := []struct{ bug, iface, caughtBy string }{
		{"logs-offset-tokens-bound-to-query", "Logs", "Read/entries written between pages make no other entry repeat or vanish"},
		{"logs-bare-offset-tokens", "Logs", "Read/a token from another query returns ErrInvalid"},
		{"logs-tokens-bound-to-app-only", "Logs", "Read/a token from another query returns ErrInvalid"},
		{"logs-token-holds-only-the-time", "Logs", "Read/pages cover every entry once, in order, within Limit"},
		{"logs-equal-times-in-write-order", "Logs", "Read/entries with equal times are ordered by ID"},
		{"logs-equal-times-by-descending-id", "Logs", "Read/entries with equal times are ordered by ID"},
		{"logs-write-order", "Logs", "Read/entries come back in time order whatever the write order"},
		{"logs-filter-case-insensitive", "Logs", "Read/Filter, Process, Release and Stream select entries"},
		{"logs-process-prefix-match", "Logs", "Read/Filter, Process, Release and Stream select entries"},
		{"logs-end-inclusive", "Logs", "Read/Start is inclusive and End exclusive"},
		{"logs-start-exclusive", "Logs", "Read/Start is inclusive and End exclusive"},
		{"logs-ignore-limit", "Logs", "Read/pages cover every entry once, in order, within Limit"},
		{"logs-ids-assigned-at-read", "Logs", "Read/IDs are stable across reads, so readers can dedupe"},
		{"logs-every-app", "Logs", "Read/apps are isolated"},
		{"logs-unknown-app-not-found", "Logs", "Read/an app without logs returns an empty final page"},
		{"logs-accept-entries-without-stream", "Logs", "Write/entries without App or Stream return ErrInvalid"},
		{"logs-drop-release", "Logs", "Write/entries read back with every field and a unique ID"},
		{"logs-delete-keeps-entries", "Logs", "Delete/removes the app's logs and is idempotent"},
		{"logs-lose-concurrent-writes", "Logs", "Concurrency/concurrent Writes lose nothing"},
		{"logs-ignore-canceled-context", "Logs", "Context/canceled context fails every method with context.Canceled"},
		{"tail-ignores-filter", "LogTailer", "LogTailer/Tail/yields only entries matching the query"},
		{"tail-every-app", "LogTailer", "LogTailer/Tail/yields only entries matching the query"},
		{"tail-newest-first", "LogTailer", "LogTailer/Tail/yields entries written after it starts, in write order"},
		{"tail-ignores-cancel", "LogTailer", "LogTailer/Tail/canceled context ends the tail with context.Canceled"},
	}
	var ms []mutant
	for _, r := range rows {
		ms = append(ms, mutant{name: r.bug, iface: r.iface, caughtBy: r.caughtBy, suite: func(t *testing.T) {
			providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return newMemLogs(r.bug) }, Timeout: 10 * time.Second})
		}})
	}
	return ms
}

// memLogs is a purpose-built in-memory Logs and LogTailer. With bug ""
// it keeps the contract (TestControls checks it); each other bug breaks
// one rule.
type memLogs struct {
	bug string
	// mu guards the fields below.
	mu    sync.Mutex
	apps  map[string][]providers.LogEntry // ordered
	seq   int
	reads int
	tails map[chan providers.LogEntry]providers.LogQuery
}

func newMemLogs(bug string) *memLogs {
	return &memLogs{bug: bug, apps: map[string][]providers.LogEntry{}, tails: map[chan providers.LogEntry]providers.LogQuery{}}
}

func (l *memLogs) ctxErr(ctx context.Context) error {
	if l.bug == "logs-ignore-canceled-context" {
		return nil
	}
	return ctx.Err()
}

// compare orders entries.
func (l *memLogs) compare(a, b providers.LogEntry) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		if l.bug == "logs-write-order" {
			return 0
		}
		return c
	}
	switch l.bug {
	case "logs-equal-times-in-write-order":
		return 0
	case "logs-equal-times-by-descending-id":
		return strings.Compare(b.ID, a.ID)
	}
	return strings.Compare(a.ID, b.ID)
}

func (l *memLogs) Write(ctx context.Context, entries []providers.LogEntry) error {
	if err := l.ctxErr(ctx); err != nil {
		return err
	}
	for _, e := range entries {
		if e.App == "" || (e.Stream == "" && l.bug != "logs-accept-entries-without-stream") {
			return providers.Invalidf("entry without app or stream")
		}
	}
	for _, e := range entries {
		l.mu.Lock()
		if e.ID == "" && l.bug != "logs-ids-assigned-at-read" {
			l.seq++
			e.ID = fmt.Sprintf("%09d", l.seq)
		}
		if l.bug == "logs-drop-release" {
			e.Release = ""
		}
		list := slices.Clone(l.apps[e.App])
		if l.bug == "logs-lose-concurrent-writes" {
			// The insertion is computed outside the lock and stored
			// under it again: a concurrent write in between is lost.
			l.mu.Unlock()
		}
		i := len(list)
		for i > 0 && l.compare(list[i-1], e) > 0 {
			i--
		}
		list = slices.Insert(list, i, e)
		if l.bug == "logs-lose-concurrent-writes" {
			l.mu.Lock()
		}
		l.apps[e.App] = list
		for ch, q := range l.tails {
			if l.matchTail(q, e) {
				ch <- e
			}
		}
		l.mu.Unlock()
	}
	return nil
}

func (l *memLogs) match(q providers.LogQuery, e providers.LogEntry) bool {
	start := !q.Start.IsZero() && e.Time.Before(q.Start)
	if l.bug == "logs-start-exclusive" {
		start = !q.Start.IsZero() && !e.Time.After(q.Start)
	}
	end := !q.End.IsZero() && !e.Time.Before(q.End)
	if l.bug == "logs-end-inclusive" {
		end = !q.End.IsZero() && e.Time.After(q.End)
	}
	filter := !strings.Contains(e.Message, q.Filter)
	if l.bug == "logs-filter-case-insensitive" {
		filter = !strings.Contains(strings.ToLower(e.Message), strings.ToLower(q.Filter))
	}
	process := q.Process != "" && e.Process != q.Process
	if l.bug == "logs-process-prefix-match" {
		process = !strings.HasPrefix(e.Process, q.Process)
	}
	return !start && !end && !filter && !process &&
		(q.Release == "" || e.Release == q.Release) && (q.Stream == "" || e.Stream == q.Stream)
}

// memLogToken is a Read token: the query it continues and the position
// of the last entry it returned (or an offset).
type memLogToken struct {
	Query  string `json:"q"`
	Time   int64  `json:"t"`
	ID     string `json:"i"`
	Offset int    `json:"o"`
}

func (l *memLogs) fingerprint(q providers.LogQuery) string {
	q.Limit = 0
	if l.bug == "logs-tokens-bound-to-app-only" {
		q = providers.LogQuery{App: q.App}
	}
	raw, _ := json.Marshal(q)
	return string(raw)
}

func (l *memLogs) Read(ctx context.Context, q providers.LogQuery, token string) (providers.LogPage, error) {
	if err := l.ctxErr(ctx); err != nil {
		return providers.LogPage{}, err
	}
	limit := cmp.Or(q.Limit, 1000)
	if l.bug == "logs-ignore-limit" {
		limit = 1000
	}
	var tok *memLogToken
	if token != "" {
		tok = new(memLogToken)
		if l.bug == "logs-bare-offset-tokens" {
			n, err := strconv.Atoi(token)
			if err != nil {
				return providers.LogPage{}, providers.Invalidf("malformed token")
			}
			tok.Offset = n
		} else {
			raw, err := base64.RawURLEncoding.DecodeString(token)
			if err == nil {
				err = json.Unmarshal(raw, tok)
			}
			if err != nil {
				return providers.LogPage{}, providers.Invalidf("malformed token")
			}
			if tok.Query != l.fingerprint(q) {
				return providers.LogPage{}, providers.Invalidf("token of another query")
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	list, ok := l.apps[q.App]
	if !ok && l.bug == "logs-unknown-app-not-found" {
		return providers.LogPage{}, fmt.Errorf("app %q: %w", q.App, providers.ErrNotFound)
	}
	if l.bug == "logs-every-app" {
		list = nil
		for _, entries := range l.apps {
			list = append(list, entries...)
		}
		slices.SortStableFunc(list, l.compare)
	}
	var matched []providers.LogEntry
	for _, e := range list {
		if l.match(q, e) {
			if l.bug == "logs-ids-assigned-at-read" {
				l.reads++
				e.ID = fmt.Sprintf("read-%09d", l.reads)
			}
			matched = append(matched, e)
		}
	}
	offset := 0
	if tok != nil {
		switch l.bug {
		case "logs-offset-tokens-bound-to-query", "logs-bare-offset-tokens":
			offset = tok.Offset
		case "logs-token-holds-only-the-time":
			offset = len(matched)
			if i := slices.IndexFunc(matched, func(e providers.LogEntry) bool { return e.Time.UnixNano() > tok.Time }); i >= 0 {
				offset = i
			}
		default:
			after := providers.LogEntry{Time: time.Unix(0, tok.Time), ID: tok.ID}
			offset = len(matched)
			if i := slices.IndexFunc(matched, func(e providers.LogEntry) bool { return l.compare(e, after) > 0 }); i >= 0 {
				offset = i
			}
		}
	}
	matched = matched[min(offset, len(matched)):]
	var page providers.LogPage
	for i, e := range matched {
		if i == limit {
			last := matched[i-1]
			if l.bug == "logs-bare-offset-tokens" {
				page.Next = strconv.Itoa(offset + i)
				break
			}
			raw, _ := json.Marshal(memLogToken{Query: l.fingerprint(q), Time: last.Time.UnixNano(), ID: last.ID, Offset: offset + i})
			page.Next = base64.RawURLEncoding.EncodeToString(raw)
			break
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

func (l *memLogs) Delete(ctx context.Context, app string) error {
	if err := l.ctxErr(ctx); err != nil {
		return err
	}
	if l.bug == "logs-delete-keeps-entries" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.apps, app)
	return nil
}

func (l *memLogs) matchTail(q providers.LogQuery, e providers.LogEntry) bool {
	switch l.bug {
	case "tail-ignores-filter":
		q.Filter = ""
	case "tail-every-app":
		q.App = e.App
	}
	q.Start = time.Time{}
	return e.App == q.App && l.match(q, e)
}

func (l *memLogs) Tail(ctx context.Context, q providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
	return func(yield func(providers.LogEntry, error) bool) {
		ch := make(chan providers.LogEntry, 4096)
		l.mu.Lock()
		l.tails[ch] = q
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.tails, ch)
			l.mu.Unlock()
		}()
		var held []providers.LogEntry // tail-newest-first: entries held back
		done := ctx.Done()
		if l.bug == "tail-ignores-cancel" {
			done = nil
		}
		for {
			select {
			case <-done:
				yield(providers.LogEntry{}, ctx.Err())
				return
			case e := <-ch:
				if l.bug == "tail-newest-first" && !strings.Contains(e.Message, "probe") {
					// Entries are delivered in pairs, the later first.
					held = append(held, e)
					if len(held) < 2 {
						continue
					}
					slices.Reverse(held)
					for _, e := range held {
						if !yield(e, nil) {
							return
						}
					}
					held = nil
					continue
				}
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}
