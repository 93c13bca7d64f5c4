package cwlogs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// Reasons a live tail session ends before its context; Tail then polls.
var (
	errSessionClosed = errors.New("the live tail session closed")
	errSampled       = errors.New("the live tail session sampled events (more arrived than it streams)")
)

// Tail implements providers.LogTailer. It starts a StartLiveTail session
// on the app's group (creating the group when missing, so that a session
// can start before the first Write) with the query's stream selection and
// filter pattern, and yields the entries of each sessionUpdate that match
// q, in the order the session delivers them.
//
// When the session cannot start (LimitExceededException: too many
// concurrent sessions; an endpoint without the operation; missing
// permissions), ends (SessionTimeoutException after three hours,
// SessionStreamingException, a broken connection) or reports that it
// sampled events away, Tail switches to polling FilterLogEvents every
// Options.TailPollInterval over the last Options.TailLookback of event
// time, and stays with polling until it ends. Entries are never yielded
// twice across the switch: before it consumes the session, Tail records
// the events already in the lookback window, and both paths count what
// they delivered under the same key (the entry ID for entries Write made,
// else the stream, time and message — counted, so identical lines are
// each delivered). Entries ingested while the session ran but never
// delivered by it are delivered by the first poll — except those ingested
// in the moment between the session's start and the end of that first
// record, which count as already present.
//
// Raw events (written by the awslogs driver) have no event ID in a live
// tail session; their ID there is the stream followed by a digest of their
// time and message. Tail ends when ctx ends, yielding ctx's error, or when
// the loop breaks; a polling error that is not temporary is yielded last.
func (l *Logs) Tail(ctx context.Context, q providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
	return func(yield func(providers.LogEntry, error) bool) {
		if q.App == "" {
			yield(providers.LogEntry{}, providers.Invalidf("cwlogs: tail: no app"))
			return
		}
		q.Start, q.End, q.Limit = time.Time{}, time.Time{}, 0
		t := &tailer{l: l, q: q, group: l.Group(q.App), marks: map[string]*mark{}, yield: yield}
		if err := t.run(ctx); err != nil && !t.stopped {
			yield(providers.LogEntry{}, err)
		}
	}
}

// mark counts the occurrences of one key: those present when the tail
// started (base) and those delivered since.
type mark struct {
	base, delivered int
	ts              int64
}

type tailer struct {
	l         *Logs
	q         providers.LogQuery
	group     string
	marks     map[string]*mark
	baselined bool
	stopped   bool // the loop broke
	yield     func(providers.LogEntry, error) bool
}

func (t *tailer) emit(e providers.LogEntry) bool {
	if !t.yield(e, nil) {
		t.stopped = true
		return false
	}
	return true
}

// key identifies an entry across the session and the polls.
func key(e providers.LogEntry, enveloped bool) string {
	if enveloped {
		return "i" + e.ID
	}
	return digest("r", e.Process+"\x00"+e.Stream+"\x00"+strconv.FormatInt(e.Time.UnixMilli(), 10)+"\x00"+e.Message)
}

func (t *tailer) mark(k string, ts int64) *mark {
	m := t.marks[k]
	if m == nil {
		m = &mark{ts: ts}
		t.marks[k] = m
	}
	return m
}

func (t *tailer) run(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !t.l.opts.DisableLiveTail {
		err := t.live(ctx)
		if t.stopped {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.l.opts.Logger.Info("cwlogs: live tail unavailable, polling instead", "group", t.group, "err", err)
	}
	return t.poll(ctx)
}

// groupARN returns the ARN of the app's group, creating the group when
// it does not exist.
func (t *tailer) groupARN(ctx context.Context) (string, error) {
	for attempt := 0; ; attempt++ {
		out, err := t.l.api.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(t.group)})
		if err != nil {
			return "", awserr.Wrap("cwlogs: describe log groups "+t.group, err)
		}
		for _, g := range out.LogGroups {
			if aws.ToString(g.LogGroupName) != t.group {
				continue
			}
			if arn := aws.ToString(g.LogGroupArn); arn != "" {
				return arn, nil
			}
			if arn := strings.TrimSuffix(aws.ToString(g.Arn), ":*"); arn != "" {
				return arn, nil
			}
		}
		if attempt > 0 {
			return "", fmt.Errorf("cwlogs: log group %s: %w", t.group, providers.ErrNotFound)
		}
		if err := t.l.ensureGroup(ctx, t.group); err != nil {
			return "", err
		}
	}
}

