package cwlogs

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// maxReadCalls bounds the FilterLogEvents calls of one Read; a page that
// needs more is returned short, with a token.
const maxReadCalls = 50

// position is where a read continues: after the events of timestamp T
// whose digests are in seen (events consumed, and entry IDs yielded).
type position struct {
	t      int64 // milliseconds; 0 with started false means the beginning
	seen   map[string]bool
	events int // events (not IDs) in seen
	// window says the endpoint was seen returning events out of time
	// order: the pages of this query are read as whole windows.
	window bool
}

func (p *position) reset(t int64) {
	p.t, p.seen, p.events = t, map[string]bool{}, 0
}

func (p position) clone() position {
	p.seen = maps.Clone(p.seen)
	return p
}

func digest(kind, s string) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	return kind + hex.EncodeToString(h.Sum(nil))
}

// readToken is the decoded form of a Read page token.
type readToken struct {
	Query string   `json:"q"`
	T     int64    `json:"t"`
	Seen  []string `json:"s,omitempty"`
	N     int      `json:"n,omitempty"`
	W     bool     `json:"w,omitempty"`
}

// fingerprint identifies a query, Limit aside, for its tokens.
func fingerprint(q providers.LogQuery) string {
	q.Limit = 0
	raw, _ := json.Marshal(q)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

func (p position) token(q providers.LogQuery) string {
	t := readToken{Query: fingerprint(q), T: p.t, N: p.events, W: p.window}
	for k := range p.seen {
		t.Seen = append(t.Seen, k)
	}
	slices.Sort(t.Seen)
	raw, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func parseToken(q providers.LogQuery, token string) (position, error) {
	var t readToken
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	if err != nil {
		return position{}, providers.Invalidf("cwlogs: read: malformed page token")
	}
	if t.Query != fingerprint(q) {
		return position{}, providers.Invalidf("cwlogs: read: the page token belongs to another query")
	}
	p := position{t: t.T, seen: map[string]bool{}, events: t.N, window: t.W}
	for _, k := range t.Seen {
		p.seen[k] = true
	}
	return p, nil
}

// floorMillis and ceilMillis round a time to milliseconds, down and up.
func floorMillis(t time.Time) int64 { return t.Truncate(time.Millisecond).UnixMilli() }

func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// selectStreams sets the stream selection of a query on a request: both
// the process and the stream name one log stream; a process alone is a
// stream name prefix; a stream alone is filtered on the client.
func selectStreams(q providers.LogQuery) (names []string, prefix *string) {
	switch {
	case q.Process != "" && q.Stream != "":
		return []string{StreamName(q.Process, q.Stream)}, nil
	case q.Process != "":
		p := processComponent(q.Process)
		return nil, aws.String(p + "/" + p + "/")
	}
	return nil, nil
}

// rawID is the ID of an event without an envelope: its stream and event
// ID (event IDs are unique per group in the service, per stream in some
// emulators).
func rawID(stream, eventID string) string { return stream + ":" + eventID }

// Read implements providers.Logs with FilterLogEvents on the app's group,
// which interleaves the group's streams in time order. The request sets
// interleaved, which the service has ignored since 2019 ("this parameter
// is ignored and the value is assumed to be true"), for endpoints that
// merge the streams only when asked.
//
// No event is dropped because an endpoint returns it out of time order:
// when a response goes back in time (for example one stream after
// another, unmerged), the page is read again as a whole window, from its
// start to the last event there is, and merged by time, and the
// following pages of its token are read the same way. Such a window that
// needs more than 50 calls, or a full response without a continuation
// token, is an error wrapping providers.ErrUnavailable, never a short
// page. An endpoint that ignores interleaved and whose first page happens
// to be in order cannot be told apart from the service.
//
// The query maps onto the request: Start and End onto startTime and
// endTime (rounded outwards to milliseconds, then applied exactly), Filter
// onto a quoted-term filter pattern when it can match the stored text
// exactly (see Options.NoFilterPattern), Process onto a stream name prefix
// and Process with Stream onto one stream name. Every field is also applied
// to the decoded entries, so the result is exact whatever the service
// filtered. Entries with the same ID at the same time (a retried Write)
// are returned once.
//
// The page token holds the query's fingerprint, the timestamp reached and
// digests of the events consumed (and the IDs returned) at that
// timestamp; the next page asks for events from that timestamp on and
// skips those. It does not hold FilterLogEvents' own nextToken, which the
// provider follows within one Read only, so tokens work on endpoints that
// never return one. Within a page, entries are ordered by time, then ID;
// entries of one millisecond split over two pages may be out of ID order
// across the split. A missing group reads as no entries.
func (l *Logs) Read(ctx context.Context, q providers.LogQuery, token string) (providers.LogPage, error) {
	items, next, err := l.read(ctx, q, token)
	if err != nil {
		return providers.LogPage{}, err
	}
	page := providers.LogPage{Next: next}
	for _, it := range items {
		page.Entries = append(page.Entries, it.LogEntry)
	}
	return page, nil
}

// item is an entry read, and whether it came in an envelope (its ID is
// the one Write gave it) or raw (its ID comes from the event).
type item struct {
	providers.LogEntry
	enveloped bool
}

// read returns one page of Read as items, and the next page's token.
func (l *Logs) read(ctx context.Context, q providers.LogQuery, token string) ([]item, string, error) {
	if q.App == "" {
		return nil, "", providers.Invalidf("cwlogs: read: no app")
	}
	if q.Limit < 0 {
		return nil, "", providers.Invalidf("cwlogs: read: negative limit %d", q.Limit)
	}
	limit := min(cmp.Or(q.Limit, DefaultReadLimit), MaxReadLimit)
	var pos position
	if token != "" {
		var err error
		if pos, err = parseToken(q, token); err != nil {
			return nil, "", err
		}
	} else {
		pos.reset(0)
		if !q.Start.IsZero() {
			pos.t = max(floorMillis(q.Start), 0)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if !q.End.IsZero() && (!q.Start.IsZero() && !q.Start.Before(q.End) || q.End.UnixMilli() <= 0) {
		return nil, "", nil
	}
	group := l.Group(q.App)
	// The service ignores interleaved and always merges: "As of June 17,
	// 2019, this parameter is ignored and the value is assumed to be true."
	// Sending it is harmless there and asks endpoints that merge only when
	// told to.
	//lint:ignore SA1019 deprecated because the service always merges; see above.
	base := cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group), FilterPattern: l.filterPattern(q), Interleaved: aws.Bool(true)}
	base.LogStreamNames, base.LogStreamNamePrefix = selectStreams(q)
	if !q.End.IsZero() {
		base.EndTime = aws.Int64(ceilMillis(q.End) - 1)
	}
	r := &pageReader{l: l, q: q, base: base, group: group, limit: limit, cut: pos.t, explicitStart: !q.Start.IsZero()}
	if !pos.window {
		r.pos = pos.clone()
		items, next, err := r.ordered(ctx)
		if !errors.Is(err, errOutOfOrder) {
			return items, next, err
		}
		pos.window = true
	}
	r.pos, r.items = pos, nil
	return r.windowed(ctx)
}

// errOutOfOrder reports a response that went back in time.
var errOutOfOrder = errors.New("cwlogs: events out of time order")

// pageReader reads one page of Read.
type pageReader struct {
	l             *Logs
	q             providers.LogQuery
	base          cloudwatchlogs.FilterLogEventsInput
	group         string
	limit         int
	cut           int64 // the position's time when the page began
	explicitStart bool
	pos           position
	items         []item
}

// consume takes the next event in time order into the page. An event
// before the page's cut was consumed by an earlier page (or is before
// Start); one after the cut but before the position is out of order,
// which consume reports without taking it.
func (r *pageReader) consume(ev types.FilteredLogEvent) (inOrder bool) {
	pos := &r.pos
	ts := aws.ToInt64(ev.Timestamp)
	key := digest("e", aws.ToString(ev.LogStreamName)+"\x00"+aws.ToString(ev.EventId))
	switch {
	case ts < r.cut:
		return true
	case ts < pos.t:
		return false
	case ts == pos.t && pos.seen[key]:
		return true
	case ts > pos.t:
		pos.reset(ts)
	}
	pos.seen[key] = true
	pos.events++
	e, env := entryOf(r.q.App, aws.ToString(ev.LogStreamName), ts, aws.ToString(ev.Message), rawID(aws.ToString(ev.LogStreamName), aws.ToString(ev.EventId)))
	if !match(r.q, e) {
		return true
	}
	id := digest("i", e.ID)
	if pos.seen[id] {
		return true
	}
	pos.seen[id] = true
	r.items = append(r.items, item{e, env})
	return true
}

// fresh asks for the events from the position on, including those
// already consumed at its timestamp, which consume skips.
func (r *pageReader) fresh(limit int) cloudwatchlogs.FilterLogEventsInput {
	in := r.base
	if r.pos.t > 0 || r.explicitStart {
		in.StartTime = aws.Int64(r.pos.t)
	}
	in.Limit = aws.Int32(int32(limit))
	return in
}

func (r *pageReader) call(ctx context.Context, in *cloudwatchlogs.FilterLogEventsInput) (*cloudwatchlogs.FilterLogEventsOutput, error) {
	out, err := r.l.api.FilterLogEvents(ctx, in)
	if err != nil {
		if awserr.Code(err) == "ResourceNotFoundException" {
			return &cloudwatchlogs.FilterLogEventsOutput{}, nil
		}
		return nil, awserr.Wrap(fmt.Sprintf("cwlogs: filter log events of %s", r.group), err)
	}
	return out, nil
}

// ordered reads a page from responses in time order, as the service
// returns them, stopping at the page's limit. It returns errOutOfOrder
// when a response goes back in time.
func (r *pageReader) ordered(ctx context.Context) ([]item, string, error) {
	pos := &r.pos
	nextPage := ""
	in := r.fresh(min(r.limit+pos.events, MaxReadLimit))
	for calls := 0; ; calls++ {
		if calls == maxReadCalls {
			nextPage = pos.token(r.q)
			break
		}
		startT, startN := pos.t, pos.events
		out, err := r.call(ctx, &in)
		if err != nil {
			return nil, "", err
		}
		full := false
		for _, ev := range out.Events {
			if len(r.items) == r.limit {
				// The rest is read again from the position by the next page.
				full = true
				break
			}
			if !r.consume(ev) {
				return nil, "", errOutOfOrder
			}
		}
		if full || len(r.items) == r.limit {
			nextPage = pos.token(r.q)
			break
		}
		if tok := aws.ToString(out.NextToken); tok != "" && tok != aws.ToString(in.NextToken) {
			// The service's own continuation, with the same parameters.
			in.NextToken = out.NextToken
			continue
		}
		if len(out.Events) < int(aws.ToInt32(in.Limit)) {
			break // every event there is now was returned
		}
		// A full response without a token of its own: more events may
		// follow the position; ask again from it.
		if pos.t == startT && pos.events == startN {
			return nil, "", fmt.Errorf("cwlogs: read %s: more than %d events share the millisecond %d: %w", r.group, MaxReadLimit, pos.t, providers.ErrUnavailable)
		}
		in = r.fresh(min(r.limit-len(r.items)+pos.events, MaxReadLimit))
	}
	return r.sorted(), nextPage, nil
}

// windowed reads every event from the position on, following the
// endpoint's continuation tokens, merges them by time and takes the page
// from them. Events the page leaves are read again by the next page.
func (r *pageReader) windowed(ctx context.Context) ([]item, string, error) {
	var events []types.FilteredLogEvent
	in := r.fresh(MaxReadLimit)
	for calls := 0; ; calls++ {
		if calls == maxReadCalls {
			return nil, "", fmt.Errorf("cwlogs: read %s: the endpoint returns events out of time order, and merging them takes more than %d calls: %w", r.group, maxReadCalls, providers.ErrUnavailable)
		}
		out, err := r.call(ctx, &in)
		if err != nil {
			return nil, "", err
		}
		events = append(events, out.Events...)
		if tok := aws.ToString(out.NextToken); tok != "" && tok != aws.ToString(in.NextToken) {
			in.NextToken = out.NextToken
			continue
		}
		if len(out.Events) >= int(aws.ToInt32(in.Limit)) {
			return nil, "", fmt.Errorf("cwlogs: read %s: the endpoint returns events out of time order and a full response without a continuation token: %w", r.group, providers.ErrUnavailable)
		}
		break
	}
	slices.SortStableFunc(events, func(a, b types.FilteredLogEvent) int {
		return cmp.Or(cmp.Compare(aws.ToInt64(a.Timestamp), aws.ToInt64(b.Timestamp)),
			strings.Compare(aws.ToString(a.LogStreamName), aws.ToString(b.LogStreamName)),
			strings.Compare(aws.ToString(a.EventId), aws.ToString(b.EventId)))
	})
	nextPage := ""
	for _, ev := range events {
		if len(r.items) == r.limit {
			nextPage = r.pos.token(r.q)
			break
		}
		r.consume(ev) // in time order now
	}
	return r.sorted(), nextPage, nil
}

// sorted returns the page's items ordered by time, then ID.
func (r *pageReader) sorted() []item {
	items := r.items
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
	return items
}
