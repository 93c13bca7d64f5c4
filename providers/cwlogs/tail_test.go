package cwlogs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/cwlogstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// guard bounds every wait of these tests, so that a broken tail fails
// instead of hanging; no assertion depends on it.
const guard = 30 * time.Second

// tailRun is a tail running in the background.
type tailRun struct {
	t       *testing.T
	entries chan providers.LogEntry
	ended   chan error
}

func startTail(t *testing.T, l *cwlogs.Logs, q providers.LogQuery) *tailRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &tailRun{t: t, entries: make(chan providers.LogEntry, 1000), ended: make(chan error, 1)}
	go func() {
		var last error
		for e, err := range l.Tail(ctx, q) {
			if err != nil {
				last = err
				break
			}
			r.entries <- e
		}
		r.ended <- last
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.ended:
		case <-time.After(guard):
			t.Errorf("tail still running after its context ended")
		}
	})
	return r
}

// next returns the next entry the tail yields.
func (r *tailRun) next() providers.LogEntry {
	r.t.Helper()
	select {
	case e := <-r.entries:
		return e
	case err := <-r.ended:
		r.t.Fatalf("tail ended: %v", err)
	case <-time.After(guard):
		r.t.Fatalf("tail yielded nothing for %v", guard)
	}
	return providers.LogEntry{}
}

// until returns the messages the tail yields up to and including last.
func (r *tailRun) until(last string) []string {
	r.t.Helper()
	var got []string
	for {
		e := r.next()
		if strings.HasPrefix(e.Message, "probe") {
			continue
		}
		got = append(got, e.Message)
		if e.Message == last {
			return got
		}
	}
}

// running writes probe entries until the tail yields one, so that what is
// written next is known to be written after the tail started.
func (r *tailRun) running(l *cwlogs.Logs, app string) {
	r.t.Helper()
	deadline := time.Now().Add(guard)
	for i := 0; time.Now().Before(deadline); i++ {
		write(r.t, l, entry(app, fmt.Sprintf("probe %d", i)))
		select {
		case e := <-r.entries:
			if strings.HasPrefix(e.Message, "probe") {
				r.drainProbes()
				return
			}
			r.t.Fatalf("tail yielded %q before any probe", e.Message)
		case err := <-r.ended:
			r.t.Fatalf("tail ended: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.t.Fatalf("tail yielded no probe in %v", guard)
}

// drainProbes discards probe entries already yielded.
func (r *tailRun) drainProbes() {
	for {
		select {
		case e := <-r.entries:
			if !strings.HasPrefix(e.Message, "probe") {
				r.t.Fatalf("tail yielded %q among probes", e.Message)
			}
		default:
			return
		}
	}
}

var clock = time.Now().Truncate(time.Second)

func entry(app, msg string) providers.LogEntry {
	return providers.LogEntry{Time: clock, App: app, Stream: "task-1", Process: "web", Release: "r1", Message: msg}
}

func write(t *testing.T, l *cwlogs.Logs, entries ...providers.LogEntry) {
	t.Helper()
	if err := l.Write(t.Context(), entries); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// putRaw writes lines the way the awslogs driver does: no envelope, one
// timestamp for all.
func putRaw(t *testing.T, client *cloudwatchlogs.Client, group, stream string, lines ...string) {
	t.Helper()
	var events []types.InputLogEvent
	for _, line := range lines {
		events = append(events, types.InputLogEvent{Message: aws.String(line), Timestamp: aws.Int64(clock.UnixMilli())})
	}
	ctx := t.Context()
	client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)})
	if _, err := client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: events}); err != nil {
		t.Fatalf("PutLogEvents: %v", err)
	}
}

