package providertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/providers"
)

// LogsHarness supplies the log store under test.
type LogsHarness struct {
	// New returns the log store. It is called once per case and may
	// return a shared store: every case uses app names of its own.
	New func(t *testing.T) providers.Logs
	// Poll is the pause between reads while waiting for written entries to
	// become readable, for backends that are eventually consistent; zero
	// reads again without pausing (and expects entries at once).
	Poll time.Duration
	// Timeout bounds such a wait, and a wait for a tail to deliver; zero
	// means two minutes.
	Timeout time.Duration
}

// TestLogs checks the providers.Logs contract, and the LogTailer contract
// when the store implements it. Entry times are whole milliseconds in the
// last hour, which every backend stores exactly.
//
// Each rule group is a subtest of its own (Read, Write, Delete,
// Concurrency, Context, LogTailer), runnable alone with -run.
func TestLogs(t *testing.T, h LogsHarness) {
	s := &logsSuite{LogsHarness: h, w: newWaiter(h.Poll, h.Timeout), base: time.Now().Add(-time.Hour).Truncate(time.Second)}
	t.Run("Read", s.testRead)
	t.Run("Write", s.testWrite)
	t.Run("Delete", s.testDelete)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("Context", s.testContext)
	t.Run("LogTailer", s.testLogTailer)
}

// logsSuite is the harness the Logs rule groups share.
type logsSuite struct {
	LogsHarness
	w waiter
	// base is the time of entry 0.
	base time.Time
}

// setup returns the log store and an app name of the case's own, whose
// logs are deleted when the case ends.
func (h *logsSuite) setup(t *testing.T) (providers.Logs, string) {
	l := h.New(t)
	app := uniqueName()
	t.Cleanup(func() {
		ctx, cancel := cleanupContext()
		defer cancel()
		l.Delete(ctx, app)
	})
	return l, app
}

// at is the time of entry i: i seconds after the base.
func (h *logsSuite) at(i int) time.Time { return h.base.Add(time.Duration(i) * time.Second) }

// entry returns an entry of the app at time i.
func (h *logsSuite) entry(app string, i int, msg string) providers.LogEntry {
	return providers.LogEntry{Time: h.at(i), App: app, Stream: "task-1", Process: "web", Release: "r1", Message: msg}
}

// readN waits until q matches n entries and returns them.
func (h *logsSuite) readN(t *testing.T, l providers.Logs, q providers.LogQuery, n int) []providers.LogEntry {
	t.Helper()
	var got []providers.LogEntry
	h.w.until(t, fmt.Sprintf("%d log entries", n), func(ctx context.Context) (bool, string, error) {
		var err error
		got, _, err = readAll(ctx, l, q)
		return len(got) >= n, fmt.Sprintf("%d entries: %+v", len(got), got), err
	})
	return got
}

// write writes entries, failing the test on an error.
func write(t *testing.T, l providers.Logs, entries ...providers.LogEntry) {
	t.Helper()
	must(t, "Write", l.Write(t.Context(), entries))
}

var ignoreID = cmpopts.IgnoreFields(providers.LogEntry{}, "ID")

