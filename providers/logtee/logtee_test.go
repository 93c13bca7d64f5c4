package logtee_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/logtee"
	"github.com/convox-go/convox/providers/providertest"
)

func TestConformance(t *testing.T) {
	for _, cutover := range []bool{false, true} {
		t.Run(map[bool]string{false: "teeing", true: "cut over"}[cutover], func(t *testing.T) {
			providertest.TestLogs(t, providertest.LogsHarness{New: func(t *testing.T) providers.Logs {
				return logtee.New(fake.New(nil).Logs(), fake.New(nil).Logs(), &logtee.Options{CutOver: cutover})
			}})
		})
	}
}

// readAll returns the messages of every page of q.
func readAll(t *testing.T, l providers.Logs, q providers.LogQuery, limit int) []string {
	t.Helper()
	q.Limit = limit
	var out []string
	token := ""
	for {
		page, err := l.Read(context.Background(), q, token)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for _, e := range page.Entries {
			out = append(out, e.Message)
		}
		if page.Next == "" {
			return out
		}
		token = page.Next
	}
}

func TestMigration(t *testing.T) {
	ctx := context.Background()
	old, new := fake.New(nil).Logs(), fake.New(nil).Logs()
	since := time.Now().Truncate(time.Millisecond)
	entry := func(msg string, at time.Duration) providers.LogEntry {
		return providers.LogEntry{App: "web", Stream: "t1", Process: "web", Time: since.Add(at), Message: msg}
	}
	// Before the tee: only the old provider has these.
	if err := old.Write(ctx, []providers.LogEntry{entry("before-1", -2*time.Minute), entry("before-2", -time.Minute)}); err != nil {
		t.Fatal(err)
	}
	tee := logtee.New(old, new, &logtee.Options{Since: since})
	if err := tee.Write(ctx, []providers.LogEntry{entry("during-1", time.Second), entry("during-2", 2*time.Second)}); err != nil {
		t.Fatal(err)
	}
	tee.Cutover()
	if err := tee.Write(ctx, []providers.LogEntry{entry("after", 3*time.Second)}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		q     providers.LogQuery
		limit int
		want  []string
	}{
		{"reads across the switch once each, in time order", providers.LogQuery{App: "web"}, 0, []string{"before-1", "before-2", "during-1", "during-2", "after"}},
		{"pages of one entry continue across the switch", providers.LogQuery{App: "web"}, 1, []string{"before-1", "before-2", "during-1", "during-2", "after"}},
		{"a range after the switch reads the new provider only", providers.LogQuery{App: "web", Start: since}, 0, []string{"during-1", "during-2", "after"}},
		{"a range before the switch reads the old provider only", providers.LogQuery{App: "web", End: since}, 0, []string{"before-1", "before-2"}},
		{"filters apply on both sides", providers.LogQuery{App: "web", Filter: "-2"}, 0, []string{"before-2", "during-2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, readAll(t, tee, tc.q, tc.limit)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("the cutover stops writes to the old provider", func(t *testing.T) {
		want := []string{"before-1", "before-2", "during-1", "during-2"}
		if diff := cmp.Diff(want, readAll(t, old, providers.LogQuery{App: "web"}, 0)); diff != "" {
			t.Errorf("old provider (-want +got):\n%s", diff)
		}
	})

	t.Run("an entry has one ID in both providers", func(t *testing.T) {
		o, _ := old.Read(ctx, providers.LogQuery{App: "web", Start: since}, "")
		n, _ := new.Read(ctx, providers.LogQuery{App: "web", Start: since, End: since.Add(3 * time.Second)}, "")
		ids := func(es []providers.LogEntry) []string {
			var s []string
			for _, e := range es {
				s = append(s, e.ID)
			}
			return s
		}
		if diff := cmp.Diff(ids(o.Entries), ids(n.Entries)); diff != "" || len(o.Entries) != 2 {
			t.Errorf("IDs differ between providers (-old +new):\n%s", diff)
		}
	})

	t.Run("a foreign token is invalid", func(t *testing.T) {
		if _, err := tee.Read(ctx, providers.LogQuery{App: "web"}, "bogus"); err == nil {
			t.Error("Read with a foreign token succeeded")
		}
	})
}