func TestTailUsesLiveTail(t *testing.T) {
	srv, client := testServer(t)
	l := cwlogs.New(client, &cwlogs.Options{TailPollInterval: 20 * time.Millisecond})
	r := startTail(t, l, providers.LogQuery{App: "web", Process: "web", Filter: "keep"})
	<-srv.SessionStarted()
	polls := srv.Calls("FilterLogEvents")
	write(t, l, entry("web", "keep probe"))
	if got := r.next().Message; got != "keep probe" {
		t.Fatalf("first entry %q, want the probe", got)
	}
	other := entry("web", "keep, but another process")
	other.Process = "worker"
	write(t, l, entry("web", "keep 1"), entry("web", "drop 2"), other, entry("web", "keep 3"))
	if diff := cmp.Diff([]string{"keep 1", "keep 3"}, r.until("keep 3")); diff != "" {
		t.Errorf("tailed messages (-want +got):\n%s", diff)
	}
	// The session, not polling, delivered them: the only FilterLogEvents
	// calls are those recording what existed when the session started.
	if n := srv.Calls("FilterLogEvents") - polls; n > 1 {
		t.Errorf("%d FilterLogEvents calls while the session ran, want at most the 1 of the baseline", n)
	}
	if got := srv.Sessions(); got != 1 {
		t.Errorf("%d live tail sessions, want 1", got)
	}
}

func TestTailFallsBackToPolling(t *testing.T) {
	for _, tc := range []struct {
		name string
		live cwlogstest.LiveTail
	}{
		{"when too many sessions run (LimitExceededException)", cwlogstest.LiveTail{Error: "LimitExceededException"}},
		{"when the endpoint does not implement StartLiveTail", cwlogstest.LiveTail{Error: "UnrecognizedClientException"}},
		{"when the session samples events away", cwlogstest.LiveTail{Sampled: true}},
		{"when the session times out", cwlogstest.LiveTail{EndAfter: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, client := testServer(t)
			srv.SetLiveTail(tc.live)
			l := cwlogs.New(client, &cwlogs.Options{TailPollInterval: 20 * time.Millisecond})
			r := startTail(t, l, providers.LogQuery{App: "web"})
			r.running(l, "web")
			write(t, l, entry("web", "one"))
			write(t, l, entry("web", "two"), entry("web", "three"))
			if diff := cmp.Diff([]string{"one", "two", "three"}, r.until("three")); diff != "" {
				t.Errorf("tailed messages (-want +got):\n%s", diff)
			}
			if got := srv.Sessions(); got != 0 {
				t.Errorf("%d live tail sessions still open after the fallback", got)
			}
		})
	}
}

func TestTailDedupesAcrossTheSwitch(t *testing.T) {
	for _, tc := range []struct {
		name string
		// endAfter counts the events the session delivers before it times
		// out: the probe, then the lines.
		endAfter int
	}{
		{"an entry delivered by the session is not delivered again by polling", 3},
		{"identical raw lines are each delivered once: one by the session, one by polling", 2},
		{"identical raw lines both delivered by the session are not delivered by polling", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, client := testServer(t)
			srv.SetLiveTail(cwlogstest.LiveTail{EndAfter: tc.endAfter})
			l := cwlogs.New(client, &cwlogs.Options{TailPollInterval: 20 * time.Millisecond})
			r := startTail(t, l, providers.LogQuery{App: "web"})
			<-srv.SessionStarted()
			write(t, l, entry("web", "probe"))
			if got := r.next().Message; got != "probe" {
				t.Fatalf("first entry %q, want the probe", got)
			}
			var want []string
			if strings.HasPrefix(tc.name, "an entry") {
				write(t, l, entry("web", "a"), entry("web", "b"))
				want = []string{"a", "b", "after the switch"}
			} else {
				putRaw(t, client, l.Group("web"), cwlogs.StreamName("web", "task-2"), "same line", "same line")
				want = []string{"same line", "same line", "after the switch"}
			}
			// Once the session has ended, the polling tail delivers this.
			for deadline := time.Now().Add(guard); srv.Sessions() > 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the session did not end in %v", guard)
				}
			}
			after := entry("web", "after the switch")
			after.Time = clock.Add(time.Second) // after the lines in time order too
			write(t, l, after)
			if diff := cmp.Diff(want, r.until("after the switch")); diff != "" {
				t.Errorf("tailed messages (-want +got):\n%s", diff)
			}
		})
	}
}
