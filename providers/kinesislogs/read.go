package kinesislogs

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// maxGetRecords bounds the GetRecords calls per shard of one Read (and of
// one catch-up of the deletion index); a page that needs more is returned
// short, with a token.
const maxGetRecords = 200

// getLimit is the Limit of every GetRecords call (the API maximum).
const getLimit = 10000

// hashKey returns the hash key Kinesis derives from a partition key: the
// MD5 digest as a 128-bit unsigned integer.
func hashKey(partitionKey string) *big.Int {
	sum := md5.Sum([]byte(partitionKey))
	return new(big.Int).SetBytes(sum[:])
}

// shardSet is the stream's shards that hold an app's records: those whose
// hash key range holds the app's hash key, parents before children.
type shardSet struct {
	ids     []string
	parents map[string][]string // shard ID -> parent shard IDs
}

// ancestor reports whether a is a (transitive) parent of b.
func (s shardSet) ancestor(a, b string) bool {
	for _, p := range s.parents[b] {
		if p == a || s.ancestor(a, p) {
			return true
		}
	}
	return false
}

// shards lists the stream's shards that hold app's records. A missing
// stream has none.
func (l *Logs) shards(ctx context.Context, app string) (shardSet, error) {
	set := shardSet{parents: map[string][]string{}}
	h := hashKey(app)
	in := &kinesis.ListShardsInput{StreamName: aws.String(l.stream)}
	for {
		out, err := l.api.ListShards(ctx, in)
		if err != nil {
			if awserr.Code(err) == "ResourceNotFoundException" {
				return set, nil
			}
			return set, awserr.Wrap("kinesislogs: list shards of "+l.stream, err)
		}
		for _, s := range out.Shards {
			id := aws.ToString(s.ShardId)
			for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
				if aws.ToString(p) != "" {
					set.parents[id] = append(set.parents[id], aws.ToString(p))
				}
			}
			if r := s.HashKeyRange; r != nil {
				lo, ok1 := new(big.Int).SetString(aws.ToString(r.StartingHashKey), 10)
				hi, ok2 := new(big.Int).SetString(aws.ToString(r.EndingHashKey), 10)
				if ok1 && ok2 && lo.Cmp(h) <= 0 && h.Cmp(hi) <= 0 {
					set.ids = append(set.ids, id)
				}
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	// Parents before children: a shard's records are all older than its
	// children's.
	slices.SortStableFunc(set.ids, func(a, b string) int {
		switch {
		case set.ancestor(a, b):
			return -1
		case set.ancestor(b, a):
			return 1
		}
		return strings.Compare(a, b)
	})
	return set, nil
}

// shardIndex is what is known of the deletion markers of one shard: the
// latest marker of each app, up to the record last indexed.
type shardIndex struct {
	mu    sync.Mutex
	last  string            // sequence number of the last record indexed
	marks map[string]string // app -> sequence number of its latest marker
}

func (l *Logs) shardIndex(id string) *shardIndex {
	l.mu.Lock()
	defer l.mu.Unlock()
	ix := l.index[id]
	if ix == nil {
		ix = &shardIndex{marks: map[string]string{}}
		l.index[id] = ix
	}
	return ix
}

// iterator returns a shard iterator after seq, or at ts, or at the
// oldest record.
func (l *Logs) iterator(ctx context.Context, shard, after string, at time.Time) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(l.stream), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	switch {
	case after != "":
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(after)
	case !at.IsZero() && !l.noAtTimestamp.Load():
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(at)
	}
	out, err := l.api.GetShardIterator(ctx, in)
	if err != nil && in.ShardIteratorType == types.ShardIteratorTypeAtTimestamp && awserr.Code(err) == "InvalidArgumentException" {
		// An endpoint without AT_TIMESTAMP: read from the oldest record
		// and filter by time.
		l.noAtTimestamp.Store(true)
		return l.iterator(ctx, shard, "", time.Time{})
	}
	if err != nil {
		return nil, awserr.Wrap(fmt.Sprintf("kinesislogs: shard iterator of %s %s", l.stream, shard), err)
	}
	return out.ShardIterator, nil
}

// scan reads a shard from after (a sequence number), or else from at, or
// else from its oldest record, calling visit for each record in order
// until visit returns false, the shard's latest record is read (tip), or
// maxGetRecords calls were made. An iterator that GetRecords refuses as
// expired or invalid is acquired again from the last record visited.
func (l *Logs) scan(ctx context.Context, shard, after string, at time.Time, visit func(types.Record) bool) (tip bool, err error) {
	it, err := l.iterator(ctx, shard, after, at)
	if err != nil {
		return false, err
	}
	reopened := 0
	for calls := 0; it != nil; calls++ {
		if calls == maxGetRecords {
			return false, nil
		}
		out, err := l.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(getLimit)})
		if err != nil && reopened < 3 && staleIterator(err) {
			reopened++
			if it, err = l.iterator(ctx, shard, after, at); err != nil {
				return false, err
			}
			continue
		}
		if err != nil {
			return false, awserr.Wrap(fmt.Sprintf("kinesislogs: get records of %s %s", l.stream, shard), err)
		}
		for _, r := range out.Records {
			if !visit(r) {
				return false, nil
			}
			after = aws.ToString(r.SequenceNumber)
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			return true, nil
		}
		it = out.NextShardIterator
	}
	// A closed shard ends with no next iterator.
	return true, nil
}

