package local

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestLogs(t *testing.T, dir string, maxBytes int64) *Logs {
	t.Helper()
	l, err := newLogs(dir, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	return l
}

// readAll pages through a query and returns the messages.
func readAll(t *testing.T, l *Logs, q providers.LogQuery) []string {
	t.Helper()
	var got []string
	token := ""
	for {
		page, err := l.Read(context.Background(), q, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			got = append(got, e.Message)
		}
		if page.Next == "" {
			return got
		}
		token = page.Next
	}
}

func TestLogsRead(t *testing.T) {
	l := newTestLogs(t, t.TempDir(), 1<<20)
	entries := []providers.LogEntry{
		// written out of time order on purpose
		{App: "web", Stream: "web-2", Process: "web", Release: "R2", Time: t0.Add(3 * time.Second), Message: "r2 started"},
		{App: "web", Stream: "web-1", Process: "web", Release: "R1", Time: t0.Add(1 * time.Second), Message: "r1 started"},
		{App: "web", Stream: "worker-1", Process: "worker", Release: "R1", Time: t0.Add(2 * time.Second), Message: "r1 working"},
		{App: "web", Stream: providers.StreamPlatform, Process: providers.StreamPlatform, Time: t0.Add(4 * time.Second), Message: "deploy R2 done"},
		{App: "other", Stream: "x", Time: t0, Message: "other app"},
	}
	if err := l.Write(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    providers.LogQuery
		want []string
	}{
		{"all entries of the app in time order", providers.LogQuery{App: "web"}, []string{"r1 started", "r1 working", "r2 started", "deploy R2 done"}},
		{"start is inclusive", providers.LogQuery{App: "web", Start: t0.Add(2 * time.Second)}, []string{"r1 working", "r2 started", "deploy R2 done"}},
		{"end is exclusive", providers.LogQuery{App: "web", End: t0.Add(2 * time.Second)}, []string{"r1 started"}},
		{"filter keeps messages containing it", providers.LogQuery{App: "web", Filter: "started"}, []string{"r1 started", "r2 started"}},
		{"process keeps exact process", providers.LogQuery{App: "web", Process: "worker"}, []string{"r1 working"}},
		{"release keeps exact release", providers.LogQuery{App: "web", Release: "R1"}, []string{"r1 started", "r1 working"}},
		{"stream keeps exact stream", providers.LogQuery{App: "web", Stream: "web-2"}, []string{"r2 started"}},
		{"pages of one continue in order", providers.LogQuery{App: "web", Limit: 1}, []string{"r1 started", "r1 working", "r2 started", "deploy R2 done"}},
		{"an app without logs is an empty read", providers.LogQuery{App: "nothing"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, readAll(t, l, tt.q)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogsRejectsBadInput(t *testing.T) {
	l := newTestLogs(t, t.TempDir(), 1<<20)
	ctx := context.Background()
	if err := l.Write(ctx, []providers.LogEntry{{App: "web", Stream: "s", Message: "a"}, {App: "web", Stream: "s", Message: "b"}}); err != nil {
		t.Fatal(err)
	}
	page, err := l.Read(ctx, providers.LogQuery{App: "web", Limit: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"entry without app", func() error { return l.Write(ctx, []providers.LogEntry{{Stream: "s"}}) }},
		{"entry without stream", func() error { return l.Write(ctx, []providers.LogEntry{{App: "web"}}) }},
		{"query without app", func() error { _, err := l.Read(ctx, providers.LogQuery{}, ""); return err }},
		{"token from another query", func() error {
			_, err := l.Read(ctx, providers.LogQuery{App: "web", Filter: "b", Limit: 1}, page.Next)
			return err
		}},
		{"garbage token", func() error { _, err := l.Read(ctx, providers.LogQuery{App: "web"}, "!!"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestLogsAssignsIDsAndPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l := newTestLogs(t, dir, 1<<20)
	if err := l.Write(ctx, []providers.LogEntry{{App: "web", Stream: "s", Time: t0, Message: "one"}, {App: "web", Stream: "s", Time: t0, Message: "two"}}); err != nil {
		t.Fatal(err)
	}
	l.close()
	reopened := newTestLogs(t, dir, 1<<20)
	page, err := reopened.Read(ctx, providers.LogQuery{App: "web"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2 || page.Entries[0].ID == "" || page.Entries[0].ID == page.Entries[1].ID {
		t.Fatalf("entries after reopen = %+v, want two with distinct IDs", page.Entries)
	}
	if err := reopened.Write(ctx, []providers.LogEntry{{App: "web", Stream: "s", Time: t0.Add(time.Second), Message: "three"}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"one", "two", "three"}, readAll(t, reopened, providers.LogQuery{App: "web"})); diff != "" {
		t.Errorf("messages after reopen and append (-want +got):\n%s", diff)
	}
}

func TestLogsRetentionDropsOldestSegments(t *testing.T) {
	const budget = 8 << 10
	l := newTestLogs(t, t.TempDir(), budget)
	ctx := context.Background()
	const n = 400
	for i := range n {
		e := providers.LogEntry{App: "web", Stream: fmt.Sprint("s", i%3), Time: t0.Add(time.Duration(i) * time.Millisecond), Message: fmt.Sprintf("line %04d", i)}
		if err := l.Write(ctx, []providers.LogEntry{e}); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, l, providers.LogQuery{App: "web"})
	if len(got) == 0 || len(got) == n {
		t.Fatalf("kept %d of %d entries, want some dropped and some kept", len(got), n)
	}
	if diff := cmp.Diff(fmt.Sprintf("line %04d", n-1), got[len(got)-1]); diff != "" {
		t.Errorf("newest entry (-want +got):\n%s", diff)
	}
	a := l.app("web")
	a.mu.Lock()
	size := a.size
	a.mu.Unlock()
	if size > budget {
		t.Errorf("app logs hold %d bytes, budget %d", size, budget)
	}
}

func TestLogsDelete(t *testing.T) {
	l := newTestLogs(t, t.TempDir(), 1<<20)
	ctx := context.Background()
	if err := l.Write(ctx, []providers.LogEntry{{App: "web", Stream: "s", Message: "x"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"existing logs", "missing logs"} {
		if err := l.Delete(ctx, "web"); err != nil {
			t.Fatalf("Delete %s: %v", name, err)
		}
	}
	if got := readAll(t, l, providers.LogQuery{App: "web"}); len(got) != 0 {
		t.Errorf("after Delete read %q, want nothing", got)
	}
}

func TestLogsTail(t *testing.T) {
	l := newTestLogs(t, t.TempDir(), 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	ready := make(chan struct{})
	go func() {
		a := l.app("web")
		for {
			a.mu.Lock()
			n := len(a.subs)
			a.mu.Unlock()
			if n == 1 {
				close(ready)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		for e, err := range l.Tail(ctx, providers.LogQuery{App: "web", Process: "web"}) {
			if err != nil {
				got <- err.Error()
				return
			}
			got <- e.Message
		}
	}()
	<-ready
	if err := l.Write(ctx, []providers.LogEntry{
		{App: "web", Stream: "a", Process: "worker", Message: "skipped"},
		{App: "web", Stream: "b", Process: "web", Message: "followed"},
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("followed", <-got); diff != "" {
		t.Errorf("tailed message (-want +got):\n%s", diff)
	}
}
