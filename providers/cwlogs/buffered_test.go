package cwlogs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// recorder is an API that records the PutLogEvents calls that succeed
// (not the first one to a missing stream, which fails and creates it) and
// can fail them.
type recorder struct {
	cwlogs.API
	mu    sync.Mutex
	calls int
	bytes int // message bytes plus the per-event overhead, over all calls
	fail  []error
}

func (r *recorder) PutLogEvents(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error) {
	r.mu.Lock()
	if len(r.fail) > 0 {
		err := r.fail[0]
		r.fail = r.fail[1:]
		r.mu.Unlock()
		return nil, err
	}
	r.mu.Unlock()
	out, err := r.API.PutLogEvents(ctx, in, opts...)
	if err == nil {
		r.mu.Lock()
		r.calls++
		for _, e := range in.LogEvents {
			r.bytes += len(aws.ToString(e.Message)) + cwlogs.EventOverhead
		}
		r.mu.Unlock()
	}
	return out, err
}

func (r *recorder) failNext(errs ...error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = append(r.fail, errs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

var (
	throttled = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	denied    = &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed"}
)

func newRecorded(t *testing.T) (*recorder, *cwlogs.Logs) {
	_, client := testServer(t)
	rec := &recorder{API: client}
	return rec, cwlogs.New(rec, nil)
}

func readMessages(t *testing.T, l *cwlogs.Logs, app string) []string {
	t.Helper()
	var out []string
	token := ""
	for {
		page, err := l.Read(t.Context(), providers.LogQuery{App: app}, token)
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

func numbered(app string, n int) []providers.LogEntry {
	out := make([]providers.LogEntry, n)
	for i := range out {
		out[i] = entry(app, fmt.Sprintf("line %d", i))
		out[i].Time = clock.Add(time.Duration(i) * time.Millisecond)
	}
	return out
}

func messagesOf(entries []providers.LogEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Message)
	}
	return out
}

func TestBufferedWriterFlushes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  cwlogs.BufferOptions
		lines int
		// calls made by the Writes, then by Close
		wantWrites, wantClose int
	}{
		{"a full buffer by entries is sent before the entry that would overflow it", cwlogs.BufferOptions{MaxEntries: 3}, 7, 2, 1},
		{"a full buffer by bytes is sent before the entry that would overflow it", cwlogs.BufferOptions{MaxBytes: 300}, 7, 3, 1},
		{"a buffer that never fills is sent by Close alone", cwlogs.BufferOptions{}, 7, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, l := newRecorded(t)
			tc.opts.Interval = time.Hour // no background flush in this test
			w := l.NewBufferedWriter(&tc.opts)
			entries := numbered("web", tc.lines)
			for _, e := range entries {
				if err := w.Write(t.Context(), []providers.LogEntry{e}); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			writes := rec.count()
			if err := w.Close(t.Context()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if diff := cmp.Diff([2]int{tc.wantWrites, tc.wantClose}, [2]int{writes, rec.count() - writes}); diff != "" {
				t.Errorf("PutLogEvents calls [by the Writes, by Close] (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(messagesOf(entries), readMessages(t, l, "web")); diff != "" {
				t.Errorf("messages read back (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBufferedWriterFlushesOnInterval(t *testing.T) {
	_, l := newRecorded(t)
	w := l.NewBufferedWriter(&cwlogs.BufferOptions{Interval: 10 * time.Millisecond})
	defer w.Close(context.Background())
	if err := w.Write(t.Context(), numbered("web", 2)); err != nil {
		t.Fatal(err)
	}
	// Neither Flush nor Close is called: the background flush sends them.
	deadline := time.Now().Add(guard)
	for len(readMessages(t, l, "web")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("buffered entries not sent in %v", guard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBufferedWriterErrors(t *testing.T) {
	t.Run("entries of a flush that failed with a temporary error are sent by the next", func(t *testing.T) {
		rec, l := newRecorded(t)
		w := l.NewBufferedWriter(&cwlogs.BufferOptions{Interval: time.Hour})
		entries := numbered("web", 3)
		if err := w.Write(t.Context(), entries); err != nil {
			t.Fatal(err)
		}
		rec.failNext(throttled)
		if err := w.Flush(t.Context()); !errors.Is(err, providers.ErrThrottled) {
			t.Fatalf("Flush while throttled: %v, want an error matching ErrThrottled", err)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if diff := cmp.Diff(messagesOf(entries), readMessages(t, l, "web")); diff != "" {
			t.Errorf("messages read back (-want +got):\n%s", diff)
		}
	})

	t.Run("a background flush error goes to OnError and to the next call", func(t *testing.T) {
		rec, l := newRecorded(t)
		reported := make(chan error, 1)
		w := l.NewBufferedWriter(&cwlogs.BufferOptions{Interval: 5 * time.Millisecond, OnError: func(err error) { reported <- err }})
		defer w.Close(context.Background())
		rec.failNext(denied)
		if err := w.Write(t.Context(), numbered("web", 1)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-reported:
			if !errors.Is(err, providers.ErrPermission) {
				t.Errorf("OnError got %v, want an error matching ErrPermission", err)
			}
		case <-time.After(guard):
			t.Fatalf("OnError not called in %v", guard)
		}
		if err := w.Flush(t.Context()); !errors.Is(err, providers.ErrPermission) {
			t.Errorf("Flush after the failed background flush: %v, want its error", err)
		}
		if err := w.Flush(t.Context()); err != nil {
			t.Errorf("second Flush: %v, want nil (the error is returned once)", err)
		}
	})

	t.Run("an invalid entry buffers nothing", func(t *testing.T) {
		rec, l := newRecorded(t)
		w := l.NewBufferedWriter(nil)
		entries := numbered("web", 2)
		entries[1].Stream = ""
		if err := w.Write(t.Context(), entries); !errors.Is(err, providers.ErrInvalid) {
			t.Fatalf("Write with an entry without a stream: %v, want an error matching ErrInvalid", err)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := rec.count(); n != 0 {
			t.Errorf("%d PutLogEvents calls, want none", n)
		}
	})

	t.Run("a closed writer returns ErrClosed", func(t *testing.T) {
		_, l := newRecorded(t)
		w := l.NewBufferedWriter(nil)
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"Write": w.Write(t.Context(), numbered("web", 1)),
			"Flush": w.Flush(t.Context()),
			"Close": w.Close(t.Context()),
		} {
			if !errors.Is(err, cwlogs.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	})
}
