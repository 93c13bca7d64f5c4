package cwlogs_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/cwlogstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// BenchmarkWrite100k writes 100,000 entries of mixed sizes to one stream
// and reports the PutLogEvents calls made against the API minimum (the
// larger of the calls needed by bytes and by count, for the bytes actually
// sent) and against one call per entry, and the entries per second. It
// runs against the in-process test server and, when the emulator is
// running, against the emulator:
//
//	go test -run '^$' -bench Write100k -benchtime 1x ./providers/cwlogs
//
// "Write" passes all entries to one Logs.Write; "BufferedWriter" passes
// them one per call to a BufferedWriter, as a program logging line by
// line does.
func BenchmarkWrite100k(b *testing.B) {
	const n = 100000
	mixedEvents := mixed(n, 1)
	entries := make([]providers.LogEntry, n)
	for i, ev := range mixedEvents {
		entries[i] = providers.LogEntry{
			Time: time.UnixMilli(aws.ToInt64(ev.Timestamp)), Stream: "task-1", Process: "web", Release: "r1",
			Message: aws.ToString(ev.Message),
		}
	}
	targets := []struct {
		name   string
		client func(b *testing.B) cwlogs.API
	}{
		{"test server", func(b *testing.B) cwlogs.API {
			return cloudwatchlogs.NewFromConfig(awstest.ConfigFor(cwlogstest.NewServer(b).URL))
		}},
		{"emulator", func(b *testing.B) cwlogs.API {
			if os.Getenv(awstest.EndpointEnv) == "" {
				b.Skipf("%s is unset: run the emulator to benchmark against it", awstest.EndpointEnv)
			}
			return cloudwatchlogs.NewFromConfig(awstest.Config(b))
		}},
	}
	writers := []struct {
		name  string
		write func(ctx context.Context, l *cwlogs.Logs, entries []providers.LogEntry) error
	}{
		{"Write", func(ctx context.Context, l *cwlogs.Logs, entries []providers.LogEntry) error {
			return l.Write(ctx, entries)
		}},
		{"BufferedWriter", func(ctx context.Context, l *cwlogs.Logs, entries []providers.LogEntry) error {
			w := l.NewBufferedWriter(&cwlogs.BufferOptions{Interval: time.Hour})
			for i := range entries {
				if err := w.Write(ctx, entries[i:i+1]); err != nil {
					return err
				}
			}
			return w.Close(ctx)
		}},
	}
	for _, target := range targets {
		for _, writer := range writers {
			b.Run(target.name+"/"+writer.name, func(b *testing.B) {
				rec := &recorder{API: target.client(b)}
				l := cwlogs.New(rec, nil)
				ctx := b.Context()
				var calls, minimum int
				for i := 0; b.Loop(); i++ {
					app := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
					for j := range entries {
						entries[j].App = app
					}
					// The group and stream exist before the measured writes.
					if err := l.Write(ctx, entries[:1]); err != nil {
						b.Fatal(err)
					}
					rec.calls, rec.bytes = 0, 0
					if err := writer.write(ctx, l, entries); err != nil {
						b.Fatal(err)
					}
					calls += rec.calls
					minimum += max((rec.bytes+cwlogs.MaxBatchBytes-1)/cwlogs.MaxBatchBytes, (n+cwlogs.MaxBatchEvents-1)/cwlogs.MaxBatchEvents)
					b.StopTimer()
					l.Delete(ctx, app)
					b.StartTimer()
				}
				iters := float64(b.N)
				b.ReportMetric(float64(calls)/iters, "calls/op")
				b.ReportMetric(float64(minimum)/iters, "min-calls/op")
				b.ReportMetric(float64(calls)/float64(minimum), "calls/min")
				b.ReportMetric(float64(n), "per-event-calls/op")
				b.ReportMetric(float64(n)*iters/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