// staleIterator reports whether GetRecords refused its shard iterator:
// expired (after five minutes), or unknown to an endpoint whose
// iterators are single-use.
func staleIterator(err error) bool {
	switch awserr.Code(err) {
	case "ExpiredIteratorException":
		return true
	case "InvalidArgumentException":
		return strings.Contains(strings.ToLower(err.Error()), "iterator")
	}
	return false
}

// catchUp brings the deletion index of a shard up to its latest record.
func (l *Logs) catchUp(ctx context.Context, shard string) (*shardIndex, error) {
	ix := l.shardIndex(shard)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for {
		tip, err := l.scan(ctx, shard, ix.last, time.Time{}, func(r types.Record) bool {
			seq := aws.ToString(r.SequenceNumber)
			if rec, ok := decodeRecord(r.Data); ok && rec.Deleted {
				ix.marks[rec.App] = seq
			}
			ix.last = seq
			return true
		})
		if err != nil || tip {
			return ix, err
		}
	}
}

// deleted returns whether the record seq of shard, of app, arrived before
// a deletion marker of app.
func deleted(set shardSet, marks map[string]map[string]string, app, shard, seq string) bool {
	for markShard, byApp := range marks {
		m, ok := byApp[app]
		if !ok {
			continue
		}
		if markShard == shard && compareSeq(seq, m) < 0 || set.ancestor(shard, markShard) {
			return true
		}
	}
	return false
}

// readToken is the decoded form of a Read page token: the query's
// fingerprint and, per shard, the sequence number of the last record read.
type readToken struct {
	Query     string            `json:"q"`
	Positions map[string]string `json:"p"`
}

// candidate is a matching entry read from a shard, and the record's
// sequence number.
type candidate struct {
	entry providers.LogEntry
	seq   string
}

// shardRead is what one Read read of one shard.
type shardRead struct {
	id    string
	found []candidate // matching entries in arrival order
	last  string      // sequence number of the last record read
	tip   bool        // every record of the shard was read
}

