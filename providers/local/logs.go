package local

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convox-go/convox/providers"
)

// Logs is the rack's providers.Logs and providers.LogTailer: JSON lines in
// append-only segment files, one directory per app and stream
// (logs/<app>/<stream>/<sequence>.jsonl). A stream's current segment is
// closed and a new one started once it reaches the segment size; when an
// app's segments exceed its byte budget the oldest segments (by their
// newest entry) are deleted.
type Logs struct {
	dir      string
	maxBytes int64
	segBytes int64
	idPrefix string
	seq      atomic.Uint64

	mu   sync.Mutex
	apps map[string]*appLog
}

// Log page sizes.
const (
	defaultLogLimit = 100
	maxLogLimit     = 10000
)

var (
	_ providers.Logs      = (*Logs)(nil)
	_ providers.LogTailer = (*Logs)(nil)
)

type appLog struct {
	dir string

	mu      sync.Mutex
	loaded  bool
	segs    []*segment // every segment of the app, in no particular order
	current map[string]*openSegment
	size    int64
	nextSeq int
	subs    map[*tailSub]struct{}
}

type segment struct {
	path     string
	stream   string
	size     int64
	min, max time.Time
}

type openSegment struct {
	seg *segment
	f   *os.File
}

// logLine is the on-disk form of an entry; App is implied by the directory.
type logLine struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"t"`
	Stream  string    `json:"s"`
	Process string    `json:"p,omitempty"`
	Release string    `json:"r,omitempty"`
	Message string    `json:"m"`
}

func newLogs(dir string, maxBytes int64) (*Logs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fsError("open logs", err)
	}
	seg := min(int64(1<<20), maxBytes/4)
	seg = max(seg, 1024)
	return &Logs{dir: dir, maxBytes: maxBytes, segBytes: seg, idPrefix: randomHex(4), apps: map[string]*appLog{}}, nil
}

// safeName turns an app or stream name into one path element: names of
// letters, digits, hyphens and underscores are kept, others are hex-encoded
// behind a "~".
func safeName(s string) string {
	ok := s != ""
	for i := 0; i < len(s) && ok; i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if ok {
		return s
	}
	return "~" + hex.EncodeToString([]byte(s))
}

func unsafeName(s string) string {
	if rest, ok := strings.CutPrefix(s, "~"); ok {
		if b, err := hex.DecodeString(rest); err == nil {
			return string(b)
		}
	}
	return s
}

func (l *Logs) app(name string) *appLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.apps[name]
	if a == nil {
		a = &appLog{dir: filepath.Join(l.dir, safeName(name)), current: map[string]*openSegment{}, subs: map[*tailSub]struct{}{}}
		l.apps[name] = a
	}
	return a
}

// load scans the app's segments once; a.mu is held.
func (a *appLog) load() error {
	if a.loaded {
		return nil
	}
	streams, err := os.ReadDir(a.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fsError("read logs", err)
	}
	for _, sd := range streams {
		if !sd.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(a.dir, sd.Name()))
		if err != nil {
			return fsError("read logs", err)
		}
		for _, f := range files {
			name, ok := strings.CutSuffix(f.Name(), ".jsonl")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(name)
			if err != nil {
				continue
			}
			a.nextSeq = max(a.nextSeq, n+1)
			seg := &segment{path: filepath.Join(a.dir, sd.Name(), f.Name()), stream: unsafeName(sd.Name())}
			if err := seg.scan(); err != nil {
				return err
			}
			a.segs = append(a.segs, seg)
			a.size += seg.size
		}
	}
	a.loaded = true
	return nil
}

// scan computes the size and time range of a segment from its content.
func (s *segment) scan() error {
	f, err := os.Open(s.path)
	if err != nil {
		return fsError("read logs", err)
	}
	defer f.Close()
	return readLines(f, -1, func(line logLine, n int) {
		s.size += int64(n)
		s.widen(line.Time)
	})
}

func (s *segment) widen(t time.Time) {
	if s.min.IsZero() || t.Before(s.min) {
		s.min = t
	}
	if t.After(s.max) {
		s.max = t
	}
}

// readLines calls fn with each complete, well-formed line of r (up to
// limit bytes when limit >= 0) and its length including the newline.
func readLines(r io.Reader, limit int64, fn func(logLine, int)) error {
	if limit >= 0 {
		r = io.LimitReader(r, limit)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' {
			var line logLine
			if json.Unmarshal(b, &line) == nil {
				fn(line, len(b))
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fsError("read logs", err)
		}
	}
}

// Write appends entries to their apps' streams. Entries need App and
// Stream; an empty ID is assigned and a zero Time becomes now.
func (l *Logs) Write(ctx context.Context, entries []providers.LogEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, e := range entries {
		if e.App == "" || e.Stream == "" {
			return providers.Invalidf("log entry %d needs App and Stream (got App %q, Stream %q)", i, e.App, e.Stream)
		}
	}
	byApp := map[string][]providers.LogEntry{}
	for _, e := range entries {
		if e.ID == "" {
			e.ID = l.newID()
		}
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		byApp[e.App] = append(byApp[e.App], e)
	}
	for app, es := range byApp {
		if err := l.app(app).write(l, es); err != nil {
			return err
		}
	}
	return nil
}

func (l *Logs) newID() string {
	return fmt.Sprintf("%016x-%s-%06x", time.Now().UnixNano(), l.idPrefix, l.seq.Add(1)&0xffffff)
}

func (a *appLog) write(l *Logs, entries []providers.LogEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, e := range entries {
		cur, err := a.segmentFor(l, e.Stream)
		if err != nil {
			return err
		}
		buf.Reset()
		line := logLine{ID: e.ID, Time: e.Time.UTC(), Stream: e.Stream, Process: e.Process, Release: e.Release, Message: e.Message}
		if err := json.NewEncoder(&buf).Encode(line); err != nil {
			return providers.Invalidf("log entry: %v", err)
		}
		if _, err := cur.f.Write(buf.Bytes()); err != nil {
			return fsError("write logs", err)
		}
		cur.seg.size += int64(buf.Len())
		cur.seg.widen(line.Time)
		a.size += int64(buf.Len())
		for s := range a.subs {
			s.offer(e)
		}
	}
	a.retain(l.maxBytes)
	return nil
}

// segmentFor returns the stream's open segment, starting a new one when
// there is none or the current one is full; a.mu is held.
func (a *appLog) segmentFor(l *Logs, stream string) (*openSegment, error) {
	cur := a.current[stream]
	if cur != nil && cur.seg.size < l.segBytes {
		return cur, nil
	}
	if cur != nil {
		cur.f.Close()
		delete(a.current, stream)
	}
	dir := filepath.Join(a.dir, safeName(stream))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fsError("write logs", err)
	}
	seg := &segment{path: filepath.Join(dir, fmt.Sprintf("%08d.jsonl", a.nextSeq)), stream: stream}
	a.nextSeq++
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fsError("write logs", err)
	}
	cur = &openSegment{seg: seg, f: f}
	a.current[stream] = cur
	a.segs = append(a.segs, seg)
	return cur, nil
}

// retain deletes the oldest segments while the app is over budget, always
// keeping the newest one; a.mu is held.
func (a *appLog) retain(maxBytes int64) {
	for a.size > maxBytes && len(a.segs) > 1 {
		oldest := slices.MinFunc(a.segs, func(x, y *segment) int { return x.max.Compare(y.max) })
		if cur := a.current[oldest.stream]; cur != nil && cur.seg == oldest {
			cur.f.Close()
			delete(a.current, oldest.stream)
		}
		os.Remove(oldest.path)
		a.segs = slices.DeleteFunc(a.segs, func(s *segment) bool { return s == oldest })
		a.size -= oldest.size
	}
}

// logToken is the decoded form of a Read page token.
type logToken struct {
	Query string `json:"q"`
	Time  int64  `json:"t"`
	ID    string `json:"i"`
}

func compareEntries(x, y providers.LogEntry) int {
	return cmp.Or(x.Time.Compare(y.Time), strings.Compare(x.ID, y.ID))
}

// Read returns one page of the app's entries matching q in time order,
// continuing after token.
func (l *Logs) Read(ctx context.Context, q providers.LogQuery, token string) (providers.LogPage, error) {
	if err := ctx.Err(); err != nil {
		return providers.LogPage{}, err
	}
	if q.App == "" {
		return providers.LogPage{}, providers.Invalidf("log query needs an App")
	}
	limit := q.Limit
	switch {
	case limit < 0:
		return providers.LogPage{}, providers.Invalidf("log limit %d is negative", limit)
	case limit == 0:
		limit = defaultLogLimit
	case limit > maxLogLimit:
		limit = maxLogLimit
	}
	var after *providers.LogEntry
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		var tok logToken
		if err == nil {
			err = json.Unmarshal(raw, &tok)
		}
		if err != nil || tok.Query != q.Fingerprint() {
			return providers.LogPage{}, providers.Invalidf("log token does not continue this query")
		}
		after = &providers.LogEntry{Time: time.Unix(0, tok.Time), ID: tok.ID}
	}

	a := l.app(q.App)
	a.mu.Lock()
	if err := a.load(); err != nil {
		a.mu.Unlock()
		return providers.LogPage{}, err
	}
	type part struct {
		path string
		size int64
	}
	var parts []part
	for _, s := range a.segs {
		switch {
		case q.Stream != "" && s.stream != q.Stream,
			!q.Start.IsZero() && s.max.Before(q.Start),
			!q.End.IsZero() && !s.min.Before(q.End),
			after != nil && s.max.Before(after.Time):
			continue
		}
		parts = append(parts, part{s.path, s.size})
	}
	a.mu.Unlock()

	var found []providers.LogEntry
	for _, p := range parts {
		f, err := os.Open(p.path)
		if errors.Is(err, os.ErrNotExist) {
			continue // dropped by retention meanwhile
		}
		if err != nil {
			return providers.LogPage{}, fsError("read logs", err)
		}
		err = readLines(f, p.size, func(line logLine, _ int) {
			e := providers.LogEntry{ID: line.ID, Time: line.Time, App: q.App, Stream: line.Stream, Process: line.Process, Release: line.Release, Message: line.Message}
			if q.Match(e) && (after == nil || compareEntries(*after, e) < 0) {
				found = append(found, e)
			}
		})
		f.Close()
		if err != nil {
			return providers.LogPage{}, err
		}
	}
	slices.SortFunc(found, compareEntries)
	var page providers.LogPage
	if len(found) > limit {
		found = found[:limit]
		last := found[limit-1]
		raw, _ := json.Marshal(logToken{Query: q.Fingerprint(), Time: last.Time.UnixNano(), ID: last.ID})
		page.Next = base64.RawURLEncoding.EncodeToString(raw)
	}
	page.Entries = found
	return page, nil
}

// Delete removes the app's logs; missing logs are not an error.
func (l *Logs) Delete(ctx context.Context, app string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if app == "" {
		return providers.Invalidf("delete logs needs an app")
	}
	a := l.app(app)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cur := range a.current {
		cur.f.Close()
	}
	clear(a.current)
	a.segs, a.size, a.loaded = nil, 0, false
	if err := os.RemoveAll(a.dir); err != nil {
		return fsError("delete logs", err)
	}
	return nil
}

// tailSub is one Tail subscription.
type tailSub struct {
	q      providers.LogQuery
	ch     chan providers.LogEntry
	lagged atomic.Bool
}

func (s *tailSub) offer(e providers.LogEntry) {
	if !s.q.Match(e) {
		return
	}
	select {
	case s.ch <- e:
	default:
		s.lagged.Store(true)
	}
}

// Tail yields the app's new entries matching q (Start ignored) as they are
// written, until ctx ends or the loop breaks. A reader too slow to keep up
// with 4096 buffered entries gets an ErrUnavailable error, last.
func (l *Logs) Tail(ctx context.Context, q providers.LogQuery) iter.Seq2[providers.LogEntry, error] {
	return func(yield func(providers.LogEntry, error) bool) {
		if q.App == "" {
			yield(providers.LogEntry{}, providers.Invalidf("log query needs an App"))
			return
		}
		q.Start = time.Time{}
		sub := &tailSub{q: q, ch: make(chan providers.LogEntry, 4096)}
		a := l.app(q.App)
		a.mu.Lock()
		a.subs[sub] = struct{}{}
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			delete(a.subs, sub)
			a.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-sub.ch:
				if !yield(e, nil) {
					return
				}
				if sub.lagged.Load() && len(sub.ch) == 0 {
					yield(providers.LogEntry{}, fmt.Errorf("log tail of %q fell behind and lost entries: %w", q.App, providers.ErrUnavailable))
					return
				}
			}
		}
	}
}

// close closes every open segment file.
func (l *Logs) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.apps {
		a.mu.Lock()
		for _, cur := range a.current {
			cur.f.Close()
		}
		clear(a.current)
		a.mu.Unlock()
	}
}
