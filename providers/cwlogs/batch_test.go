package cwlogs_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers/cwlogs"
)

var t0 = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// text backs every message of these tests: a message is a prefix of it.
var text = strings.Repeat("x", cwlogs.MaxBatchBytes+1)

// events returns n events whose messages have the given sizes in turn,
// one millisecond apart.
func events(n int, sizes ...int) []types.InputLogEvent {
	out := make([]types.InputLogEvent, n)
	for i := range out {
		out[i] = types.InputLogEvent{Message: aws.String(text[:sizes[i%len(sizes)]]), Timestamp: aws.Int64(t0.UnixMilli() + int64(i))}
	}
	return out
}

// mixed returns n events of mixed sizes: mostly short lines, some long
// ones (stack traces, JSON documents), a few very long ones.
func mixed(n int, seed uint64) []types.InputLogEvent {
	r := rand.New(rand.NewPCG(seed, seed))
	sizes := make([]int, n)
	for i := range sizes {
		switch p := r.IntN(100); {
		case p < 70:
			sizes[i] = 20 + r.IntN(180)
		case p < 95:
			sizes[i] = 200 + r.IntN(1800)
		default:
			sizes[i] = 2000 + r.IntN(14000)
		}
	}
	out := events(n, 1)
	for i := range out {
		out[i].Message = aws.String(text[:sizes[i]])
	}
	return out
}

// minimumCalls is the API minimum for events of one stream: the larger of
// the calls needed by bytes and by count.
func minimumCalls(evs []types.InputLogEvent) int {
	bytes := 0
	for _, e := range evs {
		bytes += len(aws.ToString(e.Message)) + cwlogs.EventOverhead
	}
	return max((bytes+cwlogs.MaxBatchBytes-1)/cwlogs.MaxBatchBytes, (len(evs)+cwlogs.MaxBatchEvents-1)/cwlogs.MaxBatchEvents)
}

// checkBatches checks that batches hold evs in order and that each one is
// acceptable to the API.
func checkBatches(t *testing.T, evs []types.InputLogEvent, batches [][]types.InputLogEvent) {
	t.Helper()
	i := 0
	for b, batch := range batches {
		size := 0
		for _, e := range batch {
			if e.Message != evs[i].Message {
				t.Fatalf("batch %d: event %d out of order", b, i)
			}
			size += len(aws.ToString(e.Message)) + cwlogs.EventOverhead
			i++
		}
		span := time.Duration(aws.ToInt64(batch[len(batch)-1].Timestamp)-aws.ToInt64(batch[0].Timestamp)) * time.Millisecond
		if len(batch) > cwlogs.MaxBatchEvents || (size > cwlogs.MaxBatchBytes && len(batch) > 1) || span > cwlogs.MaxBatchSpan {
			t.Errorf("batch %d: %d events, %d bytes, spanning %v: over the API limits", b, len(batch), size, span)
		}
	}
	if i != len(evs) {
		t.Errorf("batches hold %d events, want %d", i, len(evs))
	}
}

func TestBatches(t *testing.T) {
	perEvent := cwlogs.MaxBatchBytes/4 - cwlogs.EventOverhead // four fill a batch exactly
	spread := events(3, 10)
	spread[1].Timestamp = aws.Int64(t0.Add(cwlogs.MaxBatchSpan).UnixMilli())                    // exactly 24h after the first
	spread[2].Timestamp = aws.Int64(t0.Add(cwlogs.MaxBatchSpan + time.Millisecond).UnixMilli()) // beyond
	for _, tc := range []struct {
		name string
		evs  []types.InputLogEvent
		want []int // sizes of the batches
	}{
		{"no events make no batch", nil, nil},
		{"10,000 events fit one batch", events(10000, 1), []int{10000}},
		{"the 10,001st event starts a second batch", events(10001, 1), []int{10000, 1}},
		{"events filling 1,048,576 bytes with their 26-byte overheads fit one batch", events(4, perEvent), []int{4}},
		{"one more byte starts a second batch", events(4, perEvent, perEvent, perEvent, perEvent+1), []int{3, 1}},
		{"the overhead counts: tiny events are limited by bytes, not only count", events(10000, 100), []int{8322, 1678}},
		{"events exactly 24 hours apart share a batch; one more millisecond does not", spread, []int{2, 1}},
		{"an event larger than a batch gets a batch of its own", events(3, 10, cwlogs.MaxBatchBytes, 10), []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batches := cwlogs.Batches(tc.evs)
			var got []int
			for _, b := range batches {
				got = append(got, len(b))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("batch sizes (-want +got):\n%s", diff)
			}
			checkBatches(t, tc.evs, batches)
		})
	}
}

func TestBatchesAreWithinOneCallOfTheMinimum(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprintf("100,000 mixed events, seed %d", seed), func(t *testing.T) {
			evs := mixed(100000, seed)
			batches := cwlogs.Batches(evs)
			checkBatches(t, evs, batches)
			if got, lower := len(batches), minimumCalls(evs); got > lower+1 {
				t.Errorf("%d batches; the API minimum is %d", got, lower)
			}
		})
	}
}
