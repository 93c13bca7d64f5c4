package providers_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

func TestLogQueryMatch(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := providers.LogEntry{ID: "1", Time: t0, App: "web", Stream: "task-1", Process: "web", Release: "R1", Message: "GET /health 200"}
	for _, tc := range []struct {
		name string
		q    providers.LogQuery
		want bool
	}{
		{"the app alone selects its entries", providers.LogQuery{App: "web"}, true},
		{"another app's query does not", providers.LogQuery{App: "api"}, false},
		{"Start is inclusive", providers.LogQuery{App: "web", Start: t0}, true},
		{"an entry before Start is out", providers.LogQuery{App: "web", Start: t0.Add(time.Nanosecond)}, false},
		{"End is exclusive", providers.LogQuery{App: "web", End: t0}, false},
		{"an entry before End is in", providers.LogQuery{App: "web", End: t0.Add(time.Nanosecond)}, true},
		{"Filter is a case-sensitive substring", providers.LogQuery{App: "web", Filter: "/health"}, true},
		{"Filter of another case does not match", providers.LogQuery{App: "web", Filter: "get"}, false},
		{"Process must be equal", providers.LogQuery{App: "web", Process: "worker"}, false},
		{"Release must be equal", providers.LogQuery{App: "web", Release: "R2"}, false},
		{"Stream must be equal", providers.LogQuery{App: "web", Stream: "task-2"}, false},
		{"every field set and holding", providers.LogQuery{App: "web", Start: t0, End: t0.Add(time.Second), Filter: "200", Process: "web", Release: "R1", Stream: "task-1", Limit: 1}, true},
		{"Limit plays no part", providers.LogQuery{App: "web", Limit: -1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.q.Match(e); got != tc.want {
				t.Errorf("%+v.Match = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

func TestLogQueryFingerprint(t *testing.T) {
	base := providers.LogQuery{App: "web", Filter: "x"}
	for _, tc := range []struct {
		name  string
		other providers.LogQuery
		same  bool
	}{
		{"an equal query has the same fingerprint", providers.LogQuery{App: "web", Filter: "x"}, true},
		{"Limit is not part of it", providers.LogQuery{App: "web", Filter: "x", Limit: 5}, true},
		{"another filter changes it", providers.LogQuery{App: "web", Filter: "y"}, false},
		{"another app changes it", providers.LogQuery{App: "api", Filter: "x"}, false},
		{"a start changes it", providers.LogQuery{App: "web", Filter: "x", Start: time.Unix(1, 0)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.same, base.Fingerprint() == tc.other.Fingerprint()); diff != "" {
				t.Errorf("same fingerprint (-want +got):\n%s", diff)
			}
		})
	}
	if got := len(base.Fingerprint()); got != 16 {
		t.Errorf("fingerprint %q has %d characters, want 16", base.Fingerprint(), got)
	}
}
