package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// WebhookVersion is the version of the WebhookPayload schema. It changes
// only when a field is removed or changes meaning; fields may be added
// within a version.
const WebhookVersion = 1

// Headers of a webhook delivery.
const (
	// HeaderSignature carries "sha256=" and the lowercase hex HMAC-SHA256,
	// keyed with the shared secret, of the timestamp header's value, a
	// period, and the request body: HMAC(secret, timestamp + "." + body).
	HeaderSignature = "X-Convox-Signature"
	// HeaderTimestamp carries the Unix time in seconds at which the attempt
	// was signed. Each attempt is signed anew.
	HeaderTimestamp = "X-Convox-Timestamp"
	// HeaderDelivery carries the delivery ID, equal to the payload's "id":
	// the same for every attempt of a notification, so receivers can
	// discard repeats.
	HeaderDelivery = "X-Convox-Delivery"
	// HeaderEvent carries the notification kind ("deploy-failed", ...).
	HeaderEvent = "X-Convox-Event"
)

// SignatureTolerance is how far a delivery's timestamp may be from the
// receiver's clock for VerifySignature to accept it. Older deliveries are
// refused as possible replays.
const SignatureTolerance = 5 * time.Minute

// Webhook defaults, used when the field is zero.
const (
	// DefaultMaxAttempts is Webhook.MaxAttempts's default.
	DefaultMaxAttempts = 4
	// DefaultMinBackoff is Webhook.MinBackoff's default.
	DefaultMinBackoff = time.Second
	// DefaultMaxBackoff is Webhook.MaxBackoff's default.
	DefaultMaxBackoff = 30 * time.Second
)

// ErrBadSignature is matched (errors.Is) by every error of VerifySignature.
var ErrBadSignature = errors.New("bad webhook signature")

// WebhookPayload is the JSON body of a webhook delivery, schema version 1.
// Every field is always present; strings that do not apply are empty.
//
//	{
//	  "version": 1,
//	  "id": "5d0c3e3e8e5b1f3b2a4f6c7d8e9f0a1b",
//	  "kind": "deploy-failed",
//	  "app": "web",
//	  "release": "R2",
//	  "previous_release": "R1",
//	  "summary": "deploy of R2 failed at wait: 2 tasks stopped",
//	  "reason": "exit status 2",
//	  "rolled_back": true,
//	  "time": "2025-01-02T03:04:05Z"
//	}
type WebhookPayload struct {
	// Version is WebhookVersion.
	Version int `json:"version"`
	// ID identifies the notification; it equals the HeaderDelivery header.
	// It is derived from Kind, App, Release, Previous and Time, so the same
	// notification always has the same ID.
	ID string `json:"id"`
	// Kind is what happened: "deploy-started", "deploy-succeeded",
	// "deploy-failed" or "rollback".
	Kind providers.NotificationKind `json:"kind"`
	// App is the app's name.
	App string `json:"app"`
	// Release is the release deployed; for a rollback, the release now
	// serving.
	Release string `json:"release"`
	// PreviousRelease is the release that was active before.
	PreviousRelease string `json:"previous_release"`
	// Summary is a one-line description of the change.
	Summary string `json:"summary"`
	// Reason explains a failure.
	Reason string `json:"reason"`
	// RolledBack is true when a failed deploy was compensated.
	RolledBack bool `json:"rolled_back"`
	// Time is when it happened, in UTC (RFC 3339).
	Time time.Time `json:"time"`
}

// NewWebhookPayload returns the payload a Webhook sends for n. A zero
// n.Time is left zero here; Webhook.Notify sets it to the current time
// first.
func NewWebhookPayload(n providers.Notification) WebhookPayload {
	return WebhookPayload{
		Version:         WebhookVersion,
		ID:              deliveryID(n),
		Kind:            n.Kind,
		App:             n.App,
		Release:         n.Release,
		PreviousRelease: n.Previous,
		Summary:         n.Summary,
		Reason:          n.Reason,
		RolledBack:      n.RolledBack,
		Time:            n.Time.UTC(),
	}
}

