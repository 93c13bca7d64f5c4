package cwlogs_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

func TestStreamNames(t *testing.T) {
	for _, tc := range []struct {
		name, process, stream, want string
	}{
		{"a task's stream follows the awslogs layout prefix/container/task", "web", "0123abcd", "web/web/0123abcd"},
		{"platform events", providers.StreamPlatform, providers.StreamPlatform, "convox/convox/convox"},
		{"no process is written -", "", "web-1", "-/-/web-1"},
		{"a process named - is escaped", "-", "x", "%2D/%2D/x"},
		{"characters a stream name cannot hold are escaped", "a:b", "c*d%e", "a%3Ab/a%3Ab/c%2Ad%25e"},
		{"a slash in the process is escaped, in the stream it is kept", "a/b", "c/d", "a%2Fb/a%2Fb/c/d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cwlogs.StreamName(tc.process, tc.stream)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("StreamName (-want +got):\n%s", diff)
			}
			p, s := cwlogs.ParseStreamName(got)
			if diff := cmp.Diff([2]string{tc.process, tc.stream}, [2]string{p, s}); diff != "" {
				t.Errorf("ParseStreamName round trip (-want +got):\n%s", diff)
			}
		})
	}
	for _, tc := range []struct {
		name, stream, wantProcess, wantStream string
	}{
		{"a stream of another layout is a stream of no process", "i-0abc/var/log/app", "", "i-0abc/var/log/app"},
		{"a name without slashes", "legacy", "", "legacy"},
		{"a malformed escape keeps the whole name", "a/a/b%zz", "", "a/a/b%zz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, s := cwlogs.ParseStreamName(tc.stream)
			if diff := cmp.Diff([2]string{tc.wantProcess, tc.wantStream}, [2]string{p, s}); diff != "" {
				t.Errorf("ParseStreamName (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadMapsAwslogsLines(t *testing.T) {
	_, client := testServer(t)
	l := cwlogs.New(client, nil)
	if err := l.Write(t.Context(), []providers.LogEntry{entry("web", "from Write")}); err != nil {
		t.Fatal(err)
	}
	// A line the awslogs driver wrote for task 0123 of process worker: no
	// envelope, so no release and an ID made from the event's.
	putRaw(t, client, l.Group("web"), "worker/worker/0123", `{"level":"info","msg":"raw JSON line"}`)
	page, err := l.Read(t.Context(), providers.LogQuery{App: "web"}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []providers.LogEntry{
		{Time: clock, App: "web", Stream: "task-1", Process: "web", Release: "r1", Message: "from Write"},
		{Time: clock, App: "web", Stream: "0123", Process: "worker", Message: `{"level":"info","msg":"raw JSON line"}`},
	}
	if diff := cmp.Diff(want, page.Entries, cmpopts.IgnoreFields(providers.LogEntry{}, "ID"), cmpopts.SortSlices(func(a, b providers.LogEntry) bool { return a.Message < b.Message })); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	for _, e := range page.Entries {
		if e.ID == "" {
			t.Errorf("entry %q has no ID", e.Message)
		}
	}
}

// patterns records the filter patterns of FilterLogEvents calls.
type patterns struct {
	cwlogs.API
	mu   sync.Mutex
	sent []string
}

func (p *patterns) FilterLogEvents(ctx context.Context, in *cloudwatchlogs.FilterLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error) {
	p.mu.Lock()
	p.sent = append(p.sent, aws.ToString(in.FilterPattern))
	p.mu.Unlock()
	return p.API.FilterLogEvents(ctx, in, opts...)
}

func TestFilterPatterns(t *testing.T) {
	_, client := testServer(t)
	api := &patterns{API: client}
	l := cwlogs.New(api, nil)
	var all []providers.LogEntry
	for _, msg := range []string{`GET /health 200`, `said "hi"`, `path C:\tmp`, `tab	here`, `<b>&amp;</b>`, `ünï`} {
		all = append(all, entry("web", msg))
	}
	if err := l.Write(t.Context(), all); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, filter, wantPattern string
		want                      []string
	}{
		{"a plain term is sent quoted", "/health", `"/health"`, []string{`GET /health 200`}},
		{"HTML characters, which the envelope keeps as they are, are sent", "<b>&amp;", `"<b>&amp;"`, []string{`<b>&amp;</b>`}},
		{"non-ASCII text is sent", "ünï", `"ünï"`, []string{`ünï`}},
		{"a double quote is filtered on the client only", `"hi"`, "", []string{`said "hi"`}},
		{"a backslash, escaped in the envelope, is filtered on the client only", `C:\tmp`, "", []string{`path C:\tmp`}},
		{"a control character, escaped in the envelope, is filtered on the client only", "tab\there", "", []string{"tab\there"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api.mu.Lock()
			api.sent = nil
			api.mu.Unlock()
			page, err := l.Read(t.Context(), providers.LogQuery{App: "web", Filter: tc.filter}, "")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, messagesOf(page.Entries)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{tc.wantPattern}, api.sent); diff != "" {
				t.Errorf("filter patterns sent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    error
		entries []providers.LogEntry
		want    error
	}{
		{"throttling is ErrThrottled", &smithy.GenericAPIError{Code: "ThrottlingException"}, numbered("web", 1), providers.ErrThrottled},
		{"missing permissions are ErrPermission", &smithy.GenericAPIError{Code: "AccessDeniedException"}, numbered("web", 1), providers.ErrPermission},
		{"a message over the event size is ErrInvalid before any call", nil, []providers.LogEntry{entry("web", strings.Repeat("x", cwlogs.MaxEventBytes))}, providers.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, l := newRecorded(t)
			if tc.fail != nil {
				rec.failNext(tc.fail)
			}
			err := l.Write(t.Context(), tc.entries)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Write: %v, want an error matching %v", err, tc.want)
			}
			var api smithy.APIError
			if tc.fail != nil && !errors.As(err, &api) {
				t.Errorf("error %v does not unwrap to the smithy.APIError", err)
			}
			if tc.fail == nil && rec.count() != 0 {
				t.Errorf("%d PutLogEvents calls, want none", rec.count())
			}
		})
	}
}
