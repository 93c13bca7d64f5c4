package cwlogs

import (
	"cmp"
	"context"
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
}

func (p *position) reset(t int64) {
	p.t, p.seen, p.events = t, map[string]bool{}, 0
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
}

func (p position) token(q providers.LogQuery) string {
	t := readToken{Query: q.Fingerprint(), T: p.t, N: p.events}
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
	if t.Query != q.Fingerprint() {
		return position{}, providers.Invalidf("cwlogs: read: the page token belongs to another query")
	}
	p := position{t: t.T, seen: map[string]bool{}, events: t.N}
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
// merge the streams only when asked. An endpoint that returns a group's
// events out of time order anyway is detected (an event arrives behind
// the read position) and from then on read another way: each page's whole
// range is read and sorted before it is paged, so no event is skipped
// because of its order; a range too large to sort that way is reported as
// providers.ErrUnavailable, never read in part. Detection needs the
// disorder to show within what a page reads: on such an endpoint, a first
// page cut short before it shows may miss events that the endpoint returns
// later than their time.
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

	var items []item
	var nextPage string
	err := errDisorder
	if !l.unmerged.Load() {
		items, nextPage, err = l.readMerged(ctx, newPager(q, pos, limit), base, group)
	}
	if errors.Is(err, errDisorder) {
		l.unmerged.Store(true)
		// The endpoint returned the group's events out of time order (it
		// did not merge the streams): read the whole range from the
		// page's position and sort it, so that no event is skipped as
		// behind the position.
		items, nextPage, err = l.readSorted(ctx, newPager(q, pos, limit), base, group)
	}
	if err != nil {
		return nil, "", err
	}
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
	return items, nextPage, nil
}

// errDisorder reports that a FilterLogEvents response held an event
// behind the read position: the endpoint does not merge the streams.
var errDisorder = errors.New("cwlogs: events out of time order")

// maxSortedBytes bounds the messages a read of an endpoint that does not
// merge the streams holds to sort them.
const maxSortedBytes = 64 << 20

// pager consumes the events of one page in time order.
type pager struct {
	q     providers.LogQuery
	pos   position
	limit int
	items []item
}

// newPager returns a pager reading from pos, which it does not change.
func newPager(q providers.LogQuery, pos position, limit int) *pager {
	pos.seen = maps.Clone(pos.seen)
	return &pager{q: q, pos: pos, limit: limit}
}

// full reports whether the page holds its limit of entries.
func (p *pager) full() bool { return len(p.items) == p.limit }

// consume takes one event: it advances the position and keeps the entry
// when it matches the query and was not returned before. It returns
// errDisorder for an event behind the position.
func (p *pager) consume(ev types.FilteredLogEvent) error {
	ts := aws.ToInt64(ev.Timestamp)
	key := digest("e", aws.ToString(ev.LogStreamName)+"\x00"+aws.ToString(ev.EventId))
	switch {
	case ts < p.pos.t:
		return errDisorder
	case ts == p.pos.t && p.pos.seen[key]:
		return nil
	case ts > p.pos.t:
		p.pos.reset(ts)
	}
	p.pos.seen[key] = true
	p.pos.events++
	e, env := entryOf(p.q.App, aws.ToString(ev.LogStreamName), ts, aws.ToString(ev.Message), rawID(aws.ToString(ev.LogStreamName), aws.ToString(ev.EventId)))
	if !p.q.Match(e) {
		return nil
	}
	id := digest("i", e.ID)
	if p.pos.seen[id] {
		return nil
	}
	p.pos.seen[id] = true
	p.items = append(p.items, item{e, env})
	return nil
}

// fresh asks for the events from the position on, including those
// already consumed at its timestamp, which consume skips.
func (p *pager) fresh(base cloudwatchlogs.FilterLogEventsInput) cloudwatchlogs.FilterLogEventsInput {
	in := base
	if p.pos.t > 0 || !p.q.Start.IsZero() {
		in.StartTime = aws.Int64(p.pos.t)
	}
	in.Limit = aws.Int32(int32(min(p.limit-len(p.items)+p.pos.events, MaxReadLimit)))
	return in
}

// filter calls FilterLogEvents; a missing group is reported as nil.
func (l *Logs) filter(ctx context.Context, group string, in *cloudwatchlogs.FilterLogEventsInput) (*cloudwatchlogs.FilterLogEventsOutput, error) {
	out, err := l.api.FilterLogEvents(ctx, in)
	if err != nil {
		if awserr.Code(err) == "ResourceNotFoundException" {
			return nil, nil
		}
		return nil, awserr.Wrap(fmt.Sprintf("cwlogs: filter log events of %s", group), err)
	}
	return out, nil
}

