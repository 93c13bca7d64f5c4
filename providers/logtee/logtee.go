// Package logtee migrates an app's logs from one providers.Logs to another
// without users noticing: a Tee writes every entry to both, reads from the
// new provider and falls back to the old one for the time before the new
// one holds everything, and a cutover stops the writes to the old one.
//
// A migration from Kinesis to CloudWatch Logs, say, runs in three steps:
//
//	tee := logtee.New(kinesis, cloudwatch, &logtee.Options{Since: time.Now()})
//	rack.LogBackends = append(rack.LogBackends, convox.Named[providers.Logs]{Name: "migrating", Provider: tee})
//	c.App("web").SwitchLogs(ctx, "migrating") // 1. write to both, read across both
//	tee.Cutover()                            // 2. once every reader uses the tee: write to the new one only
//	c.App("web").SwitchLogs(ctx, "cloudwatch") // 3. after the old logs' retention: drop the tee
//
// Entries get their IDs from the tee before they are written, so an entry
// has the same ID in both providers and readers dedupe across the switch.
package logtee

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/convox-go/convox/providers"
)

// Options configure a Tee.
type Options struct {
	// Since is when the new provider started receiving every entry: reads
	// of earlier times come from the old provider. The zero time means the
	// Tee's creation time. It is rounded up to a whole millisecond.
	Since time.Time
	// CutOver starts the Tee with writes to the old provider already stopped.
	CutOver bool
}

// Tee is a providers.Logs over an old and a new provider. It is safe for
// concurrent use.
type Tee struct {
	old, new providers.Logs
	since    time.Time
	cutover  atomic.Bool
}

var _ providers.Logs = (*Tee)(nil)

// New returns a Tee from old to new.
func New(old, new providers.Logs, opts *Options) *Tee {
	t := &Tee{old: old, new: new, since: time.Now()}
	if opts != nil {
		if !opts.Since.IsZero() {
			t.since = opts.Since
		}
		t.cutover.Store(opts.CutOver)
	}
	// Backends may keep milliseconds only: a Since inside a millisecond
	// would hide that millisecond's entries from both sides of a read.
	if r := t.since.Truncate(time.Millisecond); !r.Equal(t.since) {
		t.since = r.Add(time.Millisecond)
	}
	return t
}

// Since returns when the new provider started receiving every entry.
func (t *Tee) Since() time.Time { return t.since }

// Cutover stops writing entries timed from Since on to the old provider.
// Reads of times before Since still come from it. Cutover is idempotent.
func (t *Tee) Cutover() { t.cutover.Store(true) }

// CutOver reports whether Cutover was called.
func (t *Tee) CutOver() bool { return t.cutover.Load() }

// Write assigns IDs to entries without one and writes them to the new
// provider and, before the cutover, to the old one; after the cutover only
// entries timed before Since still go to the old one (reads of those times
// come from it). It fails if either write fails; the entries may then be
// in one of them.
func (t *Tee) Write(ctx context.Context, entries []providers.LogEntry) error {
	es := make([]providers.LogEntry, len(entries))
	copy(es, entries)
	for i := range es {
		if es[i].ID == "" {
			es[i].ID = newID()
		}
	}
	var errs []error
	if err := t.new.Write(ctx, es); err != nil {
		errs = append(errs, fmt.Errorf("new logs: %w", err))
	}
	// Reads of times before Since come from the old provider, so entries
	// of those times go there even after the cutover.
	toOld := es
	if t.cutover.Load() {
		toOld = nil
		for _, e := range es {
			if e.Time.Before(t.since) {
				toOld = append(toOld, e)
			}
		}
	}
	if len(toOld) > 0 {
		if err := t.old.Write(ctx, toOld); err != nil {
			errs = append(errs, fmt.Errorf("old logs: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Read returns entries of q before Since from the old provider, then the
// rest from the new one. Its tokens say which provider they continue.
func (t *Tee) Read(ctx context.Context, q providers.LogQuery, token string) (providers.LogPage, error) {
	phase, inner, ok := strings.Cut(token, ":")
	switch {
	case token == "":
		phase = "old"
		if !q.Start.IsZero() && !q.Start.Before(t.since) {
			phase = "new"
		}
	case !ok || (phase != "old" && phase != "new"):
		return providers.LogPage{}, providers.Invalidf("log page token %q was not made by this tee", token)
	}
	if phase == "old" {
		oq := q
		if oq.End.IsZero() || oq.End.After(t.since) {
			oq.End = t.since
		}
		page, err := t.old.Read(ctx, oq, inner)
		if err != nil {
			return providers.LogPage{}, fmt.Errorf("old logs: %w", err)
		}
		switch {
		case page.Next != "":
			page.Next = "old:" + page.Next
			return page, nil
		case !q.End.IsZero() && !q.End.After(t.since):
			return page, nil // the range ends before the switch
		case len(page.Entries) > 0:
			page.Next = "new:"
			return page, nil
		}
		inner = "" // nothing before the switch: read on from the new provider
	}
	nq := q
	if nq.Start.Before(t.since) {
		nq.Start = t.since
	}
	page, err := t.new.Read(ctx, nq, inner)
	if err != nil {
		return providers.LogPage{}, fmt.Errorf("new logs: %w", err)
	}
	if page.Next != "" {
		page.Next = "new:" + page.Next
	}
	return page, nil
}

// Delete removes the app's logs from both providers.
func (t *Tee) Delete(ctx context.Context, app string) error {
	return errors.Join(t.new.Delete(ctx, app), t.old.Delete(ctx, app))
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
