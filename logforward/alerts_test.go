package logforward_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/logforward"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// notifications records what it is asked to deliver; fail, when set,
// fails the next calls.
type notifications struct {
	mu   sync.Mutex
	got  []providers.Notification
	fail int
}

func (n *notifications) Notify(_ context.Context, x providers.Notification) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail > 0 {
		n.fail--
		return fmt.Errorf("%w: HTTP 503", providers.ErrUnavailable)
	}
	n.got = append(n.got, x)
	return nil
}

func (n *notifications) summaries() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, x := range n.got {
		out = append(out, x.App+" "+x.Summary)
	}
	return out
}

// line is an entry of app web.
func line(process, task, msg string, at time.Duration) providers.LogEntry {
	return providers.LogEntry{ID: task + msg, App: "web", Process: process, Stream: task, Release: "R3", Message: msg, Time: t0.Add(at)}
}

func TestAlerts(t *testing.T) {
	var crashLoop []providers.LogEntry
	for i := range 50 {
		task := fmt.Sprintf("t%d", i/10)
		crashLoop = append(crashLoop, line("web", task, "starting", time.Duration(i)*time.Second), line("web", task, "panic: nil map", time.Duration(i)*time.Second))
	}
	rules := []logforward.Rule{{Name: "panic", Pattern: "panic"}, {Name: "oom", Pattern: `"out of memory"`, Process: "worker"}}
	tests := []struct {
		name    string
		batches [][]providers.LogEntry
		want    []string
	}{
		{"a crash loop across restarting tasks is one alert", [][]providers.LogEntry{crashLoop},
			[]string{"web panic: 50 matching lines in web (first from t0)"}},
		{"later lines within the window raise none; after it, one more", [][]providers.LogEntry{
			{line("web", "t1", "panic: a", 0)},
			{line("web", "t2", "panic: b", 14*time.Minute)},
			{line("web", "t3", "panic: c", 15*time.Minute)},
		}, []string{"web panic: 1 matching line in web (first from t1)", "web panic: 1 matching line in web (first from t3)"}},
		{"each process and each rule alerts on its own", [][]providers.LogEntry{{
			line("web", "t1", "panic: a", 0), line("worker", "t2", "panic: b", 0), line("worker", "t2", "fatal: out of memory", 0),
		}}, []string{"web panic: 1 matching line in web (first from t1)", "web panic: 1 matching line in worker (first from t2)", "web oom: 1 matching line in worker (first from t2)"}},
		{"a rule of one process ignores the others", [][]providers.LogEntry{{line("web", "t1", "out of memory", 0)}}, nil},
		{"lines that match no rule raise nothing", [][]providers.LogEntry{{line("web", "t1", "GET / 200", 0)}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &notifications{}
			a, err := logforward.NewAlerts(n, rules, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range tt.batches {
				if err := a.Send(t.Context(), b); err != nil {
					t.Fatalf("Send: %v", err)
				}
			}
			if diff := cmp.Diff(tt.want, n.summaries()); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAlertNotification(t *testing.T) {
	n := &notifications{}
	a, err := logforward.NewAlerts(n, []logforward.Rule{{Name: "panic", Pattern: "panic"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	long := "panic: " + strings.Repeat("é", 2000)
	if err := a.Send(t.Context(), []providers.LogEntry{line("web", "t1", long, 0)}); err != nil {
		t.Fatal(err)
	}
	want := []providers.Notification{{
		Kind: providers.NotifyLogAlert, App: "web", Release: "R3", Time: t0,
		Summary: "panic: 1 matching line in web (first from t1)",
		Reason:  string([]rune(long)[:logforward.MaxAlertLine-1]) + "…",
	}}
	if diff := cmp.Diff(want, n.got); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}

func TestAlertFailureIsRetried(t *testing.T) {
	n := &notifications{fail: 1}
	a, err := logforward.NewAlerts(n, []logforward.Rule{{Name: "panic", Pattern: "panic"}}, &logforward.AlertOptions{Store: fake.New(nil).Store()})
	if err != nil {
		t.Fatal(err)
	}
	batch := []providers.LogEntry{line("web", "t1", "panic: a", 0)}
	if err := a.Send(t.Context(), batch); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("Send with a failing notifier = %v, want its error", err)
	}
	if err := a.Send(t.Context(), batch); err != nil {
		t.Fatalf("retried Send = %v", err)
	}
	if diff := cmp.Diff([]string{"web panic: 1 matching line in web (first from t1)"}, n.summaries()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

func TestAlertsShareTheirRateLimitThroughAStore(t *testing.T) {
	store := fake.New(nil).Store()
	n := &notifications{}
	rules := []logforward.Rule{{Name: "panic", Pattern: "panic"}}
	// Two handler instances, as Lambda runs them concurrently.
	var instances []*logforward.Alerts
	for range 2 {
		a, err := logforward.NewAlerts(n, rules, &logforward.AlertOptions{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		instances = append(instances, a)
	}
	var wg sync.WaitGroup
	for i, a := range instances {
		wg.Go(func() {
			if err := a.Send(context.Background(), []providers.LogEntry{line("web", fmt.Sprint("t", i), "panic: x", time.Duration(i)*time.Second)}); err != nil {
				t.Errorf("Send: %v", err)
			}
		})
	}
	wg.Wait()
	if got := len(n.summaries()); got != 1 {
		t.Errorf("alerts = %v, want one for both instances", n.summaries())
	}
	// After the window, the other instance alerts again.
	if err := instances[1].Send(t.Context(), []providers.LogEntry{line("web", "t9", "panic: y", 20*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got := len(n.summaries()); got != 2 {
		t.Errorf("alerts after the window = %v, want two", n.summaries())
	}
}

func TestNewAlertsRefuses(t *testing.T) {
	n := &notifications{}
	tests := []struct {
		name  string
		n     providers.Notifier
		rules []logforward.Rule
	}{
		{"no notifier", nil, []logforward.Rule{{Name: "a", Pattern: "x"}}},
		{"no rules", n, nil},
		{"a rule without a name", n, []logforward.Rule{{Pattern: "x"}}},
		{"a rule without a pattern", n, []logforward.Rule{{Name: "a"}}},
		{"a rule whose pattern does not compile", n, []logforward.Rule{{Name: "a", Pattern: `"open`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := logforward.NewAlerts(tt.n, tt.rules, nil); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("NewAlerts = %v, want ErrInvalid", err)
			}
		})
	}
}
