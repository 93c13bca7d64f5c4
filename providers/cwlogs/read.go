package cwlogs

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
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

// fingerprint identifies a query, Limit aside, for its tokens.
func fingerprint(q providers.LogQuery) string {
	q.Limit = 0
	raw, _ := json.Marshal(q)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

func (p position) token(q providers.LogQuery) string {
	t := readToken{Query: fingerprint(q), T: p.t, N: p.events}
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
// streams unmerged is not supported: events before the read position are
// skipped as already read.
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
	nextPage := ""
	consume := func(ev types.FilteredLogEvent) {
		ts := aws.ToInt64(ev.Timestamp)
		key := digest("e", aws.ToString(ev.LogStreamName)+"\x00"+aws.ToString(ev.EventId))
		switch {
		case ts < pos.t:
			return
		case ts == pos.t && pos.seen[key]:
			return
		case ts > pos.t:
			pos.reset(ts)
		}
		pos.seen[key] = true
		pos.events++
		e, env := entryOf(q.App, aws.ToString(ev.LogStreamName), ts, aws.ToString(ev.Message), rawID(aws.ToString(ev.LogStreamName), aws.ToString(ev.EventId)))
		if !match(q, e) {
			return
		}
		id := digest("i", e.ID)
		if pos.seen[id] {
			return
		}
		pos.seen[id] = true
		items = append(items, item{e, env})
	}

	// fresh asks for the events from the position on, including those
	// already consumed at its timestamp, which consume skips.
	fresh := func() cloudwatchlogs.FilterLogEventsInput {
		in := base
		if pos.t > 0 || !q.Start.IsZero() {
			in.StartTime = aws.Int64(pos.t)
		}
		in.Limit = aws.Int32(int32(min(limit-len(items)+pos.events, MaxReadLimit)))
		return in
	}
	in := fresh()
	for calls := 0; ; calls++ {
		if calls == maxReadCalls {
			nextPage = pos.token(q)
			break
		}
		startT, startN := pos.t, pos.events
		out, err := l.api.FilterLogEvents(ctx, &in)
		if err != nil {
			if awserr.Code(err) == "ResourceNotFoundException" {
				return nil, "", nil
			}
			return nil, "", awserr.Wrap(fmt.Sprintf("cwlogs: filter log events of %s", group), err)
		}
		full := false
		for _, ev := range out.Events {
			if len(items) == limit {
				// The rest is read again from the position by the next page.
				full = true
				break
			}
			consume(ev)
		}
		if full || len(items) == limit {
			nextPage = pos.token(q)
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
			return nil, "", fmt.Errorf("cwlogs: read %s: more than %d events share the millisecond %d: %w", group, MaxReadLimit, pos.t, providers.ErrUnavailable)
		}
		in = fresh()
	}
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
	return items, nextPage, nil
}
