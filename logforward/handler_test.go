package logforward_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/logforward"
	"github.com/convox-go/convox/providers"
)

// recorder is a Sink that records what it receives; fail, when set,
// answers the i-th call (from 0) with an error.
type recorder struct {
	mu    sync.Mutex
	got   [][]providers.LogEntry
	fail  map[int]error
	calls int
}

func (r *recorder) Send(_ context.Context, entries []providers.LogEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.calls
	r.calls++
	if err := r.fail[i]; err != nil {
		return err
	}
	r.got = append(r.got, append([]providers.LogEntry(nil), entries...))
	return nil
}

// messages returns the messages received, batch by batch.
func (r *recorder) messages() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]string
	for _, b := range r.got {
		var m []string
		for _, e := range b {
			m = append(m, e.Message)
		}
		out = append(out, m)
	}
	return out
}

// envelope is a message as cwlogs.Logs.Write stores it.
func envelope(id, release, msg string) string {
	b, _ := json.Marshal(map[string]any{"convox": 1, "id": id, "release": release, "message": msg})
	return string(b)
}

// data returns a DATA_MESSAGE of the app's group and stream whose events
// have the given messages, one millisecond apart.
func data(app, stream string, msgs ...string) logforward.Payload {
	p := logforward.Payload{MessageType: logforward.DataMessage, Owner: "123456789012", LogGroup: "/convox/" + app, LogStream: stream, SubscriptionFilters: []string{"alerts"}}
	for i, m := range msgs {
		p.LogEvents = append(p.LogEvents, events.CloudwatchLogsLogEvent{ID: fmt.Sprint(36000000 + i), Timestamp: t0.UnixMilli() + int64(i), Message: m})
	}
	return p
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// logsEvent is a Lambda invocation by CloudWatch Logs carrying p.
func logsEvent(p logforward.Payload) []byte {
	b, _ := json.Marshal(map[string]any{"awslogs": map[string]string{"data": base64.StdEncoding.EncodeToString(logforward.Encode(p))}})
	return b
}

// kinesisEvent is a Lambda invocation by a Kinesis event source mapping
// whose records carry the given data, with sequence numbers "seq-<i>".
func kinesisEvent(datas ...[]byte) events.KinesisEvent {
	var ev events.KinesisEvent
	for i, d := range datas {
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			EventSource: "aws:kinesis", EventName: "aws:kinesis:record", AwsRegion: "us-east-1",
			EventSourceArn: "arn:aws:kinesis:us-east-1:123456789012:stream/logs",
			Kinesis:        events.KinesisRecord{Data: d, PartitionKey: "p", SequenceNumber: fmt.Sprintf("seq-%d", i), KinesisSchemaVersion: "1.0"},
		})
	}
	return ev
}