// Read implements providers.Logs by reading the shards that hold the
// app's records (those whose hash key range holds the app's hash key,
// parents before children) with shard iterators: AFTER_SEQUENCE_NUMBER
// the positions of the page token, else AT_TIMESTAMP Options.ClockSkew
// before Start, else TRIM_HORIZON. Records of other apps, of other
// producers and before a deletion marker of the app are skipped; every
// field of q is applied to the rest.
//
// Each shard is read until it gave Limit matching entries or its latest
// record; the page takes the Limit earliest entries by time across shards
// (a merge of the shards' arrival orders), sorted by time then ID. The
// page token holds, per shard, the sequence number up to which records
// were consumed. Records keep their arrival order within a shard, so
// entries written out of time order can come in a later page than newer
// ones; within a page they are sorted. Entries with the same ID (a
// retried Write) are returned once per page. A missing stream reads as no
// entries.
func (l *Logs) Read(ctx context.Context, q providers.LogQuery, token string) (providers.LogPage, error) {
	if q.App == "" {
		return providers.LogPage{}, providers.Invalidf("kinesislogs: read: no app")
	}
	if q.Limit < 0 {
		return providers.LogPage{}, providers.Invalidf("kinesislogs: read: negative limit %d", q.Limit)
	}
	limit := min(cmp.Or(q.Limit, DefaultReadLimit), MaxReadLimit)
	tok := readToken{Query: q.Fingerprint(), Positions: map[string]string{}}
	if token != "" {
		var t readToken
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err == nil {
			err = json.Unmarshal(raw, &t)
		}
		if err != nil {
			return providers.LogPage{}, providers.Invalidf("kinesislogs: read: malformed page token")
		}
		if t.Query != tok.Query {
			return providers.LogPage{}, providers.Invalidf("kinesislogs: read: the page token belongs to another query")
		}
		if t.Positions != nil {
			tok.Positions = t.Positions
		}
	}
	if err := ctx.Err(); err != nil {
		return providers.LogPage{}, err
	}
	if !q.End.IsZero() && !q.Start.IsZero() && !q.Start.Before(q.End) {
		return providers.LogPage{}, nil
	}
	set, err := l.shards(ctx, q.App)
	if err != nil {
		return providers.LogPage{}, err
	}
	// Bring the deletion index up to date first: a marker may follow
	// records this page would return.
	marks := map[string]map[string]string{}
	for _, id := range set.ids {
		ix, err := l.catchUp(ctx, id)
		if err != nil {
			return providers.LogPage{}, err
		}
		ix.mu.Lock()
		if m, ok := ix.marks[q.App]; ok {
			marks[id] = map[string]string{q.App: m}
		}
		ix.mu.Unlock()
	}
	var at time.Time
	if !q.Start.IsZero() {
		// AT_TIMESTAMP refuses a time in the future.
		at = q.Start.Add(-l.opts.ClockSkew)
		if now := l.opts.Now(); at.After(now) {
			at = now
		}
	}
	reads := make([]*shardRead, 0, len(set.ids))
	for _, id := range set.ids {
		sr := &shardRead{id: id, last: tok.Positions[id]}
		var err error
		sr.tip, err = l.scan(ctx, id, sr.last, at, func(r types.Record) bool {
			seq := aws.ToString(r.SequenceNumber)
			if rec, ok := decodeRecord(r.Data); ok && !rec.Deleted {
				if e := rec.entry(); q.Match(e) && !deleted(set, marks, q.App, id, seq) {
					if len(sr.found) == limit {
						return false // the record stays unread
					}
					sr.found = append(sr.found, candidate{e, seq})
				}
			}
			sr.last = seq
			return true
		})
		if err != nil {
			return providers.LogPage{}, err
		}
		reads = append(reads, sr)
	}

	// Merge the shards by entry time, taking a prefix of each.
	var page providers.LogPage
	taken := make([]int, len(reads))
	seen := map[string]bool{}
	for len(page.Entries) < limit {
		best := -1
		for i, sr := range reads {
			if taken[i] < len(sr.found) && (best < 0 || sr.found[taken[i]].entry.Time.Before(reads[best].found[taken[best]].entry.Time)) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		c := reads[best].found[taken[best]]
		taken[best]++
		if !seen[c.entry.ID] {
			seen[c.entry.ID] = true
			page.Entries = append(page.Entries, c.entry)
		}
	}
	more := false
	for i, sr := range reads {
		switch {
		case taken[i] < len(sr.found):
			// Consumed up to the record before the first entry not taken.
			more = true
			if taken[i] > 0 {
				tok.Positions[sr.id] = sr.found[taken[i]-1].seq
			}
			// With nothing taken, the position stays where it was.
		case sr.last != "":
			tok.Positions[sr.id] = sr.last
		}
		if !sr.tip {
			more = true
		}
	}
	slices.SortStableFunc(page.Entries, func(a, b providers.LogEntry) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
	if more {
		raw, _ := json.Marshal(tok)
		page.Next = base64.RawURLEncoding.EncodeToString(raw)
	}
	return page, nil
}
