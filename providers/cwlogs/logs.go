package cwlogs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// API is the part of the CloudWatch Logs client the provider uses;
// *cloudwatchlogs.Client implements it.
type API interface {
	CreateLogGroup(context.Context, *cloudwatchlogs.CreateLogGroupInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error)
	CreateLogStream(context.Context, *cloudwatchlogs.CreateLogStreamInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	DeleteLogGroup(context.Context, *cloudwatchlogs.DeleteLogGroupInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DeleteLogGroupOutput, error)
	DescribeLogGroups(context.Context, *cloudwatchlogs.DescribeLogGroupsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogGroupsOutput, error)
	PutLogEvents(context.Context, *cloudwatchlogs.PutLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error)
	FilterLogEvents(context.Context, *cloudwatchlogs.FilterLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
	StartLiveTail(context.Context, *cloudwatchlogs.StartLiveTailInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.StartLiveTailOutput, error)
}

// DefaultGroupPrefix is the prefix of log group names when
// Options.GroupPrefix is empty: an app's group is "/convox/<app>".
const DefaultGroupPrefix = "/convox/"

// Page sizes of Read: the size of a page when LogQuery.Limit is zero, and
// the largest page (the FilterLogEvents limit).
const (
	DefaultReadLimit = 1000
	MaxReadLimit     = 10000
)

// Defaults of the tail's polling fallback.
const (
	DefaultTailLookback     = 5 * time.Minute
	DefaultTailPollInterval = 2 * time.Second
)

// Options configure a Logs. Every zero field takes its default.
type Options struct {
	// GroupPrefix prefixes an app's name to make its log group name;
	// DefaultGroupPrefix when empty. The ECS scheduler's awslogs
	// configuration must name the same group (its default does).
	GroupPrefix string
	// NoFilterPattern keeps LogQuery.Filter on the client: it is never sent
	// as a filter pattern. Set it for endpoints that do not implement
	// CloudWatch filter patterns (an emulator that matches the raw pattern
	// text as a substring, quotes included, would find nothing).
	NoFilterPattern bool
	// DisableLiveTail makes Tail poll FilterLogEvents from the start,
	// without trying StartLiveTail.
	DisableLiveTail bool
	// TailLookback is how far back in event time the polling tail looks
	// for newly ingested events (DefaultTailLookback when zero). Events
	// ingested while a polling tail runs but timestamped earlier than this
	// are not delivered by it; each poll reads the events of this window.
	TailLookback time.Duration
	// TailPollInterval is the pause between polls of the polling tail
	// (DefaultTailPollInterval when zero).
	TailPollInterval time.Duration
	// Now is the clock that stamps entries written without a time and
	// places the polling tail's window; nil means time.Now.
	Now func() time.Time
	// Logger receives diagnostics (a tail switching to polling, and why);
	// nil discards them.
	Logger *slog.Logger
	// IAM, when set, lets Subscribe create the role a Kinesis or Firehose
	// destination needs (see Logs.Subscribe); nil means subscriptions to
	// those destinations must name a role.
	IAM IAMAPI
}

// Logs is a providers.Logs and providers.LogTailer on CloudWatch Logs. It
// is safe for concurrent use.
type Logs struct {
	api    API
	opts   Options
	idBase uint32
	idSeq  atomic.Uint32
	// unmerged is set once the endpoint returned events out of time
	// order: from then on every read sorts (see Read).
	unmerged atomic.Bool
}

var (
	_ providers.Logs      = (*Logs)(nil)
	_ providers.LogTailer = (*Logs)(nil)
)

// New returns a Logs using api (usually a *cloudwatchlogs.Client). opts
// may be nil.
func New(api API, opts *Options) *Logs {
	l := &Logs{api: api}
	if opts != nil {
		l.opts = *opts
	}
	if l.opts.GroupPrefix == "" {
		l.opts.GroupPrefix = DefaultGroupPrefix
	}
	if l.opts.TailLookback <= 0 {
		l.opts.TailLookback = DefaultTailLookback
	}
	if l.opts.TailPollInterval <= 0 {
		l.opts.TailPollInterval = DefaultTailPollInterval
	}
	if l.opts.Now == nil {
		l.opts.Now = time.Now
	}
	if l.opts.Logger == nil {
		l.opts.Logger = slog.New(slog.DiscardHandler)
	}
	var b [4]byte
	rand.Read(b[:])
	l.idBase = binary.BigEndian.Uint32(b[:])
	return l
}

// Group returns the name of an app's log group: Options.GroupPrefix
// followed by the app name.
func (l *Logs) Group(app string) string { return l.opts.GroupPrefix + app }

// newID returns an entry ID that sorts by time (milliseconds), then by the
// order of this Logs' writes, and is unique across programs.
func (l *Logs) newID(t time.Time) string {
	return fmt.Sprintf("%012x%08x%06x", max(t.UnixMilli(), 0), l.idBase, l.idSeq.Add(1)&0xffffff)
}

// ---------------------------------------------------------------------------
// Stream names

// noProcess is the process component of the stream of entries without a
// process. A process name cannot be "-" (it is escaped if it is).
const noProcess = "-"

// escape percent-encodes the characters a log stream name cannot hold
// (':' and '*'), '%' itself, and '/' when slash is set.
func escape(s string, slash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || c == ':' || c == '*' || (slash && c == '/') {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// unescape reverses escape; ok is false for a malformed escape.
func unescape(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		var c byte
		if _, err := fmt.Sscanf(s[i+1:i+3], "%02X", &c); err != nil {
			return "", false
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), true
}

func processComponent(process string) string {
	switch process {
	case "":
		return noProcess
	case noProcess:
		return "%2D"
	}
	return escape(process, true)
}

// StreamName returns the log stream that holds the entries of a process
// and a stream (a task ID, or providers.StreamPlatform):
// "<process>/<process>/<stream>", the layout of the awslogs driver with
// the stream prefix and the container both named after the process, as the
// ECS scheduler configures them. A process of "" is written "-"; '%', ':'
// and '*' (and '/' in the process) are percent-encoded.
func StreamName(process, stream string) string {
	p := processComponent(process)
	return p + "/" + p + "/" + escape(stream, false)
}

// ParseStreamName splits a log stream name made by StreamName (or by the
// awslogs driver as the ECS scheduler configures it) into the process and
// the stream. A name of another layout is a stream of no process.
func ParseStreamName(name string) (process, stream string) {
	parts := strings.SplitN(name, "/", 3)
	if len(parts) != 3 || parts[0] != parts[1] || parts[0] == "" {
		return "", name
	}
	s, ok := unescape(parts[2])
	if !ok {
		return "", name
	}
	if parts[0] == noProcess {
		return "", s
	}
	p, ok := unescape(parts[0])
	if !ok {
		return "", name
	}
	return p, s
}

// ---------------------------------------------------------------------------
// Message envelope

// envelopePrefix starts every message Write sends; it marks the envelope.
const envelopePrefix = `{"convox":1,`

// envelope is the JSON message of an entry written by Write.
type envelope struct {
	Version int    `json:"convox"`
	ID      string `json:"id"`
	Release string `json:"release,omitempty"`
	Message string `json:"message"`
}

func encodeEnvelope(e providers.LogEntry) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(envelope{Version: 1, ID: e.ID, Release: e.Release, Message: e.Message})
	return strings.TrimSuffix(b.String(), "\n")
}

func decodeEnvelope(msg string) (envelope, bool) {
	var env envelope
	if !strings.HasPrefix(msg, envelopePrefix) || json.Unmarshal([]byte(msg), &env) != nil || env.Version != 1 || env.ID == "" {
		return envelope{}, false
	}
	return env, true
}

// entryOf maps an event of an app's group to a log entry and reports
// whether the event carried an envelope. rawID is the ID of an event that
// carries none.
func entryOf(app, streamName string, timestamp int64, message, rawID string) (providers.LogEntry, bool) {
	process, stream := ParseStreamName(streamName)
	e := providers.LogEntry{ID: rawID, Time: time.UnixMilli(timestamp).UTC(), App: app, Stream: stream, Process: process, Message: message}
	env, ok := decodeEnvelope(message)
	if ok {
		e.ID, e.Release, e.Message = env.ID, env.Release, env.Message
	}
	return e, ok
}

// filterable reports whether LogQuery.Filter can be sent as a quoted-term
// filter pattern: it matches the envelope's JSON text exactly when the
// message contains it only if JSON encoding leaves it unchanged and it
// holds no double quote.
func filterable(filter string) bool {
	for _, r := range filter {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || r == 0xfffd {
			return false
		}
	}
	return filter != ""
}

// filterPattern returns the filter pattern of q, or nil.
func (l *Logs) filterPattern(q providers.LogQuery) *string {
	if l.opts.NoFilterPattern || !filterable(q.Filter) {
		return nil
	}
	return aws.String(`"` + q.Filter + `"`)
}

// ---------------------------------------------------------------------------
// Write

// API limits of PutLogEvents.
const (
	// MaxBatchEvents is the most events one PutLogEvents call takes.
	MaxBatchEvents = 10000
	// MaxBatchBytes is the most bytes one call takes: the sum of the UTF-8
	// lengths of the messages plus EventOverhead per event.
	MaxBatchBytes = 1048576
	// EventOverhead is what every event counts on top of its message.
	EventOverhead = 26
	// MaxEventBytes is the longest message of one event.
	MaxEventBytes = MaxBatchBytes - EventOverhead
	// MaxBatchSpan is the longest time between the first and the last
	// event of one call.
	MaxBatchSpan = 24 * time.Hour
)

// Limits on names.
const (
	maxGroupName  = 512
	maxStreamName = 512
)

// stream is the destination of events.
type stream struct{ group, name string }

// event validates an entry and turns it into an event of its stream.
// An entry without an ID or a time gets one.
func (l *Logs) event(e providers.LogEntry) (stream, types.InputLogEvent, error) {
	if e.App == "" || e.Stream == "" {
		return stream{}, types.InputLogEvent{}, providers.Invalidf("cwlogs: entry has no app or no stream")
	}
	if e.Time.IsZero() {
		e.Time = l.opts.Now()
	}
	if e.ID == "" {
		e.ID = l.newID(e.Time)
	}
	dst := stream{l.Group(e.App), StreamName(e.Process, e.Stream)}
	if len(dst.group) > maxGroupName || len(dst.name) > maxStreamName {
		return stream{}, types.InputLogEvent{}, providers.Invalidf("cwlogs: log group %q or stream %q is too long", dst.group, dst.name)
	}
	msg := encodeEnvelope(e)
	if len(msg) > MaxEventBytes {
		return stream{}, types.InputLogEvent{}, providers.Invalidf("cwlogs: a message of %d bytes with its envelope exceeds the %d bytes of an event", len(msg), MaxEventBytes)
	}
	return dst, types.InputLogEvent{Message: aws.String(msg), Timestamp: aws.Int64(e.Time.UnixMilli())}, nil
}

// prepare validates entries and turns them into events per stream, in
// chronological order.
func (l *Logs) prepare(entries []providers.LogEntry) (map[stream][]types.InputLogEvent, error) {
	out := map[stream][]types.InputLogEvent{}
	for i, e := range entries {
		dst, ev, err := l.event(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out[dst] = append(out[dst], ev)
	}
	return out, nil
}

// putAll sends the events of every stream, each stream's sorted by time
// and split by Batches.
func (l *Logs) putAll(ctx context.Context, byStream map[stream][]types.InputLogEvent) error {
	dsts := make([]stream, 0, len(byStream))
	for dst, events := range byStream {
		dsts = append(dsts, dst)
		slices.SortStableFunc(events, func(a, b types.InputLogEvent) int { return cmp.Compare(*a.Timestamp, *b.Timestamp) })
	}
	slices.SortFunc(dsts, func(a, b stream) int { return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.name, b.name)) })
	var rejected []error
	for _, dst := range dsts {
		for _, batch := range Batches(byStream[dst]) {
			if err := l.put(ctx, dst, batch); err != nil {
				if !errors.Is(err, errRejected) {
					return err
				}
				rejected = append(rejected, err)
			}
		}
	}
	return errors.Join(rejected...)
}

// Batches splits events, which must be in chronological order, into the
// fewest consecutive PutLogEvents batches the API accepts: each holds at
// most MaxBatchEvents events and MaxBatchBytes bytes (counting
// EventOverhead per event) and spans at most MaxBatchSpan. Filling each
// batch greedily is optimal for consecutive batches, because every part of
// an acceptable batch is acceptable too. An event larger than a batch gets
// a batch of its own (the API rejects it).
func Batches(events []types.InputLogEvent) [][]types.InputLogEvent {
	var out [][]types.InputLogEvent
	start, size := 0, 0
	for i, e := range events {
		n := len(aws.ToString(e.Message)) + EventOverhead
		if i > start && (i-start == MaxBatchEvents || size+n > MaxBatchBytes ||
			time.Duration(aws.ToInt64(e.Timestamp)-aws.ToInt64(events[start].Timestamp))*time.Millisecond > MaxBatchSpan) {
			out = append(out, events[start:i:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(events) {
		out = append(out, events[start:])
	}
	return out
}

// Write implements providers.Logs. Entries go to their app's group, in
// the stream of their process and stream (see StreamName), as envelope
// messages; each stream's entries are sorted by time and sent in the
// fewest PutLogEvents calls the API limits allow (see Batches). A missing
// group or stream is created on first use. Entries without a time get the
// current one; times are stored in milliseconds.
//
// Write validates every entry before the first call: entries without App
// or Stream, and messages larger than MaxEventBytes with their envelope,
// return ErrInvalid and nothing is written. When a call fails, the batches
// before it are written and the rest are not. Events the service rejects
// as too old or too new (RejectedLogEventsInfo) make Write return an error
// matching ErrInvalid after the other events were written.
func (l *Logs) Write(ctx context.Context, entries []providers.LogEntry) error {
	byStream, err := l.prepare(entries)
	if err != nil {
		return err
	}
	return l.putAll(ctx, byStream)
}

var errRejected = fmt.Errorf("%w: events rejected", providers.ErrInvalid)

// put sends one batch, creating the group and the stream when missing.
func (l *Logs) put(ctx context.Context, dst stream, batch []types.InputLogEvent) error {
	in := &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(dst.group), LogStreamName: aws.String(dst.name), LogEvents: batch}
	out, err := l.api.PutLogEvents(ctx, in)
	if err != nil && awserr.Code(err) == "ResourceNotFoundException" {
		if err = l.ensureStream(ctx, dst); err == nil {
			out, err = l.api.PutLogEvents(ctx, in)
		}
	}
	if err != nil {
		return awserr.Wrap(fmt.Sprintf("cwlogs: put %d events to %s %s", len(batch), dst.group, dst.name), err)
	}
	if r := out.RejectedLogEventsInfo; r != nil {
		return fmt.Errorf("cwlogs: put to %s %s: %w (too old before index %d, expired before %d, too new from %d)", dst.group, dst.name, errRejected,
			aws.ToInt32(r.TooOldLogEventEndIndex), aws.ToInt32(r.ExpiredLogEventEndIndex), aws.ToInt32(r.TooNewLogEventStartIndex))
	}
	return nil
}

// ensureGroup creates a log group; an existing one is fine.
func (l *Logs) ensureGroup(ctx context.Context, group string) error {
	_, err := l.api.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)})
	if err != nil && awserr.Code(err) != "ResourceAlreadyExistsException" {
		return awserr.Wrap(fmt.Sprintf("cwlogs: create log group %s", group), err)
	}
	return nil
}

// ensureStream creates the group and the stream; existing ones are fine.
func (l *Logs) ensureStream(ctx context.Context, dst stream) error {
	if err := l.ensureGroup(ctx, dst.group); err != nil {
		return err
	}
	_, err := l.api.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(dst.group), LogStreamName: aws.String(dst.name)})
	if err != nil && awserr.Code(err) != "ResourceAlreadyExistsException" {
		return awserr.Wrap(fmt.Sprintf("cwlogs: create log stream %s %s", dst.group, dst.name), err)
	}
	return nil
}

// Delete implements providers.Logs: it deletes the app's log group with
// every stream in it. A missing group is not an error.
func (l *Logs) Delete(ctx context.Context, app string) error {
	if app == "" {
		return providers.Invalidf("cwlogs: delete: no app")
	}
	_, err := l.api.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String(l.Group(app))})
	if err != nil && awserr.Code(err) != "ResourceNotFoundException" {
		return awserr.Wrap(fmt.Sprintf("cwlogs: delete log group %s", l.Group(app)), err)
	}
	return nil
}
