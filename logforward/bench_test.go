//go:build unix

package logforward_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/convox-go/convox/logforward"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// putRecorder is a CloudWatch Logs API that keeps the PutLogEvents calls
// and answers every other call with an empty success.
type putRecorder struct {
	mu   sync.Mutex
	puts []*cloudwatchlogs.PutLogEventsInput
}

func (p *putRecorder) CreateLogGroup(context.Context, *cloudwatchlogs.CreateLogGroupInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error) {
	return &cloudwatchlogs.CreateLogGroupOutput{}, nil
}
func (p *putRecorder) CreateLogStream(context.Context, *cloudwatchlogs.CreateLogStreamInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error) {
	return &cloudwatchlogs.CreateLogStreamOutput{}, nil
}
func (p *putRecorder) DeleteLogGroup(context.Context, *cloudwatchlogs.DeleteLogGroupInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DeleteLogGroupOutput, error) {
	return &cloudwatchlogs.DeleteLogGroupOutput{}, nil
}
func (p *putRecorder) DescribeLogGroups(context.Context, *cloudwatchlogs.DescribeLogGroupsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogGroupsOutput, error) {
	return &cloudwatchlogs.DescribeLogGroupsOutput{}, nil
}
func (p *putRecorder) FilterLogEvents(context.Context, *cloudwatchlogs.FilterLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error) {
	return &cloudwatchlogs.FilterLogEventsOutput{}, nil
}
func (p *putRecorder) StartLiveTail(context.Context, *cloudwatchlogs.StartLiveTailInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.StartLiveTailOutput, error) {
	return nil, providers.ErrUnimplemented
}
func (p *putRecorder) PutLogEvents(_ context.Context, in *cloudwatchlogs.PutLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.puts = append(p.puts, in)
	return &cloudwatchlogs.PutLogEventsOutput{}, nil
}

// workload returns the subscription payloads of n log events of app web,
// written through cwlogs.Logs.Write as one program would: two processes
// of five tasks each, lines of 60 to 200 bytes of which one in a hundred
// is a panic. Each PutLogEvents call becomes one payload, as CloudWatch
// Logs delivers the events of one call together (at most 10,000 events
// and 1 MiB, the call's limits).
func workload(b *testing.B, n int) []logforward.Payload { return workloadIn(b, n, n) }