// readMerged reads one page from an endpoint that returns the group's
// events in time order, as the service does, consuming them as they come.
// It returns errDisorder when an event arrives behind the position.
func (l *Logs) readMerged(ctx context.Context, pg *pager, base cloudwatchlogs.FilterLogEventsInput, group string) ([]item, string, error) {
	in := pg.fresh(base)
	for calls := 0; ; calls++ {
		if calls == maxReadCalls {
			return pg.items, pg.pos.token(pg.q), nil
		}
		startT, startN := pg.pos.t, pg.pos.events
		out, err := l.filter(ctx, group, &in)
		if err != nil || out == nil {
			return nil, "", err
		}
		for _, ev := range out.Events {
			if pg.full() {
				// The rest is read again from the position by the next page.
				return pg.items, pg.pos.token(pg.q), nil
			}
			if err := pg.consume(ev); err != nil {
				return nil, "", err
			}
		}
		if pg.full() {
			return pg.items, pg.pos.token(pg.q), nil
		}
		if tok := aws.ToString(out.NextToken); tok != "" && tok != aws.ToString(in.NextToken) {
			// The service's own continuation, with the same parameters.
			in.NextToken = out.NextToken
			continue
		}
		if len(out.Events) < int(aws.ToInt32(in.Limit)) {
			return pg.items, "", nil // every event there is now was returned
		}
		// A full response without a token of its own: more events may
		// follow the position; ask again from it.
		if pg.pos.t == startT && pg.pos.events == startN {
			return nil, "", fmt.Errorf("cwlogs: read %s: more than %d events share the millisecond %d: %w", group, MaxReadLimit, pg.pos.t, providers.ErrUnavailable)
		}
		in = pg.fresh(base)
	}
}

// readSorted reads one page from an endpoint that returns the group's
// events out of time order: it reads every event from the position on
// (following the endpoint's tokens, at most maxReadCalls calls and
// maxSortedBytes of messages), sorts them by time, stream and event ID
// and consumes them in that order. An endpoint that cuts such a response
// short without a token, or a range larger than the bounds, is reported
// as unavailable rather than read in part.
func (l *Logs) readSorted(ctx context.Context, pg *pager, base cloudwatchlogs.FilterLogEventsInput, group string) ([]item, string, error) {
	in := pg.fresh(base)
	in.Limit = aws.Int32(MaxReadLimit)
	var all []types.FilteredLogEvent
	size := 0
	for calls := 0; ; calls++ {
		if calls == maxReadCalls {
			return nil, "", fmt.Errorf("cwlogs: read %s: the endpoint returns events out of time order and the range needs more than %d calls; narrow it with Start and End: %w", group, maxReadCalls, providers.ErrUnavailable)
		}
		out, err := l.filter(ctx, group, &in)
		if err != nil || out == nil {
			return nil, "", err
		}
		for _, ev := range out.Events {
			size += len(aws.ToString(ev.Message))
		}
		if size > maxSortedBytes {
			return nil, "", fmt.Errorf("cwlogs: read %s: the endpoint returns events out of time order and the range holds more than %d MiB; narrow it with Start and End: %w", group, maxSortedBytes>>20, providers.ErrUnavailable)
		}
		all = append(all, out.Events...)
		if tok := aws.ToString(out.NextToken); tok != "" && tok != aws.ToString(in.NextToken) {
			in.NextToken = out.NextToken
			continue
		}
		if len(out.Events) == int(aws.ToInt32(in.Limit)) {
			return nil, "", fmt.Errorf("cwlogs: read %s: the endpoint returns events out of time order and cut a response short without a token: %w", group, providers.ErrUnavailable)
		}
		break
	}
	slices.SortStableFunc(all, func(a, b types.FilteredLogEvent) int {
		return cmp.Or(cmp.Compare(aws.ToInt64(a.Timestamp), aws.ToInt64(b.Timestamp)),
			strings.Compare(aws.ToString(a.LogStreamName), aws.ToString(b.LogStreamName)),
			strings.Compare(aws.ToString(a.EventId), aws.ToString(b.EventId)))
	})
	for _, ev := range all {
		if pg.full() {
			return pg.items, pg.pos.token(pg.q), nil
		}
		if err := pg.consume(ev); err != nil {
			return nil, "", err
		}
	}
	return pg.items, "", nil
}