// liveTailOptions adjusts the StartLiveTail call: see disableHostPrefix
// and keepSessionConnection.
func liveTailOptions(o *cloudwatchlogs.Options) {
	disableHostPrefix(o)
	o.APIOptions = append(o.APIOptions, keepSessionConnection)
}

// disableHostPrefix keeps StartLiveTail on a custom endpoint (an emulator,
// a test server): the SDK otherwise prefixes its host with "stream-", a
// name that only the service's own endpoints resolve.
func disableHostPrefix(o *cloudwatchlogs.Options) {
	if o.BaseEndpoint == nil {
		return
	}
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("cwlogs.DisableEndpointHostPrefix",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(smithyhttp.DisableEndpointHostPrefix(ctx, true), in)
			}), middleware.Before)
	})
}

// keepSessionConnection keeps a session's HTTP/1.1 connection open after
// its response has started. The SDK wraps a request body that implements
// io.WriterTo in a closer whose WriteTo fails with io.EOF once the SDK has
// closed it, which it does as soon as the response headers arrive;
// net/http, which reads a body once more after its declared length to
// check for extra bytes, can do so after that, takes the io.EOF for a
// failed write and closes the connection, ending the session it carries
// (one session in twenty on a loaded machine). A body without WriteTo
// reads as a clean end instead. The body stays seekable, so the SDK can
// still retry the call.
func keepSessionConnection(s *middleware.Stack) error {
	return s.Finalize.Add(middleware.FinalizeMiddlewareFunc("cwlogs.KeepSessionConnection",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				if body, ok := req.GetStream().(io.ReadSeeker); ok {
					r, err := req.SetStream(readSeeker{body})
					if err != nil {
						return middleware.FinalizeOutput{}, middleware.Metadata{}, err
					}
					in.Request = r
				}
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// readSeeker hides every method of a body but Read and Seek.
type readSeeker struct{ io.ReadSeeker }

// live runs a live tail session until it fails, ends or the loop breaks.
func (t *tailer) live(ctx context.Context) error {
	arn, err := t.groupARN(ctx)
	if err != nil {
		return err
	}
	in := &cloudwatchlogs.StartLiveTailInput{LogGroupIdentifiers: []string{arn}, LogEventFilterPattern: t.l.filterPattern(t.q)}
	// A stream is selected by a prefix of its whole name, so that a
	// session can start before the stream exists (the stream field of the
	// entries makes the selection exact).
	names, prefix := selectStreams(t.q)
	switch {
	case len(names) > 0:
		in.LogStreamNamePrefixes = names
	case prefix != nil:
		in.LogStreamNamePrefixes = []string{*prefix}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out, err := t.l.api.StartLiveTail(sctx, in, liveTailOptions)
	if err != nil {
		return awserr.Wrap("cwlogs: start live tail of "+t.group, err)
	}
	stream := out.GetStream()
	defer stream.Close()
	// Record what exists before consuming the session, so that a switch to
	// polling delivers only what is new.
	if err := t.baseline(ctx); err != nil {
		return err
	}
	for {
		var ev types.StartLiveTailResponseStream
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok = <-stream.Events():
		}
		if !ok {
			if err := stream.Err(); err != nil {
				return awserr.Wrap("cwlogs: live tail of "+t.group, err)
			}
			return errSessionClosed
		}
		update, isUpdate := ev.(*types.StartLiveTailResponseStreamMemberSessionUpdate)
		if !isUpdate {
			continue
		}
		for _, r := range update.Value.SessionResults {
			msg, ts := aws.ToString(r.Message), aws.ToInt64(r.Timestamp)
			id := aws.ToString(r.LogStreamName) + ":" + digest("", strconv.FormatInt(ts, 10)+"\x00"+msg)
			e, env := entryOf(t.q.App, aws.ToString(r.LogStreamName), ts, msg, id)
			if !t.q.Match(e) {
				continue
			}
			m := t.mark(key(e, env), ts)
			if env && (m.delivered > 0) {
				continue
			}
			m.delivered++
			if !t.emit(e) {
				return nil
			}
		}
		if update.Value.SessionMetadata != nil && update.Value.SessionMetadata.Sampled {
			return errSampled
		}
	}
}

// window returns the query of one poll: the app's events of the lookback
// window, every field of the tail's query applied.
func (t *tailer) window() providers.LogQuery {
	q := t.q
	q.Start = t.l.opts.Now().Add(-t.l.opts.TailLookback)
	q.Limit = MaxReadLimit
	return q
}

// scan reads every matching event of the lookback window.
func (t *tailer) scan(ctx context.Context) ([]item, int64, error) {
	q := t.window()
	var all []item
	token := ""
	for {
		items, next, err := t.l.read(ctx, q, token)
		if err != nil {
			return nil, 0, err
		}
		all = append(all, items...)
		if next == "" {
			return all, q.Start.UnixMilli(), nil
		}
		token = next
	}
}

// baseline records the occurrences present now, which are not delivered.
func (t *tailer) baseline(ctx context.Context) error {
	if t.baselined {
		return nil
	}
	items, _, err := t.scan(ctx)
	if err != nil {
		return err
	}
	for _, it := range items {
		t.mark(key(it.LogEntry, it.enveloped), it.Time.UnixMilli()).base++
	}
	t.baselined = true
	return nil
}

// poll polls the window until ctx ends, the loop breaks or a poll fails
// with an error that is not temporary.
func (t *tailer) poll(ctx context.Context) error {
	b := poll.Backoff{Initial: t.l.opts.TailPollInterval, Max: max(t.l.opts.TailPollInterval, 30*time.Second)}
	for {
		if err := t.baseline(ctx); err == nil {
			break
		} else if !providers.IsTemporary(err) {
			return err
		}
		if err := b.Wait(ctx); err != nil {
			return err
		}
	}
	for {
		if err := poll.Sleep(ctx, t.l.opts.TailPollInterval); err != nil {
			return err
		}
		items, from, err := t.scan(ctx)
		if err != nil {
			if !providers.IsTemporary(err) {
				return err
			}
			if err := b.Wait(ctx); err != nil {
				return err
			}
			continue
		}
		b.Reset()
		counts := map[string]int{}
		keys := make([]string, len(items))
		for i, it := range items {
			keys[i] = key(it.LogEntry, it.enveloped)
			counts[keys[i]]++
		}
		// Deliver the occurrences beyond those present at the start and
		// those delivered before; an entry Write made is delivered once.
		skip := map[string]int{}
		for k, n := range counts {
			m := t.mark(k, 0)
			deliver := max(n-m.base-m.delivered, 0)
			if strings.HasPrefix(k, "i") {
				deliver = 0
				if m.base == 0 && m.delivered == 0 {
					deliver = 1
				}
			}
			skip[k] = n - deliver
		}
		for i, it := range items {
			k := keys[i]
			m := t.marks[k]
			m.ts = it.Time.UnixMilli()
			if skip[k] > 0 {
				skip[k]--
				continue
			}
			m.delivered++
			if !t.emit(it.LogEntry) {
				return nil
			}
		}
		// Occurrences older than the window are never read again.
		for k, m := range t.marks {
			if m.ts < from-time.Minute.Milliseconds() {
				delete(t.marks, k)
			}
		}
	}
}