// deliveryID derives a stable ID from the identifying fields of n.
func deliveryID(n providers.Notification) string {
	h := sha256.New()
	for _, s := range []string{string(n.Kind), n.App, n.Release, n.Previous, n.Time.UTC().Format(time.RFC3339Nano)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Webhook POSTs notifications as signed JSON (WebhookPayload) to a URL.
//
// Each request carries Content-Type: application/json and the headers
// HeaderDelivery, HeaderEvent, HeaderTimestamp and HeaderSignature.
// The signature is the HMAC-SHA256, keyed with Secret, of the timestamp
// header's value, a period and the exact request body; receivers check it
// with VerifySignature, which also refuses timestamps more than
// SignatureTolerance away from their clock, and discard repeated delivery
// IDs.
//
// A delivery is retried on network errors, 429 and 5xx responses, up to
// MaxAttempts attempts in all, waiting between attempts with exponential
// backoff and jitter (each wait a random duration between half and all of
// MinBackoff doubled per attempt, capped at MaxBackoff) or exactly the
// response's Retry-After when it sent one. It stops at once, returning the
// last error, when the next attempt could not start before ctx's deadline
// or when Retry-After asks for more than MaxBackoff. Other responses
// outside 2xx (including redirects, which are not followed) are never
// retried. Errors wrap the last attempt's *HTTPError and its sentinel
// (see HTTPError); a canceled or expired ctx returns the context's error.
//
// The URL and the secret are secrets: String, every fmt verb and every
// returned error show only the URL's scheme and host. A Webhook is safe
// for concurrent use.
type Webhook struct {
	// URL receives the POSTs.
	URL string
	// Secret keys the signature. Required.
	Secret []byte
	// Client sends the requests; nil means a client like
	// http.DefaultClient. Its CheckRedirect is ignored.
	Client *http.Client
	// MaxAttempts bounds the attempts of one delivery; zero means
	// DefaultMaxAttempts, 1 disables retries.
	MaxAttempts int
	// MinBackoff is the first wait between attempts before jitter; zero
	// means DefaultMinBackoff.
	MinBackoff time.Duration
	// MaxBackoff caps the waits, and the Retry-After that is honored; zero
	// means DefaultMaxBackoff.
	MaxBackoff time.Duration
}

var _ providers.Notifier = Webhook{}

// Notify implements providers.Notifier: it delivers n, retrying as the
// type describes, bounded by ctx. A zero n.Time is set to the current time.
func (w Webhook) Notify(ctx context.Context, n providers.Notification) error {
	u, err := parseEndpoint(w.URL)
	if err != nil {
		return fmt.Errorf("webhook: URL: %w: %w", providers.ErrInvalid, err)
	}
	if len(w.Secret) == 0 {
		return fmt.Errorf("webhook: %w: Secret is empty", providers.ErrInvalid)
	}
	if n.Time.IsZero() {
		n.Time = time.Now()
	}
	p := NewWebhookPayload(n)
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("webhook: encode payload: %w: %w", providers.ErrInvalid, err)
	}
	attempts := w.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	minB, maxB := w.backoffs()
	x := exchange{
		client:    noRedirects(w.Client),
		method:    http.MethodPost,
		url:       u,
		printable: redactURL(w.URL),
		body:      body,
		secrets:   []string{w.URL, u.Path, u.RawQuery, string(w.Secret)},
	}
	what := fmt.Sprintf("webhook: deliver %s of %s", n.Kind, target(n))
	for attempt := 1; ; attempt++ {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		x.header = http.Header{
			"Content-Type":  {"application/json"},
			HeaderDelivery:  {p.ID},
			HeaderEvent:     {string(n.Kind)},
			HeaderTimestamp: {ts},
			HeaderSignature: {Signature(w.Secret, ts, body)},
		}
		_, err := x.do(ctx)
		if err == nil {
			return nil
		}
		at := fmt.Sprintf("%s (attempt %d of %d)", what, attempt, attempts)
		if ctx.Err() != nil || !retryable(err) || attempt >= attempts {
			return fmt.Errorf("%s: %w", at, err)
		}
		wait := retryAfter(err)
		switch {
		case wait > maxB:
			return fmt.Errorf("%s: %w (not retried: Retry-After exceeds %s)", at, err, maxB)
		case wait == 0:
			wait = backoff(attempt, minB, maxB, rand.Int64N)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%s: %w (not retried: the next attempt, in %s, would be after the deadline)", at, err, wait)
		}
		if err2 := poll.Sleep(ctx, wait); err2 != nil {
			return fmt.Errorf("%s: %w (waiting to retry after: %v)", at, err2, err)
		}
	}
}

// retryable reports whether a failed attempt is retried: a network error,
// or a 429 or 5xx response.
func retryable(err error) bool {
	var herr *HTTPError
	if errors.As(err, &herr) {
		return herr.StatusCode == http.StatusTooManyRequests || herr.StatusCode >= 500
	}
	return errors.Is(err, providers.ErrUnavailable)
}

func (w Webhook) backoffs() (time.Duration, time.Duration) {
	minB, maxB := w.MinBackoff, w.MaxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	return minB, max(minB, maxB)
}

// backoff returns the wait after the attempt-th failed attempt: a random
// duration between half and all of minB·2^(attempt-1), capped at maxB.
// randN returns a number in [0, n).
func backoff(attempt int, minB, maxB time.Duration, randN func(n int64) int64) time.Duration {
	d := minB
	for i := 1; i < attempt && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	half := d / 2
	return half + time.Duration(randN(int64(d-half)+1))
}

// String describes the notifier with the URL's path and the secret redacted.
func (w Webhook) String() string {
	secret := ""
	if len(w.Secret) > 0 {
		secret = redacted
	}
	return fmt.Sprintf("notify.Webhook{URL:%s Secret:%s MaxAttempts:%d MinBackoff:%s MaxBackoff:%s}",
		redactURL(w.URL), secret, w.MaxAttempts, w.MinBackoff, w.MaxBackoff)
}

// Format implements fmt.Formatter so that every verb prints String.
func (w Webhook) Format(f fmt.State, verb rune) { fmt.Fprint(f, w.String()) }

// Signature returns the value of HeaderSignature for a body sent with the
// timestamp header value ts: "sha256=" followed by the lowercase hex of
// HMAC-SHA256(secret, ts + "." + body). Receivers can use it to sign test
// requests.
func Signature(secret []byte, ts string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a webhook delivery: signature is the
// HeaderSignature header, timestamp the HeaderTimestamp header and body
// the exact request body. It returns nil when the signature is the
// HMAC-SHA256 of timestamp + "." + body keyed with secret (compared in
// constant time) and timestamp is within SignatureTolerance of the current
// time; otherwise an error matching ErrBadSignature.
func VerifySignature(secret []byte, signature, timestamp string, body []byte) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrBadSignature)
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(signature), "sha256=")
	if !ok {
		return fmt.Errorf("%w: the signature does not start with sha256=", ErrBadSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: the signature is not hexadecimal", ErrBadSignature)
	}
	if !hmac.Equal(got, mac(secret, timestamp, body)) {
		return fmt.Errorf("%w: the signature does not match", ErrBadSignature)
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: the timestamp is not Unix seconds", ErrBadSignature)
	}
	if age := time.Since(time.Unix(secs, 0)); age > SignatureTolerance || age < -SignatureTolerance {
		return fmt.Errorf("%w: the timestamp is %s away from the current time; the tolerance is %s", ErrBadSignature, age.Truncate(time.Second), SignatureTolerance)
	}
	return nil
}
