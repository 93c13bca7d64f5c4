package cwlogs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/convox-go/convox/providers"
)

// Defaults of BufferOptions.
const (
	DefaultFlushInterval = 5 * time.Second
	DefaultFlushTimeout  = 30 * time.Second
)

// ErrClosed is returned by the methods of a closed BufferedWriter.
var ErrClosed = errors.New("cwlogs: buffered writer is closed")

// BufferOptions configure a BufferedWriter. Every zero field takes its
// default.
type BufferOptions struct {
	// MaxBytes is the most bytes buffered, counting EventOverhead per
	// entry as PutLogEvents does: an entry that would exceed it flushes the
	// buffer first. MaxBatchBytes by default (and at most).
	MaxBytes int
	// MaxEntries is the most entries buffered: MaxBatchEvents by default
	// (and at most).
	MaxEntries int
	// Interval is how long an entry may wait in the buffer before a
	// background flush sends it (checked every quarter Interval):
	// DefaultFlushInterval by default.
	Interval time.Duration
	// FlushTimeout bounds a background flush: DefaultFlushTimeout by
	// default.
	FlushTimeout time.Duration
	// MaxRetained is the most entries kept in the buffer after flushes
	// that failed with a temporary error (throttling, unavailability), to
	// be sent by the next flush; beyond it they are dropped with the
	// error. Ten times MaxEntries by default.
	MaxRetained int
	// OnError receives the error of every background flush that failed.
	// Whether or not it is set, the error is also returned, once, by the
	// next Write, Flush or Close.
	OnError func(error)
}

// BufferedWriter batches entries for CloudWatch Logs in high volume: it
// buffers them and sends them with the fewest PutLogEvents calls, flushing
// when the buffer is full (by bytes or by entries, the API limits by
// default), when its oldest entry has waited about Interval, and on Flush
// and Close. A program writing one line at a time thus makes about one call
// per megabyte or per 10,000 lines instead of one per line.
//
// Write blocks while a flush it triggered runs (back pressure). Entries
// of a flush that failed with a temporary error stay buffered and are sent
// again by the next flush; some of them may then be stored twice, which
// Read and Tail hide (they return an entry ID once per timestamp). It is
// safe for concurrent use; Close it when done.
type BufferedWriter struct {
	l    *Logs
	opts BufferOptions

	mu      sync.Mutex
	buf     map[stream][]types.InputLogEvent
	n       int       // entries buffered
	size    int       // bytes buffered, counting EventOverhead each
	oldest  time.Time // when the oldest buffered entry was buffered
	pending error     // error of a background flush, not yet returned
	closed  bool

	done chan struct{}
	wg   sync.WaitGroup
}

// NewBufferedWriter returns a BufferedWriter writing through l. opts may
// be nil.
func (l *Logs) NewBufferedWriter(opts *BufferOptions) *BufferedWriter {
	w := &BufferedWriter{l: l, buf: map[stream][]types.InputLogEvent{}, done: make(chan struct{})}
	if opts != nil {
		w.opts = *opts
	}
	if w.opts.MaxBytes <= 0 || w.opts.MaxBytes > MaxBatchBytes {
		w.opts.MaxBytes = MaxBatchBytes
	}
	if w.opts.MaxEntries <= 0 || w.opts.MaxEntries > MaxBatchEvents {
		w.opts.MaxEntries = MaxBatchEvents
	}
	if w.opts.Interval <= 0 {
		w.opts.Interval = DefaultFlushInterval
	}
	if w.opts.FlushTimeout <= 0 {
		w.opts.FlushTimeout = DefaultFlushTimeout
	}
	if w.opts.MaxRetained <= 0 {
		w.opts.MaxRetained = 10 * w.opts.MaxEntries
	}
	w.wg.Add(1)
	go w.background()
	return w
}

// background flushes entries that have waited Interval.
func (w *BufferedWriter) background() {
	defer w.wg.Done()
	tick := time.NewTicker(max(w.opts.Interval/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-tick.C:
		}
		w.mu.Lock()
		if w.n > 0 && time.Since(w.oldest) >= w.opts.Interval {
			ctx, cancel := context.WithTimeout(context.Background(), w.opts.FlushTimeout)
			if err := w.flushLocked(ctx); err != nil {
				w.pending = errors.Join(w.pending, err)
				if w.opts.OnError != nil {
					w.opts.OnError(err)
				}
			}
			cancel()
		}
		w.mu.Unlock()
	}
}

// takePending returns and clears the error of background flushes.
func (w *BufferedWriter) takePending() error {
	err := w.pending
	w.pending = nil
	return err
}

// Write buffers entries, flushing first whenever the next entry would
// overflow the buffer. Every entry is validated before any is buffered
// (ErrInvalid as for Logs.Write, and nothing is buffered). It returns the
// error of a flush it made, or of a background flush that failed since
// the previous call.
func (w *BufferedWriter) Write(ctx context.Context, entries []providers.LogEntry) error {
	type prepared struct {
		dst stream
		ev  types.InputLogEvent
	}
	evs := make([]prepared, len(entries))
	for i, e := range entries {
		dst, ev, err := w.l.event(e)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		evs[i] = prepared{dst, ev}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	var errs []error
	for _, p := range evs {
		n := len(aws.ToString(p.ev.Message)) + EventOverhead
		if w.n > 0 && (w.n+1 > w.opts.MaxEntries || w.size+n > w.opts.MaxBytes) {
			if err := w.flushLocked(ctx); err != nil {
				errs = append(errs, err)
				if ctx.Err() != nil {
					return errors.Join(errs...)
				}
			}
		}
		if w.n == 0 {
			w.oldest = time.Now()
		}
		w.buf[p.dst] = append(w.buf[p.dst], p.ev)
		w.n++
		w.size += n
	}
	return errors.Join(append([]error{w.takePending()}, errs...)...)
}

// flushLocked sends the buffer; w.mu is held. After a temporary failure
// the entries stay buffered unless that exceeds MaxRetained.
func (w *BufferedWriter) flushLocked(ctx context.Context) error {
	if w.n == 0 {
		return nil
	}
	buf := w.buf
	err := w.l.putAll(ctx, buf)
	if err != nil && providers.IsTemporary(err) && w.n <= w.opts.MaxRetained {
		return err
	}
	w.buf, w.n, w.size = map[stream][]types.InputLogEvent{}, 0, 0
	return err
}

// Flush sends every buffered entry now. It returns the flush's error and
// that of any background flush that failed since the previous call.
func (w *BufferedWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	return errors.Join(w.takePending(), w.flushLocked(ctx))
}

// Close stops the background flushes and sends every buffered entry.
// Later calls of any method return ErrClosed. Entries a failed final
// flush could not send are dropped and reported in the error.
func (w *BufferedWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	w.mu.Unlock()
	close(w.done)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	err := errors.Join(w.takePending(), w.flushLocked(ctx))
	w.buf, w.n, w.size = map[stream][]types.InputLogEvent{}, 0, 0
	return err
}