// workloadIn is workload with the entries written perWrite at a time, as a
// program flushing its lines every so often would write them.
func workloadIn(b *testing.B, n, perWrite int) []logforward.Payload {
	b.Helper()
	api := &putRecorder{}
	l := cwlogs.New(api, nil)
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := make([]providers.LogEntry, n)
	for i := range entries {
		proc := []string{"web", "worker"}[i%2]
		msg := fmt.Sprintf("%s GET /api/items/%d 200 %dms %s", proc, r.IntN(100000), r.IntN(900), randomText(r, 30+r.IntN(140)))
		if i%100 == 99 {
			msg = "panic: runtime error: invalid memory address or nil pointer dereference " + randomText(r, 40)
		}
		entries[i] = providers.LogEntry{App: "web", Process: proc, Stream: fmt.Sprintf("%s-task-%d", proc, i%5), Release: "R42", Message: msg, Time: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	for start := 0; start < n; start += perWrite {
		if err := l.Write(context.Background(), entries[start:min(start+perWrite, n)]); err != nil {
			b.Fatal(err)
		}
	}
	var out []logforward.Payload
	id := 0
	for _, put := range api.puts {
		p := logforward.Payload{MessageType: logforward.DataMessage, Owner: "123456789012", LogGroup: aws.ToString(put.LogGroupName), LogStream: aws.ToString(put.LogStreamName), SubscriptionFilters: []string{"forward"}}
		for _, e := range put.LogEvents {
			id++
			p.LogEvents = append(p.LogEvents, events.CloudwatchLogsLogEvent{ID: fmt.Sprintf("%056d", id), Timestamp: aws.ToInt64(e.Timestamp), Message: aws.ToString(e.Message)})
		}
		out = append(out, p)
	}
	return out
}

func randomText(r *rand.Rand, n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789 =:-"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// cpuTime returns the user and system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingNotifier counts notifications.
type countingNotifier struct{ n atomic.Int64 }

func (c *countingNotifier) Notify(context.Context, providers.Notification) error {
	c.n.Add(1)
	return nil
}

// BenchmarkHandler measures events per second through the handler —
// decode (gunzip, JSON), map back to app, process, release and task,
// match the pattern, alert and forward — for a Kinesis batch holding
// 100,000 events. Run it on one core: go test -bench Handler -cpu 1.
func BenchmarkHandler(b *testing.B) {
	payloads := workload(b, 100000)
	var datas [][]byte
	events := 0
	for _, p := range payloads {
		datas = append(datas, logforward.Encode(p))
		events += len(p.LogEvents)
	}
	for _, bc := range []struct {
		name    string
		pattern string
	}{{"all-lines", ""}, {"pattern-panic", "?panic ?FATAL"}} {
		b.Run(bc.name, func(b *testing.B) {
			notifier := &countingNotifier{}
			alerts, err := logforward.NewAlerts(notifier, []logforward.Rule{{Name: "panic", Pattern: "panic"}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			var forwarded atomic.Int64
			count := logforward.SinkFunc(func(_ context.Context, entries []providers.LogEntry) error {
				forwarded.Add(int64(len(entries)))
				return nil
			})
			h, err := logforward.New(logforward.Options{Pattern: bc.pattern, Sinks: []logforward.Sink{alerts, count}})
			if err != nil {
				b.Fatal(err)
			}
			ev := kinesisEvent(datas...)
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				resp, err := h.HandleKinesis(context.Background(), ev)
				if err != nil || len(resp.BatchItemFailures) != 0 {
					b.Fatal(err, resp)
				}
			}
			// On a shared machine the wall clock counts other programs'
			// time too; the process's CPU time does not.
			b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(events*b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
			b.ReportMetric(float64(forwarded.Load())/float64(b.N), "forwarded/op")
			b.ReportMetric(float64(notifier.n.Load()), "alerts")
		})
	}
}

// BenchmarkCost100k reports, for 100,000 log events written through
// cwlogs, the subscription payloads and their bytes, and the Lambda
// invocations that deliver them: one per payload for a Lambda destination,
// and for a Kinesis destination one per batch of the event source
// mapping's BatchSize records (100, the default, up to 10,000), within
// Lambda's 6 MB invocation limit (records travel base64-encoded).
func BenchmarkCost100k(b *testing.B) {
	for _, w := range []struct {
		name     string
		perWrite int
	}{{"write-all-at-once", 100000}, {"write-1000-per-call", 1000}, {"write-100-per-call", 100}} {
		b.Run(w.name, func(b *testing.B) { cost(b, workloadIn(b, 100000, w.perWrite)) })
	}
}

func cost(b *testing.B, payloads []logforward.Payload) {
	var gz, plain, b64, ingest int
	var sizes []int
	for _, p := range payloads {
		for _, e := range p.LogEvents {
			ingest += len(e.Message) + cwlogs.EventOverhead
		}
		data := logforward.Encode(p)
		js, _ := json.Marshal(p)
		gz += len(data)
		plain += len(js)
		sizes = append(sizes, base64.StdEncoding.EncodedLen(len(data))+300) // a record's JSON around its data
		b64 += base64.StdEncoding.EncodedLen(len(data))
	}
	b.Run("lambda-destination", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(float64(len(payloads)), "invocations/100k")
		b.ReportMetric(float64(b64), "invoke-bytes/100k")
		b.ReportMetric(float64(gz), "gzip-bytes/100k")
		b.ReportMetric(float64(plain), "json-bytes/100k")
		b.ReportMetric(float64(ingest), "ingest-bytes/100k")
	})
	for _, batch := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("kinesis-batch-%d", batch), func(b *testing.B) {
			for b.Loop() {
			}
			const maxInvoke = 6 << 20
			invocations, n, size := 0, 0, 0
			for _, s := range sizes {
				if n > 0 && (n == batch || size+s > maxInvoke) {
					invocations++
					n, size = 0, 0
				}
				n++
				size += s
			}
			if n > 0 {
				invocations++
			}
			b.ReportMetric(float64(invocations), "invocations/100k")
			b.ReportMetric(float64(len(payloads)), "records/100k")
			b.ReportMetric(float64(gz), "gzip-bytes/100k")
		})
	}
}
