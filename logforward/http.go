package logforward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// Defaults of HTTP.
const (
	DefaultHTTPBatchBytes  = 1 << 20
	DefaultHTTPBatchLines  = 5000
	DefaultHTTPMaxAttempts = 3
	DefaultHTTPMinBackoff  = 200 * time.Millisecond
	DefaultHTTPMaxBackoff  = 5 * time.Second
)

// Line is one JSON line HTTP sends for an entry.
type Line struct {
	Time    time.Time `json:"time"`
	App     string    `json:"app"`
	Process string    `json:"process,omitempty"`
	Release string    `json:"release,omitempty"`
	// Stream is the task ID, or "convox" for the platform's own events.
	Stream  string `json:"stream"`
	ID      string `json:"id"`
	Message string `json:"message"`
}

// HTTP is a Sink that POSTs entries as JSON lines (Content-Type
// application/x-ndjson, one Line per line) to a log service's HTTP
// intake, in requests of at most MaxBatchBytes bytes and MaxBatchLines
// lines (a single line longer than MaxBatchBytes is sent alone).
//
// A request is retried on network errors, 429 and 5xx, up to MaxAttempts
// attempts, after an exponential backoff with jitter or the response's
// Retry-After (up to MaxBackoff). Redirects are not followed. 400, 413
// and 422 answers mean the service will never take the batch: Send
// returns an error matching providers.ErrInvalid, so the handler drops it;
// any other answer (401, 403, 404, a redirect, ...) matches
// providers.ErrPermission, is not retried by Send, and the entries come
// again with the next delivery. The entries' IDs let the service discard the duplicates of an
// at-least-once delivery.
//
// URL and Header may hold credentials: String and errors show neither.
type HTTP struct {
	// URL receives the POSTs. Required.
	URL string
	// Header is added to every request (Authorization, an API key).
	Header http.Header
	// Client sends the requests; nil means a client like
	// http.DefaultClient. Its CheckRedirect is ignored.
	Client *http.Client
	// MaxBatchBytes bounds a request's body (DefaultHTTPBatchBytes).
	MaxBatchBytes int
	// MaxBatchLines bounds a request's lines (DefaultHTTPBatchLines).
	MaxBatchLines int
	// MaxAttempts bounds the attempts of a request
	// (DefaultHTTPMaxAttempts); 1 disables retries.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the waits between attempts
	// (DefaultHTTPMinBackoff, DefaultHTTPMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
}

var _ Sink = HTTP{}

// Send implements Sink.
func (h HTTP) Send(ctx context.Context, entries []providers.LogEntry) error {
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("logforward: HTTP sink: %w: URL is not an absolute http or https URL", providers.ErrInvalid)
	}
	maxBytes, maxLines := h.MaxBatchBytes, h.MaxBatchLines
	if maxBytes <= 0 {
		maxBytes = DefaultHTTPBatchBytes
	}
	if maxLines <= 0 {
		maxLines = DefaultHTTPBatchLines
	}
	var body bytes.Buffer
	lines := 0
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	var line bytes.Buffer
	lenc := json.NewEncoder(&line)
	lenc.SetEscapeHTML(false)
	for _, e := range entries {
		line.Reset()
		lenc.Encode(Line{Time: e.Time.UTC(), App: e.App, Process: e.Process, Release: e.Release, Stream: e.Stream, ID: e.ID, Message: e.Message})
		if lines > 0 && (body.Len()+line.Len() > maxBytes || lines == maxLines) {
			if err := h.post(ctx, u, body.Bytes(), lines); err != nil {
				return err
			}
			body.Reset()
			lines = 0
		}
		body.Write(line.Bytes())
		lines++
	}
	if lines > 0 {
		return h.post(ctx, u, body.Bytes(), lines)
	}
	return nil
}

// post sends one batch with retries.
func (h HTTP) post(ctx context.Context, u *url.URL, body []byte, lines int) error {
	attempts := h.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultHTTPMaxAttempts
	}
	minB, maxB := h.MinBackoff, h.MaxBackoff
	if minB <= 0 {
		minB = DefaultHTTPMinBackoff
	}
	if maxB <= 0 {
		maxB = DefaultHTTPMaxBackoff
	}
	maxB = max(minB, maxB)
	client := http.Client{}
	if h.Client != nil {
		client = *h.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	what := fmt.Sprintf("logforward: HTTP sink: post %d lines to %s://%s", lines, u.Scheme, u.Host)
	wait := minB
	for attempt := 1; ; attempt++ {
		retry, after, err := h.once(ctx, &client, u, body)
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%s (attempt %d of %d): %w", what, attempt, attempts, err)
		if !retry || attempt >= attempts || ctx.Err() != nil {
			return err
		}
		d := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		if after > 0 {
			d = min(after, maxB)
		}
		if err2 := poll.Sleep(ctx, d); err2 != nil {
			return errors.Join(err, err2)
		}
		wait = min(wait*2, maxB)
	}
}

// once makes one attempt and says whether a failure is worth another.
func (h HTTP) once(ctx context.Context, client *http.Client, u *url.URL, body []byte) (retry bool, after time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("%w: cannot build the request", providers.ErrInvalid)
	}
	for k, v := range h.Header {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, 0, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL may hold a credential
		}
		return true, 0, fmt.Errorf("%w: %w", providers.ErrUnavailable, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	status := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	switch {
	case code >= 200 && code < 300:
		return false, 0, nil
	case code == http.StatusTooManyRequests:
		return true, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%w: %s", providers.ErrThrottled, status)
	case code >= 500:
		return true, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%w: %s", providers.ErrUnavailable, status)
	case code == http.StatusBadRequest, code == http.StatusRequestEntityTooLarge, code == http.StatusUnprocessableEntity:
		return false, 0, fmt.Errorf("%w: %s", providers.ErrInvalid, status)
	default:
		return false, 0, fmt.Errorf("%w: %s", providers.ErrPermission, status)
	}
}

// retryAfter reads a Retry-After header's delay-seconds.
func retryAfter(v string) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || secs <= 0 {
		return 0
	}
	return time.Duration(min(secs, 3600)) * time.Second
}

// String describes the sink without the URL's path and query or the
// headers' values.
func (h HTTP) String() string {
	target := "<invalid>"
	if u, err := url.Parse(h.URL); err == nil && u.Host != "" {
		target = u.Scheme + "://" + u.Host
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
			target += "/<redacted>"
		}
	}
	return fmt.Sprintf("logforward.HTTP{URL:%s Headers:%d}", target, len(h.Header))
}

// Format implements fmt.Formatter so that every verb prints String.
func (h HTTP) Format(f fmt.State, verb rune) { fmt.Fprint(f, h.String()) }
