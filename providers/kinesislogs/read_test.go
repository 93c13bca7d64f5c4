package kinesislogs_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/kinesislogs"
)

// iterators records the shard iterators requested.
type iterators struct {
	kinesislogs.API
	mu  sync.Mutex
	got []string // "<shard> <type>"
}

func (r *iterators) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	r.mu.Lock()
	r.got = append(r.got, aws.ToString(in.ShardId)+" "+string(in.ShardIteratorType))
	r.mu.Unlock()
	return r.API.GetShardIterator(ctx, in, opts...)
}

func (r *iterators) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func readAll(t *testing.T, l *kinesislogs.Logs, q providers.LogQuery) []string {
	t.Helper()
	var out []string
	token := ""
	for range 100 {
		page, err := l.Read(t.Context(), q, token)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for _, e := range page.Entries {
			out = append(out, e.Message)
		}
		if page.Next == "" {
			return out
		}
		token = page.Next
	}
	t.Fatalf("Read: no end after 100 pages")
	return nil
}

// shardOf returns the shard a partition key maps to.
func shardOf(t *testing.T, client *kinesis.Client, stream, key string) string {
	t.Helper()
	out, err := client.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: []types.PutRecordsRequestEntry{{Data: []byte("not a log record"), PartitionKey: aws.String(key)}}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Records[0].ShardId)
}

func TestReadIterators(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		client, stream := emulator(t, e)
		rec := &iterators{API: client}
		l := kinesislogs.New(rec, stream, nil)
		app := awstest.Name(t, "app")
		shard := shardOf(t, client, stream, app) // also a foreign record, which reads skip
		written := entries(app, "a", "b", "c")
		if err := l.Write(t.Context(), written); err != nil {
			t.Fatal(err)
		}
		rec.take()

		t.Run("only the app's shard is read, and pages continue after the last record consumed", func(t *testing.T) {
			got := readAll(t, l, providers.LogQuery{App: app, Limit: 2})
			if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			want := []string{
				shard + " " + string(types.ShardIteratorTypeTrimHorizon),         // deletion index
				shard + " " + string(types.ShardIteratorTypeTrimHorizon),         // first page
				shard + " " + string(types.ShardIteratorTypeAfterSequenceNumber), // deletion index, caught up
				shard + " " + string(types.ShardIteratorTypeAfterSequenceNumber), // second page
			}
			if diff := cmp.Diff(want, rec.take()); diff != "" {
				t.Errorf("shard iterators (-want +got):\n%s", diff)
			}
		})

		t.Run("Start asks for AT_TIMESTAMP; an endpoint refusing it is read from the oldest record", func(t *testing.T) {
			// Start is the time of the first entry written: a time taken
			// later may fall in the next second, after every record.
			q := providers.LogQuery{App: app, Start: written[0].Time}
			for range 2 {
				if diff := cmp.Diff([]string{"a", "b", "c"}, readAll(t, l, q)); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			}
			var starts []string
			for _, it := range rec.take() {
				if it != shard+" "+string(types.ShardIteratorTypeAfterSequenceNumber) {
					starts = append(starts, it)
				}
			}
			at, oldest := shard+" "+string(types.ShardIteratorTypeAtTimestamp), shard+" "+string(types.ShardIteratorTypeTrimHorizon)
			// Kinesis serves AT_TIMESTAMP ("Start reading from the position
			// denoted by a specific time stamp, provided in the value
			// Timestamp"), and so does moto: every read starts there.
			want := []string{at, at}
			if e.Backend == awstest.Kumo {
				// kumo refuses AT_TIMESTAMP: the first read falls back to
				// the oldest record, and later reads start there.
				want = []string{at, oldest, oldest}
			}
			if diff := cmp.Diff(want, starts); diff != "" {
				t.Errorf("starting iterators (-want +got):\n%s", diff)
			}
		})
	})
}

func TestDeleteHidesEarlierRecords(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		client, stream := emulator(t, e)
		writer := kinesislogs.New(client, stream, nil)
		reader := kinesislogs.New(client, stream, nil) // another program
		app := awstest.Name(t, "app")
		other := awstest.Name(t, "other")
		if err := writer.Write(t.Context(), append(entries(app, "before 1", "before 2"), entries(other, "other app")...)); err != nil {
			t.Fatal(err)
		}
		// The reader indexes the shard before the deletion, then catches up.
		if diff := cmp.Diff([]string{"before 1", "before 2"}, readAll(t, reader, providers.LogQuery{App: app})); diff != "" {
			t.Errorf("messages before Delete (-want +got):\n%s", diff)
		}
		if err := writer.Delete(t.Context(), app); err != nil {
			t.Fatal(err)
		}
		after := entries(app, "after")
		if err := writer.Write(t.Context(), after); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			l    *kinesislogs.Logs
			app  string
			want []string
		}{
			{"the deleting program sees only later entries", writer, app, []string{"after"}},
			{"another program sees only later entries", reader, app, []string{"after"}},
			{"a program that never read the stream sees only later entries", kinesislogs.New(client, stream, nil), app, []string{"after"}},
			{"other apps keep their entries", reader, other, []string{"other app"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if diff := cmp.Diff(tc.want, readAll(t, tc.l, providers.LogQuery{App: tc.app})); diff != "" {
					t.Errorf("messages after Delete (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func TestWriteCreatesTheStream(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		client := kinesis.NewFromConfig(e.Config())
		stream := awstest.Name(t, "new")
		t.Cleanup(func() {
			client.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(stream)})
		})
		l := kinesislogs.New(client, stream, nil)
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"Read of a missing stream is empty", func() error {
				page, err := l.Read(t.Context(), providers.LogQuery{App: "web"}, "")
				if err == nil && (len(page.Entries) > 0 || page.Next != "") {
					t.Errorf("Read = %+v, want an empty final page", page)
				}
				return err
			}},
			{"Delete of a missing stream is nil", func() error { return l.Delete(t.Context(), "web") }},
			{"Write creates the stream", func() error { return l.Write(t.Context(), entries("web", "first")) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.call(); err != nil {
					t.Fatal(err)
				}
			})
		}
		if diff := cmp.Diff([]string{"first"}, readAll(t, l, providers.LogQuery{App: "web"})); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
	})
}
