package cwlogs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// unmergedServer is a CloudWatch Logs endpoint of FilterLogEvents alone
// that returns a group's streams one after the other, each in time order,
// instead of merged by time: as the service did for interleaved=false
// before 2019, and as some emulators still do. It honours startTime,
// endTime, limit and its own nextToken.
type unmergedServer struct {
	// mergeWhenAsked makes it merge the streams when a request sets
	// interleaved, as moto does.
	mergeWhenAsked bool
	// noTokens makes it return no nextToken, even for a full response.
	noTokens bool

	mu          sync.Mutex
	streams     map[string][]event // by stream name
	interleaved []bool             // the interleaved flag of each request
}

type event struct {
	Stream    string `json:"logStreamName"`
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
	ID        string `json:"eventId"`
}

func (s *unmergedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if target := r.Header.Get("X-Amz-Target"); target != "Logs_20140328.FilterLogEvents" {
		http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
		return
	}
	var in struct {
		StartTime   *int64
		EndTime     *int64
		Limit       *int
		NextToken   string
		Interleaved *bool
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, `{"__type":"InvalidParameterException"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	merge := in.Interleaved != nil && *in.Interleaved
	s.interleaved = append(s.interleaved, merge)
	var all []event
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range s.streams {
			if !yield(n) {
				return
			}
		}
	}) {
		for _, e := range s.streams[name] {
			if in.StartTime != nil && e.Timestamp < *in.StartTime || in.EndTime != nil && e.Timestamp > *in.EndTime {
				continue
			}
			all = append(all, e)
		}
	}
	if merge && s.mergeWhenAsked {
		slices.SortStableFunc(all, func(a, b event) int { return int(a.Timestamp - b.Timestamp) })
	}
	first := 0
	if in.NextToken != "" {
		first, _ = strconv.Atoi(in.NextToken)
	}
	limit := 10000
	if in.Limit != nil {
		limit = *in.Limit
	}
	last := min(first+limit, len(all))
	out := struct {
		Events    []event `json:"events"`
		NextToken string  `json:"nextToken,omitempty"`
	}{Events: all[first:last]}
	if last < len(all) && !s.noTokens {
		out.NextToken = strconv.Itoa(last)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

// start serves s and returns a Logs reading from it.
func (s *unmergedServer) start(t *testing.T) *cwlogs.Logs {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return cwlogs.New(cloudwatchlogs.NewFromConfig(awstest.ConfigFor(srv.URL)), nil)
}

// interleavedFlags returns the interleaved flag of every request so far.
func (s *unmergedServer) interleavedFlags() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.interleaved)
}

// interleavedStreams returns three streams of an app whose events
// interleave in time, some sharing a millisecond across streams, and the
// messages in time order (then by stream name).
func interleavedStreams(base time.Time) (map[string][]event, []string) {
	streams := map[string][]event{}
	type msg struct {
		ts     int64
		stream string
		text   string
	}
	var all []msg
	for i, name := range []string{"web/web/a", "web/web/b", "worker/worker/c"} {
		for j := range 7 {
			ts := base.UnixMilli() + int64(3*j+i)
			if name == "worker/worker/c" && j%2 == 0 {
				ts = base.UnixMilli() + int64(3*j) // the same millisecond as stream a
			}
			text := fmt.Sprintf("%s #%d", name[strings.LastIndex(name, "/")+1:], j)
			streams[name] = append(streams[name], event{Stream: name, Timestamp: ts, Message: text, ID: fmt.Sprintf("%s-%d", name, j)})
			all = append(all, msg{ts, name, text})
		}
	}
	slices.SortStableFunc(all, func(a, b msg) int {
		if a.ts != b.ts {
			return int(a.ts - b.ts)
		}
		return strings.Compare(a.stream, b.stream)
	})
	var want []string
	for _, m := range all {
		want = append(want, m.text)
	}
	return streams, want
}

// readPages reads every page of q and returns the messages in order.
func readPages(t *testing.T, l *cwlogs.Logs, q providers.LogQuery) ([]string, error) {
	t.Helper()
	var got []string
	token := ""
	for range 100 {
		page, err := l.Read(t.Context(), q, token)
		if err != nil {
			return got, err
		}
		for _, e := range page.Entries {
			got = append(got, e.Message)
		}
		if page.Next == "" {
			return got, nil
		}
		token = page.Next
	}
	t.Fatal("Read: no end after 100 pages")
	return nil, nil
}

func TestReadNeverDropsEventsReturnedOutOfTimeOrder(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	streams, all := interleavedStreams(base)
	for _, tc := range []struct {
		name           string
		mergeWhenAsked bool
		limits         []int
	}{
		// Read asks every request to interleave, at every page size.
		{"an endpoint merging the streams only when asked is asked, at every page size", true, []int{1, 2, 3, 4, 7, 8, 20, 100}},
		// An endpoint ignoring the flag is caught when a page's responses
		// go back in time: here, when the page is larger than the first
		// stream (7 events).
		{"an endpoint ignoring interleaved has a page that goes back in time merged", false, []int{8, 9, 20, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range tc.limits {
				t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
					srv := &unmergedServer{mergeWhenAsked: tc.mergeWhenAsked, streams: streams}
					l := srv.start(t)
					got, err := readPages(t, l, providers.LogQuery{App: "web", Limit: limit})
					if err != nil {
						t.Fatalf("Read: %v", err)
					}
					if diff := cmp.Diff(all, got); diff != "" {
						t.Errorf("messages over every page (-want +got):\n%s", diff)
					}
					for i, flag := range srv.interleavedFlags() {
						if !flag {
							t.Errorf("request %d did not set interleaved", i+1)
						}
					}
				})
			}
		})
	}

	t.Run("a Start and an End bound the merged window", func(t *testing.T) {
		srv := &unmergedServer{streams: streams}
		l := srv.start(t)
		q := providers.LogQuery{App: "web", Start: base.Add(4 * time.Millisecond), End: base.Add(10 * time.Millisecond)}
		got, err := readPages(t, l, q)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		var want []string
		for _, e := range slices.Concat(streams["web/web/a"], streams["web/web/b"], streams["worker/worker/c"]) {
			if ts := time.UnixMilli(e.Timestamp); !ts.Before(q.Start) && ts.Before(q.End) {
				want = append(want, e.Message)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("messages in [Start, End) (-want +got):\n%s", diff)
		}
	})

	t.Run("an unmerged window the endpoint cannot continue fails instead of returning a short page", func(t *testing.T) {
		many := map[string][]event{}
		for j := range 50 {
			many["web/web/a"] = append(many["web/web/a"], event{Stream: "web/web/a", Timestamp: base.UnixMilli() + int64(j), Message: "a", ID: fmt.Sprintf("a-%d", j)})
		}
		for j := range cwlogs.MaxReadLimit {
			many["web/web/b"] = append(many["web/web/b"], event{Stream: "web/web/b", Timestamp: base.UnixMilli() + int64(j), Message: "b", ID: fmt.Sprintf("b-%d", j)})
		}
		srv := &unmergedServer{streams: many, noTokens: true}
		l := srv.start(t)
		_, err := l.Read(t.Context(), providers.LogQuery{App: "web", Limit: 100}, "")
		if !errors.Is(err, providers.ErrUnavailable) {
			t.Errorf("Read error = %v, want one matching providers.ErrUnavailable", err)
		}
	})
}