func newHandler(t *testing.T, opts logforward.Options) *logforward.Handler {
	t.Helper()
	h, err := logforward.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func TestLambdaEntryPointWithTheAWSDocumentationsPayload(t *testing.T) {
	// testdata/cloudwatch-logs-docs.json is the example CloudWatch Logs
	// event of the AWS Lambda documentation ("Using Lambda with CloudWatch
	// Logs"), as aws-lambda-go's events/testdata keeps it: a DATA_MESSAGE
	// of group "testLogGroup" and stream "testLogStream".
	doc, err := os.ReadFile("testdata/cloudwatch-logs-docs.json")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	h := newHandler(t, logforward.Options{Sinks: []logforward.Sink{rec}, GroupPrefix: "test"})
	out, err := h.Invoke(t.Context(), doc)
	if err != nil || out != nil {
		t.Fatalf("Invoke = %q, %v; want no response and no error", out, err)
	}
	want := [][]providers.LogEntry{{
		{ID: "testLogStream:eventId1", Time: time.UnixMilli(1440442987000).UTC(), App: "LogGroup", Stream: "testLogStream", Message: "[ERROR] First test message"},
		{ID: "testLogStream:eventId2", Time: time.UnixMilli(1440442987001).UTC(), App: "LogGroup", Stream: "testLogStream", Message: "[ERROR] Second test message"},
	}}
	if diff := cmp.Diff(want, rec.got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestEventsMapBackToAppProcessReleaseAndTask(t *testing.T) {
	rec := &recorder{}
	h := newHandler(t, logforward.Options{Sinks: []logforward.Sink{rec}})
	p := data("web", "web/web/0f1e2d3c", envelope("00000001", "R7", "listening on :8080"), "a raw line from the awslogs driver")
	if _, err := h.Invoke(t.Context(), logsEvent(p)); err != nil {
		t.Fatal(err)
	}
	plat := data("web", "convox/convox/convox", envelope("00000002", "R7", "deploy started"))
	if _, err := h.Invoke(t.Context(), logsEvent(plat)); err != nil {
		t.Fatal(err)
	}
	want := [][]providers.LogEntry{
		{
			{ID: "00000001", Time: t0, App: "web", Process: "web", Stream: "0f1e2d3c", Release: "R7", Message: "listening on :8080"},
			{ID: "web/web/0f1e2d3c:36000001", Time: t0.Add(time.Millisecond), App: "web", Process: "web", Stream: "0f1e2d3c", Message: "a raw line from the awslogs driver"},
		},
		{{ID: "00000002", Time: t0, App: "web", Process: "convox", Stream: "convox", Release: "R7", Message: "deploy started"}},
	}
	if diff := cmp.Diff(want, rec.got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestHandlerSkipsAndDrops(t *testing.T) {
	control := logforward.Payload{MessageType: logforward.ControlMessage, Owner: "CloudwatchLogs", LogGroup: "", LogStream: "",
		LogEvents: []events.CloudwatchLogsLogEvent{{ID: "", Timestamp: t0.UnixMilli(), Message: "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}}}
	foreign := data("x", "s")
	foreign.LogGroup = "/aws/lambda/other"
	tests := []struct {
		name    string
		records [][]byte
		pattern string
		want    [][]string
		dropped int64
	}{
		{"a control message is skipped", [][]byte{logforward.Encode(control)}, "", nil, 0},
		{"a group outside the prefix is dropped", [][]byte{logforward.Encode(foreign)}, "", nil, 1},
		{"a record that is not a payload is dropped and the others are forwarded",
			[][]byte{[]byte("Hello World"), logforward.Encode(data("web", "web/web/t1", "one")), {0x1f, 0x8b, 0, 0}}, "", [][]string{{"one"}}, 2},
		{"the pattern is applied in the handler", [][]byte{logforward.Encode(data("web", "web/web/t1", "ok", "panic: nil map", "ok again", "FATAL: out of memory"))},
			"?panic ?FATAL", [][]string{{"panic: nil map", "FATAL: out of memory"}}, 0},
		{"records of one invocation are sent in one batch", [][]byte{logforward.Encode(data("web", "web/web/t1", "a")), logforward.Encode(data("api", "api/api/t2", "b"))},
			"", [][]string{{"a", "b"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h := newHandler(t, logforward.Options{Sinks: []logforward.Sink{rec}, Pattern: tt.pattern})
			resp, err := h.HandleKinesis(t.Context(), kinesisEvent(tt.records...))
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("HandleKinesis = %+v, %v; want success", resp, err)
			}
			if diff := cmp.Diff(tt.want, rec.messages()); diff != "" {
				t.Errorf("batches (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.dropped, h.Stats().Dropped); diff != "" {
				t.Errorf("dropped (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKinesisPartialFailure(t *testing.T) {
	records := [][]byte{
		logforward.Encode(data("web", "web/web/t1", "r0-a", "r0-b")),
		logforward.Encode(data("web", "web/web/t1", "r1-a", "r1-b")),
		logforward.Encode(data("web", "web/web/t1", "r2-a", "r2-b")),
		logforward.Encode(data("web", "web/web/t1", "r3-a")),
	}
	tests := []struct {
		name string
		fail map[int]error
		// want are the batches the sink accepted and failed the sequence
		// numbers reported.
		want   [][]string
		failed []events.KinesisBatchItemFailure
	}{
		{"every batch accepted: no failure", nil,
			[][]string{{"r0-a", "r0-b", "r1-a", "r1-b"}, {"r2-a", "r2-b", "r3-a"}}, []events.KinesisBatchItemFailure{}},
		{"a failed first batch reports its first record and stops", map[int]error{0: providers.ErrUnavailable},
			nil, []events.KinesisBatchItemFailure{{ItemIdentifier: "seq-0"}}},
		{"a failed second batch reports its first record after the first was delivered", map[int]error{1: providers.ErrThrottled},
			[][]string{{"r0-a", "r0-b", "r1-a", "r1-b"}}, []events.KinesisBatchItemFailure{{ItemIdentifier: "seq-2"}}},
		{"a batch the sink can never take is dropped, not retried", map[int]error{0: fmt.Errorf("%w: HTTP 413", providers.ErrInvalid)},
			[][]string{{"r2-a", "r2-b", "r3-a"}}, []events.KinesisBatchItemFailure{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{fail: tt.fail}
			h := newHandler(t, logforward.Options{Sinks: []logforward.Sink{rec}, MaxBatch: 4})
			// Through Invoke, as Lambda calls it: the response is JSON.
			inv, _ := json.Marshal(kinesisEvent(records...))
			out, err := h.Invoke(t.Context(), inv)
			if err != nil {
				t.Fatal(err)
			}
			var resp events.KinesisEventResponse
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatalf("response %q: %v", out, err)
			}
			if diff := cmp.Diff(tt.failed, resp.BatchItemFailures); diff != "" {
				t.Errorf("batch item failures (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, rec.messages()); diff != "" {
				t.Errorf("accepted batches (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDirectInvocationRetriesThroughLambda(t *testing.T) {
	rec := &recorder{fail: map[int]error{0: providers.ErrUnavailable}}
	h := newHandler(t, logforward.Options{Sinks: []logforward.Sink{rec}})
	inv := logsEvent(data("web", "web/web/t1", "line"))
	if _, err := h.Invoke(t.Context(), inv); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("first Invoke = %v, want the sink's error so that Lambda retries", err)
	}
	if _, err := h.Invoke(t.Context(), inv); err != nil {
		t.Fatalf("retried Invoke = %v", err)
	}
	if diff := cmp.Diff([][]string{{"line"}}, rec.messages()); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

func TestInvokeRefuses(t *testing.T) {
	tests := []struct {
		name string
		lim  logforward.Limits
		in   []byte
		want string
	}{
		{"an event of another kind", logforward.Limits{}, []byte(`{"detail-type":"Scheduled Event"}`), "neither a CloudWatch Logs nor a Kinesis event"},
		{"a document that is not JSON", logforward.Limits{}, []byte(`awslogs`), "not JSON"},
		{"an invocation over the limit", logforward.Limits{MaxInvocationBytes: 10}, []byte(`{"Records":[]}`), "exceeds 10"},
		{"more records than the limit", logforward.Limits{MaxRecords: 1}, []byte(`{"Records":[{},{}]}`), "2 records exceed 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(t, logforward.Options{Sinks: []logforward.Sink{&recorder{}}, Limits: tt.lim})
			_, err := h.Invoke(t.Context(), tt.in)
			if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Invoke = %v, want ErrInvalid saying %q", err, tt.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts logforward.Options
	}{
		{"no sink", logforward.Options{}},
		{"a nil sink", logforward.Options{Sinks: []logforward.Sink{nil}}},
		{"a JSON pattern", logforward.Options{Sinks: []logforward.Sink{&recorder{}}, Pattern: `{ $.level = "error" }`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := logforward.New(tt.opts); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("New = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	gz := func(s string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.Bytes()
	}
	bomb := gz(`{"messageType":"DATA_MESSAGE","x":"` + strings.Repeat("A", 4<<20) + `"}`)
	tests := []struct {
		name string
		lim  logforward.Limits
		in   []byte
		want string
	}{
		{"a payload over the compressed limit", logforward.Limits{MaxPayloadBytes: 10}, logforward.Encode(data("web", "s", "x")), "exceed 10"},
		{"a payload that inflates past the limit is not inflated further", logforward.Limits{MaxDecodedBytes: 1 << 20}, bomb, "inflates beyond 1048576 bytes"},
		{"more events than the limit", logforward.Limits{MaxEvents: 2}, logforward.Encode(data("web", "s", "a", "b", "c")), "3 events exceed 2"},
		{"a payload that is not gzip", logforward.Limits{}, []byte("Hello World"), "not gzip"},
		{"gzip that is not JSON", logforward.Limits{}, gz("hello"), "not a subscription message"},
		{"an unknown message type", logforward.Limits{}, gz(`{"messageType":"OTHER"}`), `unknown messageType "OTHER"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := logforward.Decode(tt.in, tt.lim)
			if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode = %v, want ErrInvalid saying %q", err, tt.want)
			}
		})
	}
	t.Run("base64 over the limit is refused before decoding", func(t *testing.T) {
		_, err := logforward.DecodeBase64(strings.Repeat("QUFB", 100), logforward.Limits{MaxPayloadBytes: 100})
		if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), "exceed 100 bytes decoded") {
			t.Errorf("DecodeBase64 = %v", err)
		}
	})
	t.Run("a payload round-trips", func(t *testing.T) {
		p := data("web", "web/web/t1", "a", "b")
		got, err := logforward.DecodeBase64(base64.StdEncoding.EncodeToString(logforward.Encode(p)), logforward.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("payload (-want +got):\n%s", diff)
		}
	})
}

func TestPattern(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		nomatch []string
	}{
		{"", []string{"", "anything"}, nil},
		{"ERROR", []string{"[ERROR] x"}, []string{"error", "[WARN]"}},
		{"ERROR timeout", []string{"ERROR: timeout"}, []string{"ERROR: refused", "timeout"}},
		{`"exit status 2"`, []string{"process: exit status 2."}, []string{"exit status 1", "status 2 exit"}},
		{"?panic ?FATAL", []string{"panic: x", "FATAL y"}, []string{"fatal", "ok"}},
		{"ERROR -retrying", []string{"ERROR: gave up"}, []string{"ERROR: retrying"}},
		{`ERROR ?db ?"cache miss"`, []string{"ERROR db", "ERROR cache miss"}, []string{"ERROR net", "db"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p := logforward.MustCompile(tt.pattern)
			for _, m := range tt.match {
				if !p.Match(m) {
					t.Errorf("%q does not match %q, want a match", tt.pattern, m)
				}
			}
			for _, m := range tt.nomatch {
				if p.Match(m) {
					t.Errorf("%q matches %q, want none", tt.pattern, m)
				}
			}
		})
	}
	for _, bad := range []string{`"open`, `{ $.a = 1 }`, `[ip, user]`, "? x", strings.Repeat("a", 1025)} {
		if _, err := logforward.Compile(bad); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("Compile(%.20q) = %v, want ErrInvalid", bad, err)
		}
	}
}
