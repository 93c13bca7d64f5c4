package kinesislogs

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// API is the part of the Kinesis client the provider uses;
// *kinesis.Client implements it.
type API interface {
	StreamAPI
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	PutRecords(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// API limits of PutRecords.
const (
	// MaxBatchRecords is the most records one PutRecords call takes.
	MaxBatchRecords = 500
	// MaxBatchBytes is the most bytes one call takes, counting each
	// record's data and partition key.
	MaxBatchBytes = 5 << 20
	// MaxRecordBytes is the largest record: its data and partition key.
	MaxRecordBytes = 1 << 20
	// MaxPartitionKey is the longest partition key, in Unicode characters;
	// app names are partition keys.
	MaxPartitionKey = 256
)

// Page sizes of Read: the size of a page when LogQuery.Limit is zero, and
// the largest page.
const (
	DefaultReadLimit = 1000
	MaxReadLimit     = 10000
)

// DefaultClockSkew is the default of Options.ClockSkew.
const DefaultClockSkew = 5 * time.Minute

// putAttempts bounds the PutRecords calls for the records of one batch
// that the service failed one by one (throttled shards, internal errors).
const putAttempts = 5

// Options configure a Logs. Every zero field takes its default.
type Options struct {
	// ClockSkew is how long before LogQuery.Start a read's AT_TIMESTAMP
	// iterators start: records are positioned by their arrival time,
	// entries are selected by their own time, and the two differ by the
	// writer's delay and clock. Entries that arrived more than ClockSkew
	// before their own time may be missed by a read with a Start.
	// DefaultClockSkew when zero.
	ClockSkew time.Duration
	// Now is the clock that stamps entries written without a time; nil
	// means time.Now.
	Now func() time.Time
}

// Logs is a providers.Logs on one Kinesis data stream shared by every app
// of a rack. It is safe for concurrent use.
type Logs struct {
	api    API
	stream string
	opts   Options
	idBase uint32
	idSeq  atomic.Uint32

	noAtTimestamp atomic.Bool // the endpoint refused AT_TIMESTAMP iterators

	mu    sync.Mutex
	index map[string]*shardIndex // deletion index per shard ID
}

var _ providers.Logs = (*Logs)(nil)

// New returns a Logs on the named data stream, using api (usually a
// *kinesis.Client). opts may be nil. Write creates the stream (on-demand)
// when it does not exist; EnsureStream creates it ahead of time.
func New(api API, stream string, opts *Options) *Logs {
	l := &Logs{api: api, stream: stream, index: map[string]*shardIndex{}}
	if opts != nil {
		l.opts = *opts
	}
	if l.opts.ClockSkew <= 0 {
		l.opts.ClockSkew = DefaultClockSkew
	}
	if l.opts.Now == nil {
		l.opts.Now = time.Now
	}
	var b [4]byte
	rand.Read(b[:])
	l.idBase = binary.BigEndian.Uint32(b[:])
	return l
}

// newID returns an entry ID that sorts by time (milliseconds), then by the
// order of this Logs' writes, and is unique across programs.
func (l *Logs) newID(t time.Time) string {
	return fmt.Sprintf("%012x%08x%06x", max(t.UnixMilli(), 0), l.idBase, l.idSeq.Add(1)&0xffffff)
}

// record is the data of a record: one entry, or a deletion marker of an
// app's logs.
type record struct {
	Version int    `json:"convox"`
	App     string `json:"app"`
	Deleted bool   `json:"deleted,omitempty"`
	ID      string `json:"id,omitempty"`
	Time    int64  `json:"t,omitempty"` // Unix nanoseconds
	Stream  string `json:"stream,omitempty"`
	Process string `json:"process,omitempty"`
	Release string `json:"release,omitempty"`
	Message string `json:"msg,omitempty"`
}

func decodeRecord(data []byte) (record, bool) {
	var r record
	if json.Unmarshal(data, &r) != nil || r.Version != 1 || r.App == "" {
		return record{}, false
	}
	return r, true
}

func (r record) entry() providers.LogEntry {
	return providers.LogEntry{ID: r.ID, Time: time.Unix(0, r.Time).UTC(), App: r.App, Stream: r.Stream, Process: r.Process, Release: r.Release, Message: r.Message}
}

func recordSize(e types.PutRecordsRequestEntry) int {
	return len(e.Data) + len(aws.ToString(e.PartitionKey))
}

// Batches splits records into the fewest consecutive PutRecords calls the
// API accepts: at most MaxBatchRecords records and MaxBatchBytes bytes
// (data and partition keys) each. Filling each batch greedily is optimal
// for consecutive batches.
func Batches(records []types.PutRecordsRequestEntry) [][]types.PutRecordsRequestEntry {
	var out [][]types.PutRecordsRequestEntry
	start, size := 0, 0
	for i, r := range records {
		n := recordSize(r)
		if i > start && (i-start == MaxBatchRecords || size+n > MaxBatchBytes) {
			out = append(out, records[start:i:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(records) {
		out = append(out, records[start:])
	}
	return out
}

// Write implements providers.Logs: each entry is one record, JSON encoded,
// whose partition key is the entry's app, so that an app's records share
// a shard and keep their order. Entries are sorted by time and sent in the
// fewest PutRecords calls the API limits allow (see Batches); records the
// service fails one by one (a throttled shard) are sent again with
// backoff, up to five attempts. A missing stream is created (see
// EnsureStream) and the call sent again.
//
// Every entry is validated before the first call: entries without App or
// Stream, apps longer than MaxPartitionKey characters and records over
// MaxRecordBytes return ErrInvalid and nothing is written. Entries without
// a time get the current one; times keep their nanoseconds.
func (l *Logs) Write(ctx context.Context, entries []providers.LogEntry) error {
	entries = slices.Clone(entries)
	for i, e := range entries {
		if e.App == "" || e.Stream == "" {
			return providers.Invalidf("kinesislogs: entry %d has no app or no stream", i)
		}
		if utf8.RuneCountInString(e.App) > MaxPartitionKey {
			return providers.Invalidf("kinesislogs: entry %d: app name longer than %d characters", i, MaxPartitionKey)
		}
		if e.Time.IsZero() {
			entries[i].Time = l.opts.Now()
		}
		if e.ID == "" {
			entries[i].ID = l.newID(entries[i].Time)
		}
	}
	slices.SortStableFunc(entries, func(a, b providers.LogEntry) int { return a.Time.Compare(b.Time) })
	records := make([]types.PutRecordsRequestEntry, len(entries))
	for i, e := range entries {
		data, _ := json.Marshal(record{Version: 1, App: e.App, ID: e.ID, Time: e.Time.UnixNano(), Stream: e.Stream, Process: e.Process, Release: e.Release, Message: e.Message})
		records[i] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(e.App)}
		if n := recordSize(records[i]); n > MaxRecordBytes {
			return providers.Invalidf("kinesislogs: entry %q: a record of %d bytes exceeds %d", e.ID, n, MaxRecordBytes)
		}
	}
	for _, batch := range Batches(records) {
		if err := l.put(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// put sends one batch, sending again the records the service failed.
func (l *Logs) put(ctx context.Context, batch []types.PutRecordsRequestEntry) error {
	b := poll.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	created := false
	for attempt := 1; ; attempt++ {
		out, err := l.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(l.stream), Records: batch})
		if err != nil && !created && awserr.Code(err) == "ResourceNotFoundException" {
			if err := EnsureStream(ctx, l.api, l.stream, nil); err != nil {
				return err
			}
			created = true
			attempt--
			continue
		}
		if err != nil {
			return awserr.Wrap(fmt.Sprintf("kinesislogs: put %d records to %s", len(batch), l.stream), err)
		}
		if aws.ToInt32(out.FailedRecordCount) == 0 {
			return nil
		}
		var failed []types.PutRecordsRequestEntry
		var codes []string
		for i, r := range out.Records {
			if r.ErrorCode != nil && i < len(batch) {
				failed = append(failed, batch[i])
				codes = append(codes, aws.ToString(r.ErrorCode))
			}
		}
		if attempt == putAttempts {
			sentinel := providers.ErrUnavailable
			if slices.Contains(codes, "ProvisionedThroughputExceededException") {
				sentinel = providers.ErrThrottled
			}
			return fmt.Errorf("kinesislogs: put to %s: %d records failed after %d attempts (%s): %w", l.stream, len(failed), attempt, codes[0], sentinel)
		}
		if slices.ContainsFunc(codes, func(c string) bool {
			return c != "ProvisionedThroughputExceededException" && c != "InternalFailure"
		}) {
			return fmt.Errorf("kinesislogs: put to %s: %d records failed (%s): %w", l.stream, len(failed), codes[0], providers.ErrInvalid)
		}
		batch = failed
		if err := b.Wait(ctx); err != nil {
			return err
		}
	}
}

// Delete implements providers.Logs. Kinesis cannot delete records; Delete
// appends a deletion marker to the app's shard, and reads hide the app's
// records that arrived before it (they expire with the stream's
// retention). A missing stream holds nothing to delete.
func (l *Logs) Delete(ctx context.Context, app string) error {
	if app == "" || utf8.RuneCountInString(app) > MaxPartitionKey {
		return providers.Invalidf("kinesislogs: delete: invalid app %q", app)
	}
	data, _ := json.Marshal(record{Version: 1, App: app, Deleted: true, Time: l.opts.Now().UnixNano()})
	out, err := l.api.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(l.stream), Records: []types.PutRecordsRequestEntry{{Data: data, PartitionKey: aws.String(app)}}})
	if err != nil {
		if awserr.Code(err) == "ResourceNotFoundException" {
			return nil
		}
		return awserr.Wrap(fmt.Sprintf("kinesislogs: delete %s", app), err)
	}
	if aws.ToInt32(out.FailedRecordCount) > 0 {
		r := out.Records[0]
		sentinel := providers.ErrUnavailable
		if aws.ToString(r.ErrorCode) == "ProvisionedThroughputExceededException" {
			sentinel = providers.ErrThrottled
		}
		return fmt.Errorf("kinesislogs: delete %s: %s: %s: %w", app, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage), sentinel)
	}
	return nil
}

// StreamAPI is the part of the Kinesis client EnsureStream uses;
// *kinesis.Client implements it.
type StreamAPI interface {
	CreateStream(context.Context, *kinesis.CreateStreamInput, ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// StreamOptions configure EnsureStream.
type StreamOptions struct {
	// Shards, when positive, creates a provisioned stream of that many
	// shards; zero creates an on-demand stream, which scales by itself.
	Shards int
}

// EnsureStream creates the data stream unless it exists, and waits until
// it is ACTIVE (a new stream takes seconds on AWS) or ctx ends. It is
// idempotent and safe to call concurrently: a stream being created by
// another caller is waited for. An existing stream is left as it is.
// opts may be nil.
func EnsureStream(ctx context.Context, api StreamAPI, name string, opts *StreamOptions) error {
	status, err := streamStatus(ctx, api, name)
	if errors.Is(err, providers.ErrNotFound) {
		in := &kinesis.CreateStreamInput{StreamName: aws.String(name), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}
		if opts != nil && opts.Shards > 0 {
			in.StreamModeDetails = &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned}
			in.ShardCount = aws.Int32(int32(opts.Shards))
		}
		if _, err := api.CreateStream(ctx, in); err != nil && awserr.Code(err) != "ResourceInUseException" {
			return awserr.Wrap("kinesislogs: create stream "+name, err)
		}
		status, err = streamStatus(ctx, api, name)
	}
	b := poll.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	for err == nil && status != types.StreamStatusActive && status != types.StreamStatusUpdating {
		if status == types.StreamStatusDeleting {
			return fmt.Errorf("kinesislogs: stream %s is being deleted: %w", name, providers.ErrConflict)
		}
		if err := b.Wait(ctx); err != nil {
			return err
		}
		status, err = streamStatus(ctx, api, name)
	}
	return err
}

func streamStatus(ctx context.Context, api StreamAPI, name string) (types.StreamStatus, error) {
	out, err := api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		return "", awserr.Wrap("kinesislogs: describe stream "+name, err)
	}
	if out.StreamDescriptionSummary == nil {
		return "", fmt.Errorf("kinesislogs: describe stream %s: empty response: %w", name, providers.ErrNotFound)
	}
	return out.StreamDescriptionSummary.StreamStatus, nil
}

// compareSeq compares two sequence numbers (decimal strings of up to 128
// bits).
func compareSeq(a, b string) int {
	a, b = trimZeros(a), trimZeros(b)
	return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b))
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
