package logforward_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/logforward"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/kinesislogs"
	"github.com/convox-go/convox/providers/notify"
)

// webhookReceiver records the webhook deliveries whose signature checks.
type webhookReceiver struct {
	*httptest.Server
	secret []byte

	mu  sync.Mutex
	got []notify.WebhookPayload
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{secret: []byte("shared-secret-of-the-test")}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := notify.VerifySignature(w.secret, r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body); err != nil {
			http.Error(rw, err.Error(), http.StatusUnauthorized)
			return
		}
		var p notify.WebhookPayload
		json.Unmarshal(body, &p)
		w.mu.Lock()
		w.got = append(w.got, p)
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

// stringIDs rewrites the event IDs of a payload moto 5.2.1 delivered,
// JSON numbers, as the JSON strings AWS sends (the example event of the
// Lambda documentation, testdata/cloudwatch-logs-docs.json, has
// "id":"eventId1"; CloudWatch Logs documents logEvents[].id as a string).
func stringIDs(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("a record of moto is not gzip: %v", err)
	}
	dec := json.NewDecoder(zr)
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("a record of moto is not JSON: %v", err)
	}
	evs, _ := doc["logEvents"].([]any)
	for _, e := range evs {
		if m, ok := e.(map[string]any); ok {
			if n, ok := m["id"].(json.Number); ok {
				m["id"] = n.String()
			}
		}
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	json.NewEncoder(zw).Encode(doc)
	zw.Close()
	return b.Bytes()
}

// readStream returns the records of a one-shard stream once they hold at
// least want log events, reading from the start.
func readStream(t *testing.T, client *kinesis.Client, stream string, want int) []ktypes.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil || len(shards.Shards) != 1 {
		t.Fatalf("ListShards = %v, %v; want one shard", shards, err)
	}
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: shards.Shards[0].ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	iter := it.ShardIterator
	var records []ktypes.Record
	events := 0
	b := poll.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}
	for events < want {
		out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatalf("GetRecords after %d records with %d events: %v", len(records), events, err)
		}
		for _, r := range out.Records {
			r.Data = stringIDs(t, r.Data)
			p, err := logforward.Decode(r.Data, logforward.Limits{})
			if err != nil {
				t.Fatalf("record %s: %v", aws.ToString(r.SequenceNumber), err)
			}
			records = append(records, r)
			events += len(p.LogEvents)
		}
		iter = out.NextShardIterator
		if len(out.Records) == 0 {
			if err := b.Wait(ctx); err != nil {
				t.Fatalf("the stream holds %d events after a minute, want %d", events, want)
			}
		}
	}
	return records
}

// TestEndToEndOnMoto writes an app's logs through cwlogs, lets moto
// deliver them through a subscription filter to a Kinesis stream in the
// real payload format (gzip JSON, one payload per record), reads the
// stream and runs the handler on the records as a Kinesis event source
// mapping would: a crash loop raises one alert through a webhook notifier
// and the matching lines reach an HTTP intake.
func TestEndToEndOnMoto(t *testing.T) {
	cfg := awstest.EmulatorOf(t, awstest.Moto).Config()
	ctx := t.Context()
	kc := kinesis.NewFromConfig(cfg)
	stream := awstest.Name(t, "fwd")
	if err := kinesislogs.EnsureStream(ctx, kc, stream, &kinesislogs.StreamOptions{Shards: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kc.DeleteStream(context.WithoutCancel(ctx), &kinesis.DeleteStreamInput{StreamName: aws.String(stream)})
	})
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	logs := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), &cwlogs.Options{IAM: iam.NewFromConfig(cfg)})
	app := awstest.Name(t, "fwd")
	t.Cleanup(func() { logs.Delete(context.WithoutCancel(ctx), app) })
	const pattern = `?panic ?FATAL`
	if _, err := logs.Subscribe(ctx, app, providers.Subscription{Name: "alerts", Destination: aws.ToString(sum.StreamDescriptionSummary.StreamARN), Pattern: pattern}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}

	// A worker in a crash loop: three tasks, each starting and panicking;
	// a web process serving; and the platform's own event.
	now := time.Now().UTC().Truncate(time.Millisecond)
	var written []providers.LogEntry
	add := func(process, task, release, msg string) {
		written = append(written, providers.LogEntry{App: app, Process: process, Stream: task, Release: release, Message: msg, Time: now.Add(time.Duration(len(written)) * time.Millisecond)})
	}
	add(providers.StreamPlatform, providers.StreamPlatform, "R2", "deploy of R2 started")
	for i := range 3 {
		task := fmt.Sprintf("task%d", i)
		add("worker", task, "R2", "worker starting")
		add("web", "webtask", "R2", "GET / 200")
		add("worker", task, "R2", "panic: assignment to entry in nil map")
	}
	if err := logs.Write(ctx, written); err != nil {
		t.Fatalf("Write: %v", err)
	}

	records := readStream(t, kc, stream, len(written))
	var ev events.KinesisEvent
	delivered := 0
	for _, r := range records {
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			EventSource: "aws:kinesis", EventName: "aws:kinesis:record",
			Kinesis: events.KinesisRecord{Data: r.Data, PartitionKey: aws.ToString(r.PartitionKey), SequenceNumber: aws.ToString(r.SequenceNumber)},
		})
		if p, err := logforward.Decode(r.Data, logforward.Limits{}); err == nil && p.MessageType == logforward.DataMessage {
			delivered += len(p.LogEvents)
		}
	}
	// moto delivers every event whatever the filter pattern (AWS delivers
	// only the matching ones), so the handler applies the pattern itself.
	if delivered != len(written) {
		t.Errorf("moto delivered %d of %d events; this test expects every one", delivered, len(written))
	}

	hook := newWebhookReceiver(t)
	alerts, err := logforward.NewAlerts(notify.Webhook{URL: hook.URL, Secret: hook.secret}, []logforward.Rule{{Name: "crash", Pattern: pattern}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := newIntake(t)
	h := newHandler(t, logforward.Options{Pattern: pattern, Sinks: []logforward.Sink{alerts, logforward.HTTP{URL: in.URL}}})
	payload, _ := json.Marshal(ev)
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if diff := cmp.Diff(`{"batchItemFailures":[]}`, string(out)); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}

	var want []logforward.Line
	for _, e := range written {
		if logforward.MustCompile(pattern).Match(e.Message) {
			want = append(want, logforward.Line{Time: e.Time, App: app, Process: e.Process, Release: e.Release, Stream: e.Stream, Message: e.Message})
		}
	}
	var got []logforward.Line
	for _, r := range in.requests {
		got = append(got, r...)
	}
	slices.SortFunc(got, func(a, b logforward.Line) int { return a.Time.Compare(b.Time) })
	for i := range got {
		got[i].ID = "" // assigned by Write
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("forwarded lines (-want +got):\n%s", diff)
	}

	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.got) != 1 {
		t.Fatalf("webhook deliveries = %+v, want one alert for the crash loop", hook.got)
	}
	a := hook.got[0]
	wantAlert := []string{string(providers.NotifyLogAlert), app, "R2", "crash: 3 matching lines in worker (first from task0)", "panic: assignment to entry in nil map"}
	if diff := cmp.Diff(wantAlert, []string{string(a.Kind), a.App, a.Release, a.Summary, a.Reason}); diff != "" {
		t.Errorf("alert (-want +got):\n%s", diff)
	}
}
