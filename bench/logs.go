package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/cwlogstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// The logs part writes 100,000 log entries of mixed sizes (mostly short
// lines, some stack-trace-sized ones, a few of several kilobytes) to one
// stream through the CloudWatch Logs provider, twice:
//
//   - Write: all entries in one Logs.Write, which sorts them and splits
//     them with cwlogs.Batches;
//   - BufferedWriter: one entry per BufferedWriter.Write, as a program
//     logging line by line does, then Close.
//
// It counts the PutLogEvents calls with the SDK client's middleware
// (awstest.Counter) and the bytes they carried (each message plus the 26
// bytes the API counts per event), and compares the calls with the API
// minimum for those bytes and events — the larger of ceil(bytes / 1 MiB)
// and ceil(events / 10,000) — and with one call per event. The endpoint is
// the AWS emulator when CONVOX_TEST_AWS_ENDPOINT is set, else the
// in-process CloudWatch Logs server; the report says which.

// Shape of the logs part.
const (
	logEvents      = 100000
	logEventsShort = 10000
)

// Goal of issue #6: within one call of the API minimum.
const goalLogExtraCalls = 1

// putCounter wraps the CloudWatch Logs client to add up what PutLogEvents
// calls carried, as the API counts it.
type putCounter struct {
	cwlogs.API

	mu     sync.Mutex
	bytes  int
	events int
}

// PutLogEvents calls the client and, when the call succeeds, adds up the
// events it carried and their bytes.
func (p *putCounter) PutLogEvents(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error) {
	out, err := p.API.PutLogEvents(ctx, in, opts...)
	if err == nil {
		p.mu.Lock()
		for _, e := range in.LogEvents {
			p.bytes += len(aws.ToString(e.Message)) + cwlogs.EventOverhead
		}
		p.events += len(in.LogEvents)
		p.mu.Unlock()
	}
	return out, err
}

func (p *putCounter) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes, p.events = 0, 0
}

// lifetime stands in for a test's lifetime for cwlogstest.NewServer,
// which takes a testing.TB only to register the server's shutdown: it
// keeps the cleanups and runs them when the part ends. It implements no
// other method of testing.TB.
type lifetime struct {
	testing.TB
	cleanups []func()
}

// Helper does nothing: there is no test output to attribute lines in.
func (l *lifetime) Helper() {}

// Cleanup registers f to run when the part ends.
func (l *lifetime) Cleanup(f func()) { l.cleanups = append(l.cleanups, f) }

func (l *lifetime) end() {
	for i := len(l.cleanups) - 1; i >= 0; i-- {
		l.cleanups[i]()
	}
}

// mixedEntries returns n entries of one stream of app, one millisecond
// apart and ending now, with messages of mixed sizes: 70% of 20–199
// bytes, 25% of 200–1,999, 5% of 2,000–15,999.
func mixedEntries(n int, app string) []providers.LogEntry {
	r := rand.New(rand.NewPCG(1, 1))
	text := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789 ", 16000/37+1)
	t0 := time.Now().Add(-time.Duration(n) * time.Millisecond)
	out := make([]providers.LogEntry, n)
	for i := range out {
		size := 0
		switch p := r.IntN(100); {
		case p < 70:
			size = 20 + r.IntN(180)
		case p < 95:
			size = 200 + r.IntN(1800)
		default:
			size = 2000 + r.IntN(14000)
		}
		out[i] = providers.LogEntry{
			App: app, Stream: "task-1", Process: "web", Release: "R1",
			Time: t0.Add(time.Duration(i) * time.Millisecond), Message: text[:size],
		}
	}
	return out
}

func runLogs(ctx context.Context, cfg config) error {
	n := logEvents
	if cfg.short {
		n = logEventsShort
	}
	endpoint, where := os.Getenv(awstest.EndpointEnv), ""
	if endpoint != "" {
		where = fmt.Sprintf("the AWS emulator at %s (%s is set)", endpoint, awstest.EndpointEnv)
	} else {
		lt := &lifetime{}
		defer lt.end()
		endpoint = cwlogstest.NewServer(lt).URL
		where = fmt.Sprintf("the in-process CloudWatch Logs server (internal/cwlogstest; %s is unset)", awstest.EndpointEnv)
	}
	calls := awstest.NewCounter()
	awsCfg := awstest.ConfigFor(endpoint)
	awsCfg.APIOptions = append(awsCfg.APIOptions, calls.AddTo)
	api := &putCounter{API: cloudwatchlogs.NewFromConfig(awsCfg)}
	l := cwlogs.New(api, nil)
	fmt.Fprintf(cfg.out, "endpoint: %s\n", where)

	writers := []struct {
		name  string
		write func(ctx context.Context, entries []providers.LogEntry) error
	}{
		{"Write", func(ctx context.Context, entries []providers.LogEntry) error { return l.Write(ctx, entries) }},
		{"BufferedWriter", func(ctx context.Context, entries []providers.LogEntry) error {
			w := l.NewBufferedWriter(nil)
			for i := range entries {
				if err := w.Write(ctx, entries[i:i+1]); err != nil {
					w.Close(ctx)
					return err
				}
			}
			return w.Close(ctx)
		}},
	}
	for i, wr := range writers {
		app := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		entries := mixedEntries(n, app)
		// The group and the stream exist before the measured writes.
		if err := l.Write(ctx, entries[:1]); err != nil {
			return fmt.Errorf("create the stream: %w", err)
		}
		calls.Reset()
		api.reset()
		start := time.Now()
		err := wr.write(ctx, entries)
		elapsed := time.Since(start)
		l.Delete(context.WithoutCancel(ctx), app)
		if err != nil {
			return fmt.Errorf("%s: %w", wr.name, err)
		}
		api.mu.Lock()
		bytes, events := api.bytes, api.events
		api.mu.Unlock()
		if events != n {
			return fmt.Errorf("%s: PutLogEvents carried %d events, want %d", wr.name, events, n)
		}
		put := calls.Count("PutLogEvents")
		byBytes := (bytes + cwlogs.MaxBatchBytes - 1) / cwlogs.MaxBatchBytes
		byCount := (n + cwlogs.MaxBatchEvents - 1) / cwlogs.MaxBatchEvents
		minimum := max(byBytes, byCount)
		fmt.Fprintf(cfg.out, "%s: %d events, %d bytes as the API counts them (%.1f MiB)\n", wr.name, n, bytes, float64(bytes)/(1<<20))
		fmt.Fprintf(cfg.out, "  PutLogEvents calls %d; API minimum %d (by bytes %d, by count %d); one per event %d\n", put, minimum, byBytes, byCount, n)
		fmt.Fprintf(cfg.out, "  %.0f events/s (%s); ratio one-per-event/calls = %.0f; calls/minimum = %.2f\n",
			float64(n)/elapsed.Seconds(), elapsed.Round(time.Millisecond), float64(n)/float64(put), float64(put)/float64(minimum))
		goalCount(cfg.out, wr.name+": PutLogEvents calls above the API minimum", int64(put-minimum), goalLogExtraCalls)
	}
	return nil
}
