package kinesislogs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/kinesislogs"
)

func records(n int, sizes ...int) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{Data: make([]byte, sizes[i%len(sizes)]), PartitionKey: aws.String("app")} // 3-byte key
	}
	return out
}

func TestBatches(t *testing.T) {
	fifth := kinesislogs.MaxBatchBytes/5 - 3 // five records fill a call exactly
	for _, tc := range []struct {
		name string
		recs []types.PutRecordsRequestEntry
		want []int
	}{
		{"no records make no batch", nil, nil},
		{"500 records fit one call", records(500, 10), []int{500}},
		{"the 501st record starts a second call", records(501, 10), []int{500, 1}},
		{"records filling 5 MiB with their partition keys fit one call", records(5, fifth), []int{5}},
		{"one more byte starts a second call", records(5, fifth, fifth, fifth, fifth, fifth+1), []int{4, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for _, b := range kinesislogs.Batches(tc.recs) {
				got = append(got, len(b))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("batch sizes (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("mixed records are within one call of the minimum", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		recs := make([]types.PutRecordsRequestEntry, 20000)
		bytes := 0
		for i := range recs {
			size := 50 + r.IntN(500)
			if r.IntN(100) < 3 {
				size = 20000 + r.IntN(200000)
			}
			recs[i] = types.PutRecordsRequestEntry{Data: make([]byte, size), PartitionKey: aws.String("app")}
			bytes += size + 3
		}
		minimum := max((bytes+kinesislogs.MaxBatchBytes-1)/kinesislogs.MaxBatchBytes, (len(recs)+kinesislogs.MaxBatchRecords-1)/kinesislogs.MaxBatchRecords)
		if got := len(kinesislogs.Batches(recs)); got > minimum+1 {
			t.Errorf("%d calls; the API minimum is %d", got, minimum)
		}
	})
}

// putStub is an API whose PutRecords fails the records its script says,
// and records what it was sent; the other methods are not used.
type putStub struct {
	kinesislogs.API
	mu     sync.Mutex
	script [][]string // per call, the error code of each record ("" for success)
	sent   [][]string // per call, the messages sent
	err    error      // returned by every call when set
}

func (s *putStub) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var msgs []string
	for _, r := range in.Records {
		msgs = append(msgs, messageOf(r.Data))
	}
	s.sent = append(s.sent, msgs)
	out := &kinesis.PutRecordsOutput{}
	var codes []string
	if len(s.script) > 0 {
		codes, s.script = s.script[0], s.script[1:]
	}
	for i := range in.Records {
		res := types.PutRecordsResultEntry{SequenceNumber: aws.String(fmt.Sprint(i)), ShardId: aws.String("shardId-000000000000")}
		if i < len(codes) && codes[i] != "" {
			res = types.PutRecordsResultEntry{ErrorCode: aws.String(codes[i]), ErrorMessage: aws.String("scripted")}
			out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
		}
		out.Records = append(out.Records, res)
	}
	return out, nil
}

// messageOf extracts the "msg" field of a record's JSON data.
func messageOf(data []byte) string {
	_, rest, _ := strings.Cut(string(data), `"msg":"`)
	msg, _, _ := strings.Cut(rest, `"`)
	return msg
}

func entries(app string, msgs ...string) []providers.LogEntry {
	base := time.Now().Truncate(time.Second)
	out := make([]providers.LogEntry, len(msgs))
	for i, m := range msgs {
		out[i] = providers.LogEntry{Time: base.Add(time.Duration(i) * time.Millisecond), App: app, Stream: "task-1", Process: "web", Message: m}
	}
	return out
}

func TestWriteRetries(t *testing.T) {
	const throttled, internal, invalid = "ProvisionedThroughputExceededException", "InternalFailure", "InvalidArgumentException"
	for _, tc := range []struct {
		name     string
		script   [][]string
		wantSent [][]string
		wantErr  error
	}{
		{"records throttled one by one are sent again, alone", [][]string{{"", throttled, ""}, {internal}},
			[][]string{{"a", "b", "c"}, {"b"}, {"b"}}, nil},
		{"records still failing after five attempts are ErrThrottled", [][]string{{throttled}, {throttled}, {throttled}, {throttled}, {throttled}},
			[][]string{{"a", "b", "c"}, {"a"}, {"a"}, {"a"}, {"a"}}, providers.ErrThrottled},
		{"a record failing for another reason is not sent again", [][]string{{"", invalid, ""}},
			[][]string{{"a", "b", "c"}}, providers.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &putStub{script: tc.script}
			l := kinesislogs.New(api, "logs", nil)
			err := l.Write(t.Context(), entries("web", "a", "b", "c"))
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Write: %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantSent, api.sent); diff != "" {
				t.Errorf("messages sent per call (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteValidates(t *testing.T) {
	long := entries("web", "x")
	long[0].Message = strings.Repeat("x", kinesislogs.MaxRecordBytes)
	noStream := entries("web", "x")
	noStream[0].Stream = ""
	for _, tc := range []struct {
		name    string
		entries []providers.LogEntry
	}{
		{"an entry without a stream", append(entries("web", "ok"), noStream...)},
		{"an app name longer than a partition key", entries(strings.Repeat("a", kinesislogs.MaxPartitionKey+1), "x")},
		{"a record over 1 MiB", append(entries("web", "ok"), long...)},
	} {
		t.Run(tc.name+" is ErrInvalid and nothing is sent", func(t *testing.T) {
			api := &putStub{}
			err := kinesislogs.New(api, "logs", nil).Write(t.Context(), tc.entries)
			if !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Write: %v, want an error matching ErrInvalid", err)
			}
			if len(api.sent) != 0 {
				t.Errorf("sent %d calls, want none", len(api.sent))
			}
		})
	}
}

func TestWriteErrorMapping(t *testing.T) {
	api := &putStub{err: &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "no"}}
	err := kinesislogs.New(api, "logs", nil).Write(t.Context(), entries("web", "x"))
	var apiErr smithy.APIError
	if !errors.Is(err, providers.ErrPermission) || !errors.As(err, &apiErr) {
		t.Errorf("Write: %v, want an error matching ErrPermission that unwraps to the smithy.APIError", err)
	}
}
