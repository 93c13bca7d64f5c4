package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/convox-go/convox/providers"
)

// userAgent identifies the notifiers to the endpoints they call.
const userAgent = "convox-notify/1"

// maxResponse bounds how much of a response body is read.
const maxResponse = 64 << 10

// maxMessage bounds the response text kept in an HTTPError.
const maxMessage = 200

// redacted replaces secrets in String output and errors.
const redacted = "<redacted>"

// HTTPError is the cause of a notifier error when an endpoint answered
// with a status outside 2xx. The error a notifier returns wraps it
// together with the sentinel of package providers that matches the status:
//
//   - 429, and 403 with X-RateLimit-Remaining: 0 or Retry-After: ErrThrottled
//   - 5xx: ErrUnavailable
//   - 401, 403, 404: ErrPermission
//   - 409: ErrConflict
//   - any other status (400, 410, 422, a redirect, ...): ErrInvalid
//
// so errors.Is(err, providers.ErrThrottled) and errors.As(err, &httpErr)
// both work.
type HTTPError struct {
	// StatusCode is the response's HTTP status code.
	StatusCode int
	// Message is the start of the response body on one line (at most 200
	// characters), or the "message" field of a JSON error body.
	Message string
	// RetryAfter is the wait the endpoint asked for with a Retry-After
	// header; zero when it sent none.
	RetryAfter time.Duration
}

// Error describes the status and the endpoint's message.
func (e *HTTPError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// category returns the sentinel of package providers that matches a
// non-2xx status.
func category(code int, h http.Header) error {
	switch {
	case code == http.StatusTooManyRequests:
		return providers.ErrThrottled
	case code >= 500:
		return providers.ErrUnavailable
	case code == http.StatusForbidden && (h.Get("X-RateLimit-Remaining") == "0" || h.Get("Retry-After") != ""):
		return providers.ErrThrottled
	case code == http.StatusUnauthorized, code == http.StatusForbidden, code == http.StatusNotFound:
		return providers.ErrPermission
	case code == http.StatusConflict:
		return providers.ErrConflict
	default:
		return providers.ErrInvalid
	}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date. Missing, malformed or past values give zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 || secs > int64(24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return max(t.Sub(now).Truncate(time.Second), 0)
}

// message reduces a response body to one printable line of at most
// maxMessage characters, preferring the "message" field of a JSON body,
// with every secret of at least 4 bytes replaced by "<redacted>".
func message(body []byte, secrets []string) string {
	var obj struct {
		Message string `json:"message"`
	}
	s := string(body)
	if json.Unmarshal(body, &obj) == nil && obj.Message != "" {
		s = obj.Message
	}
	for _, secret := range secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	return truncate(strings.Join(strings.Fields(s), " "), maxMessage)
}

// truncate shortens s to at most n characters, ending with "…" when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n-1 {
			break
		}
		b.WriteRune(r)
		i++
	}
	b.WriteString("…")
	return b.String()
}

// parseEndpoint parses an absolute http or https URL. Its error never
// repeats the URL, which may hold a secret.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("not an absolute http or https URL")
	}
	return u, nil
}

// redactURL returns the scheme and host of a URL, with "/<redacted>" in
// place of anything after them (path, query, fragment) and without user
// information, so that a webhook URL's tokens are never printed.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return redacted
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		s += "/" + redacted
	}
	return s
}

// safeURL returns a URL without user information, query or fragment. It
// is for URLs whose path is not secret (an API base URL).
func safeURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return redacted
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// noRedirects returns a copy of c (or of a zero client) that does not
// follow redirects: a redirected POST would silently become a GET.
func noRedirects(c *http.Client) *http.Client {
	var cc http.Client
	if c != nil {
		cc = *c
	}
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// exchange is one HTTP request of a notifier.
type exchange struct {
	client *http.Client
	method string
	url    *url.URL
	// printable is the URL as errors may show it.
	printable string
	header    http.Header
	body      []byte
	// secrets are removed from response text kept in errors, should an
	// endpoint echo them.
	secrets []string
	// onHeader, when set, receives the headers of a 2xx response.
	onHeader func(http.Header)
}

// do sends the request and returns the body of a 2xx response. Failures:
// the context's error when ctx ended; ErrUnavailable with the transport
// error (its URL replaced by printable) when the endpoint was not reached;
// the status's sentinel with an *HTTPError otherwise.
func (x exchange) do(ctx context.Context) ([]byte, error) {
	var body io.Reader
	if x.body != nil {
		body = bytes.NewReader(x.body)
	}
	req, err := http.NewRequestWithContext(ctx, x.method, x.url.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot build the request", providers.ErrInvalid)
	}
	for k, v := range x.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", userAgent)
	client := x.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", providers.ErrUnavailable, x.redact(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: read response: %w", providers.ErrUnavailable, x.redact(err))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if x.onHeader != nil {
			x.onHeader(resp.Header)
		}
		return data, nil
	}
	herr := &HTTPError{StatusCode: resp.StatusCode, Message: message(data, x.secrets), RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	return nil, fmt.Errorf("%w: %w", category(resp.StatusCode, resp.Header), herr)
}

// redact replaces the URL of a *url.Error, which may hold a secret, with
// the printable form.
func (x exchange) redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: x.printable, Err: ue.Err}
	}
	return err
}

// retryAfter returns the Retry-After of the HTTPError in err, if any.
func retryAfter(err error) time.Duration {
	var herr *HTTPError
	if errors.As(err, &herr) {
		return herr.RetryAfter
	}
	return 0
}

// target names the app and release of a notification in errors.
func target(n providers.Notification) string {
	return n.App + "/" + n.Release
}
