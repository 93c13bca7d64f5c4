package logforward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// Sink receives an app's log entries from the handler.
type Sink interface {
	// Send delivers entries (at most Options.MaxBatch, from one or more
	// apps, in the order they were delivered). An error makes the handler
	// report the entries' records as failed, so that Lambda delivers them
	// again (to every sink: delivery is at least once), except an error
	// matching providers.ErrInvalid, which says they can never be
	// accepted: they are logged and dropped. The handler does not modify
	// entries after Send returns, so a sink may keep them.
	Send(ctx context.Context, entries []providers.LogEntry) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, entries []providers.LogEntry) error

// Send calls f.
func (f SinkFunc) Send(ctx context.Context, entries []providers.LogEntry) error {
	return f(ctx, entries)
}

// DefaultMaxBatch is Options.MaxBatch's default.
const DefaultMaxBatch = 10000

// Options configure a Handler.
type Options struct {
	// Sinks receive the entries, each in turn. At least one is required.
	Sinks []Sink
	// GroupPrefix is the prefix of the apps' log groups
	// (cwlogs.DefaultGroupPrefix when empty); events of other groups are
	// dropped.
	GroupPrefix string
	// Pattern keeps the entries whose message matches it (see Compile);
	// empty keeps every entry. Give it the subscription's pattern.
	Pattern string
	// MaxBatch bounds the entries of one Sink.Send (DefaultMaxBatch).
	MaxBatch int
	// Limits bound what the handler reads.
	Limits Limits
	// Logger receives what is dropped and why; nil discards it.
	Logger *slog.Logger
}

// Stats count what a Handler did since it was made.
type Stats struct {
	// Invocations is the number of events handled.
	Invocations int64
	// Payloads is the number of subscription payloads decoded (control
	// messages included).
	Payloads int64
	// Events is the number of log events in data payloads.
	Events int64
	// Forwarded is the number of entries that matched the pattern and were
	// sent to the sinks (counting a retried entry again).
	Forwarded int64
	// Dropped is the number of payloads or entries dropped as invalid:
	// undecodable payloads, foreign log groups, batches a sink refused
	// with ErrInvalid.
	Dropped int64
}

// Handler is a Lambda handler for CloudWatch Logs subscription data,
// delivered directly (a Lambda destination) or through a Kinesis stream
// (a Kinesis destination and an event source mapping). It is safe for
// concurrent use.
type Handler struct {
	opts    Options
	pattern Pattern
	lim     Limits
	log     *slog.Logger

	invocations, payloads, events, forwarded, dropped atomic.Int64
}

var _ lambda.Handler = (*Handler)(nil)

// New returns a Handler, or an error matching providers.ErrInvalid when
// there is no sink or the pattern does not compile.
func New(opts Options) (*Handler, error) {
	if len(opts.Sinks) == 0 {
		return nil, providers.Invalidf("logforward: no sink")
	}
	for i, s := range opts.Sinks {
		if s == nil {
			return nil, providers.Invalidf("logforward: sink %d is nil", i)
		}
	}
	p, err := Compile(opts.Pattern)
	if err != nil {
		return nil, err
	}
	if opts.GroupPrefix == "" {
		opts.GroupPrefix = cwlogs.DefaultGroupPrefix
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, pattern: p, lim: opts.Limits.withDefaults(), log: log}, nil
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	return Stats{Invocations: h.invocations.Load(), Payloads: h.payloads.Load(), Events: h.events.Load(), Forwarded: h.forwarded.Load(), Dropped: h.dropped.Load()}
}

// invocation is either event the handler accepts.
type invocation struct {
	AWSLogs *events.CloudwatchLogsRawData `json:"awslogs"`
	Records []events.KinesisEventRecord   `json:"Records"`
}

// Invoke implements lambda.Handler, so that lambda.Start(h) runs it. It
// accepts a CloudWatch Logs event ({"awslogs":{"data":...}}), handled by
// HandleLogs, and a Kinesis event ({"Records":[...]}), handled by
// HandleKinesis, whose response (batch item failures) it returns as JSON.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) > h.lim.MaxInvocationBytes {
		return nil, fmt.Errorf("logforward: %w: an invocation of %d bytes exceeds %d", providers.ErrInvalid, len(payload), h.lim.MaxInvocationBytes)
	}
	var in invocation
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, fmt.Errorf("logforward: %w: the invocation is not JSON: %w", providers.ErrInvalid, err)
	}
	switch {
	case in.AWSLogs != nil:
		return nil, h.HandleLogs(ctx, events.CloudwatchLogsEvent{AWSLogs: *in.AWSLogs})
	case in.Records != nil:
		resp, err := h.HandleKinesis(ctx, events.KinesisEvent{Records: in.Records})
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
	return nil, fmt.Errorf("logforward: %w: the invocation is neither a CloudWatch Logs nor a Kinesis event", providers.ErrInvalid)
}