func (h *logsSuite) testRead(t *testing.T) {
	t.Run("an app without logs returns an empty final page", func(t *testing.T) {
		l, app := h.setup(t)
		page, err := l.Read(t.Context(), providers.LogQuery{App: app}, "")
		must(t, "Read", err)
		if diff := cmp.Diff(providers.LogPage{}, page, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Read (-want +got):\n%s", diff)
		}
	})

	t.Run("entries come back in time order whatever the write order", func(t *testing.T) {
		l, app := h.setup(t)
		write(t, l, h.entry(app, 3, "three"), h.entry(app, 1, "one"))
		write(t, l, h.entry(app, 2, "two"), h.entry(app, 0, "zero"))
		write(t, l, h.entry(app, 4, "four"))
		got := h.readN(t, l, providers.LogQuery{App: app}, 5)
		want := []providers.LogEntry{h.entry(app, 0, "zero"), h.entry(app, 1, "one"), h.entry(app, 2, "two"), h.entry(app, 3, "three"), h.entry(app, 4, "four")}
		if diff := cmp.Diff(want, got, ignoreID); diff != "" {
			t.Errorf("Read (-want +got):\n%s", diff)
		}
	})

	t.Run("entries with equal times are ordered by ID", func(t *testing.T) {
		byID := func(a, b providers.LogEntry) int { return strings.Compare(a.ID, b.ID) }
		t.Run("IDs the store assigns", func(t *testing.T) {
			l, app := h.setup(t)
			write(t, l, h.entry(app, 0, "a"), h.entry(app, 0, "b"), h.entry(app, 0, "c"))
			got := h.readN(t, l, providers.LogQuery{App: app}, 3)
			if !slices.IsSortedFunc(got, byID) {
				t.Errorf("entries with equal times in order of IDs %q, want ascending", entryIDs(got))
			}
		})
		t.Run("IDs the writer gives, written out of order", func(t *testing.T) {
			l, app := h.setup(t)
			var entries []providers.LogEntry
			for _, id := range []string{"c", "a", "d", "b"} {
				e := h.entry(app, 0, "entry "+id)
				e.ID = app + "-" + id
				entries = append(entries, e)
			}
			write(t, l, entries[:2]...)
			write(t, l, entries[2:]...)
			got := h.readN(t, l, providers.LogQuery{App: app}, len(entries))
			if diff := cmp.Diff([]string{"entry a", "entry b", "entry c", "entry d"}, messages(got)); diff != "" {
				t.Errorf("entries with equal times, ordered by ID (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("Start is inclusive and End exclusive", func(t *testing.T) {
		l, app := h.setup(t)
		for i := range 5 {
			write(t, l, h.entry(app, i, fmt.Sprint(i)))
		}
		h.readN(t, l, providers.LogQuery{App: app}, 5)
		for _, tc := range []struct {
			name       string
			start, end time.Time
			want       []string
		}{
			{"Start only", h.at(3), time.Time{}, []string{"3", "4"}},
			{"End only", time.Time{}, h.at(2), []string{"0", "1"}},
			{"Start and End", h.at(1), h.at(3), []string{"1", "2"}},
			{"empty range", h.at(2), h.at(2), nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, _, err := readAll(t.Context(), l, providers.LogQuery{App: app, Start: tc.start, End: tc.end})
				must(t, "Read", err)
				if diff := cmp.Diff(tc.want, messages(got), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("Filter, Process, Release and Stream select entries", func(t *testing.T) {
		l, app := h.setup(t)
		all := []providers.LogEntry{
			{Time: h.at(0), App: app, Stream: "web-1", Process: "web", Release: "r1", Message: "GET /health 200"},
			{Time: h.at(1), App: app, Stream: "web-2", Process: "web", Release: "r2", Message: "get /other 200"},
			{Time: h.at(2), App: app, Stream: "worker-1", Process: "worker", Release: "r2", Message: "POST /health 500"},
			{Time: h.at(3), App: app, Stream: providers.StreamPlatform, Process: providers.StreamPlatform, Release: "r2", Message: "deploy r2 healthy"},
		}
		write(t, l, all...)
		h.readN(t, l, providers.LogQuery{App: app}, len(all))
		for _, tc := range []struct {
			name string
			q    providers.LogQuery
			want []string
		}{
			{"Filter is a substring", providers.LogQuery{Filter: "/health"}, []string{"GET /health 200", "POST /health 500"}},
			{"Filter is case-sensitive", providers.LogQuery{Filter: "GET"}, []string{"GET /health 200"}},
			{"Process", providers.LogQuery{Process: "web"}, []string{"GET /health 200", "get /other 200"}},
			{"Process is exact", providers.LogQuery{Process: "we"}, nil},
			{"Release", providers.LogQuery{Release: "r1"}, []string{"GET /health 200"}},
			{"Stream", providers.LogQuery{Stream: providers.StreamPlatform}, []string{"deploy r2 healthy"}},
			{"all at once", providers.LogQuery{Process: "web", Release: "r2", Filter: "200"}, []string{"get /other 200"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.q.App = app
				got, _, err := readAll(t.Context(), l, tc.q)
				must(t, "Read", err)
				if diff := cmp.Diff(tc.want, messages(got), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("pages cover every entry once, in order, within Limit", func(t *testing.T) {
		// Entries come in pairs of equal times, so pages end between
		// entries of one time too.
		l, app := h.setup(t)
		var want []string
		for i := range 8 {
			write(t, l, h.entry(app, i/2, fmt.Sprintf("m%d", i)))
			want = append(want, fmt.Sprintf("m%d", i))
		}
		h.readN(t, l, providers.LogQuery{App: app}, len(want))
		for _, tc := range []struct {
			limit  int
			filter string
		}{{1, ""}, {2, ""}, {3, ""}, {8, ""}, {0, ""}, {1, "m"}, {3, "m"}} {
			t.Run(fmt.Sprintf("Limit=%d/Filter=%q", tc.limit, tc.filter), func(t *testing.T) {
				got, sizes, err := readAll(t.Context(), l, providers.LogQuery{App: app, Limit: tc.limit, Filter: tc.filter})
				must(t, "Read", err)
				// Entries of one time may come in either order: their IDs
				// are the store's.
				if diff := cmp.Diff(want, messages(got), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
					t.Errorf("messages over all pages (-want +got):\n%s", diff)
				}
				if !slices.IsSortedFunc(got, func(a, b providers.LogEntry) int { return a.Time.Compare(b.Time) }) {
					t.Errorf("entries over all pages are not in time order: %q", messages(got))
				}
				for i, n := range sizes {
					if tc.limit > 0 && n > tc.limit {
						t.Errorf("page %d has %d entries, over the limit %d", i, n, tc.limit)
					}
				}
			})
		}
	})

	t.Run("entries written between pages make no other entry repeat or vanish", func(t *testing.T) {
		// A token that counts entries instead of naming a position
		// repeats or skips entries when one is written behind it.
		for _, tc := range []struct {
			name string
			time int // of the entry written between pages
		}{{"behind the cursor", 1}, {"ahead of the cursor", 7}} {
			t.Run(tc.name, func(t *testing.T) {
				l, app := h.setup(t)
				var want []string
				for i := range 5 {
					write(t, l, h.entry(app, 2*i, fmt.Sprintf("m%d", i)))
					want = append(want, fmt.Sprintf("m%d", i))
				}
				h.readN(t, l, providers.LogQuery{App: app}, len(want))
				q := providers.LogQuery{App: app, Limit: 2}
				page, err := l.Read(t.Context(), q, "")
				must(t, "Read first page", err)
				if diff := cmp.Diff(want[:2], messages(page.Entries)); diff != "" || page.Next == "" {
					t.Fatalf("first page of Limit 2 (-want +got):\n%s\nNext %q", diff, page.Next)
				}
				seen := messages(page.Entries)
				write(t, l, h.entry(app, tc.time, "written between pages"))
				for n := 0; page.Next != "" && n < 100; n++ {
					page, err = l.Read(t.Context(), q, page.Next)
					must(t, "Read next page", err)
					seen = append(seen, messages(page.Entries)...)
				}
				counts := map[string]int{}
				for _, m := range seen {
					counts[m]++
				}
				for _, m := range want {
					if counts[m] != 1 {
						t.Errorf("entry %q, written before the read, read %d times; want once (read: %q)", m, counts[m], seen)
					}
				}
				if n := counts["written between pages"]; n > 1 {
					t.Errorf("the entry written between pages read %d times (read: %q)", n, seen)
				}
			})
		}
	})

	t.Run("IDs are stable across reads, so readers can dedupe", func(t *testing.T) {
		l, app := h.setup(t)
		write(t, l, h.entry(app, 0, "a"), h.entry(app, 1, "b"), h.entry(app, 2, "c"))
		first := h.readN(t, l, providers.LogQuery{App: app}, 3)
		second, _, err := readAll(t.Context(), l, providers.LogQuery{App: app, Limit: 1})
		must(t, "Read", err)
		if diff := cmp.Diff(entryIDs(first), entryIDs(second)); diff != "" {
			t.Errorf("IDs of a second read (-first +second):\n%s", diff)
		}
	})

	t.Run("a token from another query returns ErrInvalid", func(t *testing.T) {
		l, app := h.setup(t)
		write(t, l, h.entry(app, 0, "a"), h.entry(app, 1, "b"), h.entry(app, 2, "c"))
		h.readN(t, l, providers.LogQuery{App: app}, 3)
		page, err := l.Read(t.Context(), providers.LogQuery{App: app, Limit: 1}, "")
		must(t, "Read", err)
		if page.Next == "" {
			t.Fatalf("Read with Limit 1 of 3 entries returned no Next token")
		}
		_, err = l.Read(t.Context(), providers.LogQuery{App: app, Limit: 1, Filter: "b"}, page.Next)
		wantErr(t, "Read of another query with the token", err, providers.ErrInvalid)
		_, err = l.Read(t.Context(), providers.LogQuery{App: app, Limit: 1}, "not a token from this store")
		wantErr(t, "Read with a malformed token", err, providers.ErrInvalid)
	})

	t.Run("apps are isolated", func(t *testing.T) {
		l, app := h.setup(t)
		other := uniqueName()
		t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			l.Delete(ctx, other)
		})
		write(t, l, h.entry(app, 0, "mine"), h.entry(other, 1, "theirs"))
		got := h.readN(t, l, providers.LogQuery{App: app}, 1)
		if diff := cmp.Diff([]string{"mine"}, messages(got)); diff != "" {
			t.Errorf("messages of the app (-want +got):\n%s", diff)
		}
	})
}

func (h *logsSuite) testWrite(t *testing.T) {
	t.Run("entries without App or Stream return ErrInvalid", func(t *testing.T) {
		l, app := h.setup(t)
		noApp := h.entry(app, 0, "m")
		noApp.App = ""
		noStream := h.entry(app, 0, "m")
		noStream.Stream = ""
		wantErr(t, "Write without App", l.Write(t.Context(), []providers.LogEntry{noApp}), providers.ErrInvalid)
		wantErr(t, "Write without Stream", l.Write(t.Context(), []providers.LogEntry{noStream}), providers.ErrInvalid)
	})

	t.Run("entries read back with every field and a unique ID", func(t *testing.T) {
		l, app := h.setup(t)
		want := []providers.LogEntry{
			{Time: h.at(0), App: app, Stream: "web-1", Process: "web", Release: "r1", Message: "listening on :8080"},
			{Time: h.at(1), App: app, Stream: providers.StreamPlatform, Process: providers.StreamPlatform, Release: "r2", Message: "deploy started"},
			{Time: h.at(2), App: app, Stream: "worker-1", Process: "worker", Release: "r1", Message: "ünïcødé ✓ and \"quotes\""},
		}
		write(t, l, want...)
		got := h.readN(t, l, providers.LogQuery{App: app}, len(want))
		if diff := cmp.Diff(want, got, ignoreID); diff != "" {
			t.Errorf("Read (-want +got):\n%s", diff)
		}
		ids := map[string]bool{}
		for _, e := range got {
			if e.ID == "" || ids[e.ID] {
				t.Errorf("entry %q has ID %q, want a non-empty unique one", e.Message, e.ID)
			}
			ids[e.ID] = true
		}
	})
}

func (h *logsSuite) testDelete(t *testing.T) {
	t.Run("removes the app's logs and is idempotent", func(t *testing.T) {
		l, app := h.setup(t)
		write(t, l, h.entry(app, 0, "a"))
		h.readN(t, l, providers.LogQuery{App: app}, 1)
		must(t, "Delete", l.Delete(t.Context(), app))
		if err := l.Delete(t.Context(), app); err != nil {
			t.Errorf("second Delete: %v, want nil", err)
		}
		h.w.until(t, "deleted logs to be gone", func(ctx context.Context) (bool, string, error) {
			got, _, err := readAll(ctx, l, providers.LogQuery{App: app})
			return len(got) == 0, fmt.Sprintf("%+v", got), err
		})
	})
}

func (h *logsSuite) testConcurrency(t *testing.T) {
	t.Run("concurrent Writes lose nothing", func(t *testing.T) {
		l, app := h.setup(t)
		const rounds = 500
		var written atomic.Int64
		var failures failures
		race(t, rounds, func(ctx context.Context, racer, round int) bool {
			e := h.entry(app, racer*rounds+round, fmt.Sprintf("w%d-%d", racer, round))
			e.Stream = fmt.Sprintf("task-%d", racer)
			if err := l.Write(ctx, []providers.LogEntry{e}); err != nil {
				return failures.add("racer %d: Write: %v", racer, err)
			}
			written.Add(1)
			return failures.none()
		})
		failures.report(t)
		n := int(written.Load())
		got := h.readN(t, l, providers.LogQuery{App: app}, n)
		ids := map[string]bool{}
		for _, e := range got {
			ids[e.ID] = true
		}
		if len(got) != n || len(ids) != n {
			t.Errorf("read %d entries with %d distinct IDs, want %d of each", len(got), len(ids), n)
		}
	})
}

func (h *logsSuite) testContext(t *testing.T) {
	t.Run("canceled context fails every method with context.Canceled", func(t *testing.T) {
		l, app := h.setup(t)
		write(t, l, h.entry(app, 0, "kept"))
		h.readN(t, l, providers.LogQuery{App: app}, 1)
		for _, tc := range []struct {
			method string
			call   func(ctx context.Context) error
		}{
			{"Write", func(ctx context.Context) error { return l.Write(ctx, []providers.LogEntry{h.entry(app, 1, "never")}) }},
			{"Read", func(ctx context.Context) error { _, err := l.Read(ctx, providers.LogQuery{App: app}, ""); return err }},
			{"Delete", func(ctx context.Context) error { return l.Delete(ctx, app) }},
		} {
			t.Run(tc.method, func(t *testing.T) { checkCanceled(t, tc.call) })
		}
		got, _, err := readAll(t.Context(), l, providers.LogQuery{App: app})
		must(t, "Read", err)
		if diff := cmp.Diff([]string{"kept"}, messages(got)); diff != "" {
			t.Errorf("messages after canceled Write and Delete (-want +got):\n%s", diff)
		}
	})
}

func (h *logsSuite) testLogTailer(t *testing.T) {
	if _, ok := h.New(t).(providers.LogTailer); !ok {
		t.Skip("the log store does not implement providers.LogTailer")
	}
	timeout := h.w.timeout
	// tailed starts a tail of q, writes probe entries until the tail
	// delivers one (so it is known to be running), then writes the
	// entries and returns what the tail delivered besides probes once
	// it has delivered n such entries or the timeout passed. The tail is
	// then stopped; it must end promptly.
	tailed := func(t *testing.T, l providers.Logs, q providers.LogQuery, probe func(i int) providers.LogEntry, entries []providers.LogEntry, n int) []providers.LogEntry {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		got := make(chan providers.LogEntry, 1024)
		ended := make(chan error, 1)
		go func() {
			var last error
			for e, err := range l.(providers.LogTailer).Tail(ctx, q) {
				if err != nil {
					last = err
					break
				}
				got <- e
			}
			ended <- last
		}()
		stop := func() {
			cancel()
			select {
			case err := <-ended:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("tail ended with %v, want nil or an error matching context.Canceled", err)
				}
			case <-time.After(promptly):
				t.Errorf("tail still running %v after its context was canceled", promptly)
			}
		}
		defer stop()
		deadline := time.After(timeout)
		pause := max(h.Poll, 20*time.Millisecond)
	probing:
		for i := 0; ; i++ {
			write(t, l, probe(i))
			select {
			case <-got:
				break probing
			case err := <-ended:
				t.Fatalf("tail ended before delivering an entry: %v", err)
			case <-deadline:
				t.Fatalf("tail delivered no probe entry in %v", timeout)
			case <-time.After(pause):
			}
		}
		for _, e := range entries {
			write(t, l, e)
		}
		var out []providers.LogEntry
		for len(out) < n {
			select {
			case e := <-got:
				if !strings.Contains(e.Message, "probe") {
					out = append(out, e)
				}
			case <-deadline:
				t.Errorf("tail delivered %d entries in %v, want %d: %+v", len(out), timeout, n, out)
				return out
			}
		}
		return out
	}

	t.Run("Tail/yields entries written after it starts, in write order", func(t *testing.T) {
		l, app := h.setup(t)
		probe := func(i int) providers.LogEntry { return h.entry(app, 0, fmt.Sprintf("probe %d", i)) }
		want := []providers.LogEntry{h.entry(app, 10, "one"), h.entry(app, 11, "two"), h.entry(app, 12, "three")}
		got := tailed(t, l, providers.LogQuery{App: app}, probe, want, len(want))
		if diff := cmp.Diff(want, got, ignoreID); diff != "" {
			t.Errorf("tailed entries (-want +got):\n%s", diff)
		}
	})

	t.Run("Tail/yields only entries matching the query", func(t *testing.T) {
		l, app := h.setup(t)
		q := providers.LogQuery{App: app, Process: "web", Filter: "keep"}
		probe := func(i int) providers.LogEntry { return h.entry(app, 0, fmt.Sprintf("keep probe %d", i)) }
		other := h.entry(app, 12, "keep, but another process")
		other.Process = "worker"
		entries := []providers.LogEntry{h.entry(app, 10, "keep 1"), h.entry(app, 11, "drop 2"), other, h.entry(uniqueName(), 13, "keep, but another app"), h.entry(app, 14, "keep 3")}
		got := tailed(t, l, q, probe, entries, 2)
		if diff := cmp.Diff([]string{"keep 1", "keep 3"}, messages(got)); diff != "" {
			t.Errorf("tailed messages (-want +got):\n%s", diff)
		}
	})

	t.Run("Tail/canceled context ends the tail with context.Canceled", func(t *testing.T) {
		l, app := h.setup(t)
		checkCanceled(t, func(ctx context.Context) error {
			var last error
			for _, err := range l.(providers.LogTailer).Tail(ctx, providers.LogQuery{App: app}) {
				if err == nil {
					return fmt.Errorf("a tail with a canceled context yielded an entry")
				}
				last = err
			}
			if last == nil {
				// Ending without an error is how a tail reports that
				// its context ended; report it as such.
				return context.Canceled
			}
			return last
		})
	})
}

// readAll pages through a query and returns its entries and the size of
// each page.
func readAll(ctx context.Context, l providers.Logs, q providers.LogQuery) ([]providers.LogEntry, []int, error) {
	var out []providers.LogEntry
	var sizes []int
	token := ""
	for range 10000 {
		page, err := l.Read(ctx, q, token)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, page.Entries...)
		sizes = append(sizes, len(page.Entries))
		if page.Next == "" {
			return out, sizes, nil
		}
		token = page.Next
	}
	return nil, nil, fmt.Errorf("read of %+v: no end after 10000 pages", q)
}

func messages(entries []providers.LogEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Message)
	}
	return out
}

func entryIDs(entries []providers.LogEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.ID)
	}
	return out
}
