package logforward_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/logforward"
	"github.com/convox-go/convox/providers"
)

// intake is a log service's HTTP intake that records the lines of each
// request and answers with statuses[i] (200 after the list).
type intake struct {
	*httptest.Server
	statuses []int

	mu       sync.Mutex
	requests [][]logforward.Line
	headers  []http.Header
	calls    int
}

func newIntake(t *testing.T, statuses ...int) *intake {
	in := &intake{statuses: statuses}
	in.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		in.mu.Lock()
		defer in.mu.Unlock()
		i := in.calls
		in.calls++
		if i < len(in.statuses) && in.statuses[i] != http.StatusOK {
			w.WriteHeader(in.statuses[i])
			return
		}
		var lines []logforward.Line
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var l logforward.Line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("line %q: %v", sc.Bytes(), err)
			}
			lines = append(lines, l)
		}
		in.requests = append(in.requests, lines)
		in.headers = append(in.headers, r.Header.Clone())
	}))
	t.Cleanup(in.Close)
	return in
}

// sizes returns the number of lines of each accepted request.
func (in *intake) sizes() []int {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []int
	for _, r := range in.requests {
		out = append(out, len(r))
	}
	return out
}

func entries(n, size int) []providers.LogEntry {
	var out []providers.LogEntry
	for i := range n {
		out = append(out, line("web", "t1", fmt.Sprintf("%05d %s", i, strings.Repeat("x", size)), time.Duration(i%50)*time.Second))
	}
	return out
}

// lineLen is the size of e's JSON line, newline included.
func lineLen(e providers.LogEntry) int {
	b, _ := json.Marshal(logforward.Line{Time: e.Time.UTC(), App: e.App, Process: e.Process, Release: e.Release, Stream: e.Stream, ID: e.ID, Message: e.Message})
	return len(b) + 1
}

func TestHTTPSinkBatches(t *testing.T) {
	tests := []struct {
		name    string
		sink    logforward.HTTP
		entries []providers.LogEntry
		want    []int
	}{
		{"lines up to the line limit go in one request", logforward.HTTP{MaxBatchLines: 10}, entries(25, 10), []int{10, 10, 5}},
		{"the byte limit splits requests", logforward.HTTP{MaxBatchBytes: 3*lineLen(entries(1, 200)[0]) + 10}, entries(10, 200), []int{3, 3, 3, 1}},
		{"a line longer than the byte limit goes alone", logforward.HTTP{MaxBatchBytes: 100}, entries(2, 500), []int{1, 1}},
		{"no entries, no request", logforward.HTTP{}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newIntake(t)
			tt.sink.URL = in.URL + "/v1/logs?token=secret"
			if err := tt.sink.Send(t.Context(), tt.entries); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, in.sizes()); diff != "" {
				t.Errorf("lines per request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPSinkLines(t *testing.T) {
	in := newIntake(t)
	sink := logforward.HTTP{URL: in.URL, Header: http.Header{"authorization": {"Bearer k"}}}
	e := providers.LogEntry{ID: "00a1", Time: t0, App: "web", Process: "web", Release: "R3", Stream: "t1", Message: `<b> "quoted" & done`}
	if err := sink.Send(t.Context(), []providers.LogEntry{e}); err != nil {
		t.Fatal(err)
	}
	want := [][]logforward.Line{{{Time: t0, App: "web", Process: "web", Release: "R3", Stream: "t1", ID: "00a1", Message: `<b> "quoted" & done`}}}
	if diff := cmp.Diff(want, in.requests); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if got := in.headers[0].Get("Content-Type") + " " + in.headers[0].Get("Authorization"); got != "application/x-ndjson Bearer k" {
		t.Errorf("headers = %q", got)
	}
}

func TestHTTPSinkFailures(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		want     error
		calls    int
	}{
		{"a 503 is retried", []int{503, 200}, nil, 2},
		{"a 429 is retried", []int{429, 200}, nil, 2},
		{"retries stop after MaxAttempts", []int{500, 500, 500, 500}, providers.ErrUnavailable, 3},
		{"a 413 is never retried and says the batch cannot be taken", []int{413}, providers.ErrInvalid, 1},
		{"a 401 is not retried here but the entries come again", []int{401}, providers.ErrPermission, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newIntake(t, tt.statuses...)
			sink := logforward.HTTP{URL: in.URL + "/intake/secret-path", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
			err := sink.Send(t.Context(), entries(1, 1))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Send = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret-path") {
				t.Errorf("error %q shows the URL's path", err)
			}
			if diff := cmp.Diff(tt.calls, in.calls); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a relative URL is invalid before any request", func(t *testing.T) {
		if err := (logforward.HTTP{URL: "/logs"}).Send(t.Context(), entries(1, 1)); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("Send = %v, want ErrInvalid", err)
		}
	})
	t.Run("String hides the URL's path and the headers", func(t *testing.T) {
		s := logforward.HTTP{URL: "https://logs.example.com/in/TOKEN", Header: http.Header{"Authorization": {"Bearer k"}}}
		if diff := cmp.Diff("logforward.HTTP{URL:https://logs.example.com/<redacted> Headers:1}", fmt.Sprintf("%+v", s)); diff != "" {
			t.Errorf("String (-want +got):\n%s", diff)
		}
	})
}