// HandleLogs handles an invocation by CloudWatch Logs (a Lambda
// destination): one payload. It returns an error when a sink failed, so
// that Lambda retries the invocation; an undecodable payload is logged and
// dropped.
func (h *Handler) HandleLogs(ctx context.Context, ev events.CloudwatchLogsEvent) error {
	h.invocations.Add(1)
	p, err := DecodeBase64(ev.AWSLogs.Data, h.lim)
	if err != nil {
		h.drop("payload", 1, err)
		return nil
	}
	entries := h.entries(p)
	if err := h.flush(ctx, entries); err != nil {
		return fmt.Errorf("logforward: %d entries of %s %s: %w", len(entries), p.LogGroup, p.LogStream, err)
	}
	return nil
}

// HandleKinesis handles a batch of Kinesis records, each a subscription
// payload. Records are decoded in order and their entries sent to the
// sinks in batches of at most MaxBatch; when a sink fails, the response
// names the first record of the failed batch and the rest of the batch is
// not processed, so Lambda (with ReportBatchItemFailures on the event
// source mapping) delivers again from that record: nothing is lost, and
// only the failed batch's entries can reach a sink twice. Records that
// cannot be decoded (not a subscription payload, over a limit) are logged
// and dropped. A batch of more than Limits.MaxRecords records is an error.
func (h *Handler) HandleKinesis(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	h.invocations.Add(1)
	resp := events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}
	if len(ev.Records) > h.lim.MaxRecords {
		return resp, fmt.Errorf("logforward: %w: %d records exceed %d", providers.ErrInvalid, len(ev.Records), h.lim.MaxRecords)
	}
	var pending []providers.LogEntry
	first := -1 // the first record with entries in pending
	fail := func(err error) (events.KinesisEventResponse, error) {
		seq := ev.Records[first].Kinesis.SequenceNumber
		h.log.Warn("logforward: a sink failed; the batch is retried from a record", "sequence", seq, "error", err)
		resp.BatchItemFailures = []events.KinesisBatchItemFailure{{ItemIdentifier: seq}}
		return resp, nil
	}
	for i, r := range ev.Records {
		if err := ctx.Err(); err != nil {
			if first < 0 {
				first = i
			}
			return fail(err)
		}
		p, err := Decode(r.Kinesis.Data, h.lim)
		if err != nil {
			h.drop("record "+r.Kinesis.SequenceNumber, 1, err)
			continue
		}
		entries := h.entries(p)
		if len(entries) == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		pending = append(pending, entries...)
		if len(pending) >= h.opts.MaxBatch {
			if err := h.flush(ctx, pending); err != nil {
				return fail(err)
			}
			pending, first = nil, -1 // a sink may keep the slice it got
		}
	}
	if len(pending) > 0 {
		if err := h.flush(ctx, pending); err != nil {
			return fail(err)
		}
	}
	return resp, nil
}

// entries maps a payload's events to the entries the pattern keeps.
func (h *Handler) entries(p Payload) []providers.LogEntry {
	h.payloads.Add(1)
	if p.MessageType != DataMessage {
		return nil
	}
	app, ok := strings.CutPrefix(p.LogGroup, h.opts.GroupPrefix)
	if !ok || app == "" {
		h.drop("payload of "+p.LogGroup, 1, errors.New("the log group is not an app's"))
		return nil
	}
	h.events.Add(int64(len(p.LogEvents)))
	out := make([]providers.LogEntry, 0, len(p.LogEvents))
	for _, ev := range p.LogEvents {
		e := cwlogs.SubscriptionEntry(app, p.LogStream, ev.ID, ev.Timestamp, ev.Message)
		if h.pattern.Match(e.Message) {
			out = append(out, e)
		}
	}
	return out
}

// flush sends entries to every sink in batches of MaxBatch.
func (h *Handler) flush(ctx context.Context, entries []providers.LogEntry) error {
	for start := 0; start < len(entries); start += h.opts.MaxBatch {
		batch := entries[start:min(start+h.opts.MaxBatch, len(entries))]
		h.forwarded.Add(int64(len(batch)))
		for i, s := range h.opts.Sinks {
			err := s.Send(ctx, batch)
			switch {
			case err == nil:
			case errors.Is(err, providers.ErrInvalid):
				h.drop(fmt.Sprintf("batch for sink %d", i), int64(len(batch)), err)
			default:
				return fmt.Errorf("sink %d: %w", i, err)
			}
		}
	}
	return nil
}

func (h *Handler) drop(what string, n int64, err error) {
	h.dropped.Add(n)
	h.log.Warn("logforward: dropped "+what, "count", n, "error", err)
}
