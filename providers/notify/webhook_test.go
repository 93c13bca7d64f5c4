package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/notify"
)

var secret = []byte("s3cret")

// sign computes the documented signature independently of the package.
func sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "." + string(body)))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhookDelivery(t *testing.T) {
	now := strconv.FormatInt(bubbleStart.Unix(), 10)
	tests := []struct {
		name      string
		n         providers.Notification
		wantBody  string
		wantEvent string
		wantID    string
	}{
		{
			name:      "a failed deploy is sent with the documented schema",
			n:         failed,
			wantEvent: "deploy-failed",
			wantID:    "8ccd36716a66ccfab9db6cd76bd6dedb",
			wantBody: `{"version": 1, "id": "8ccd36716a66ccfab9db6cd76bd6dedb", "kind": "deploy-failed",
				"app": "web", "release": "R2", "previous_release": "R1",
				"summary": "deploy of R2 failed at wait", "reason": "exit status 2", "rolled_back": true,
				"time": "2025-01-02T03:04:05Z"}`,
		},
		{
			name:      "fields that do not apply are present and empty",
			n:         providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R1", Time: t0},
			wantEvent: "deploy-started",
			wantID:    "4b3dbe4d750bb64c2272792bf832968a",
			wantBody: `{"version": 1, "id": "4b3dbe4d750bb64c2272792bf832968a", "kind": "deploy-started",
				"app": "web", "release": "R1", "previous_release": "",
				"summary": "", "reason": "", "rolled_back": false,
				"time": "2025-01-02T03:04:05Z"}`,
		},
		{
			name:      "a zero time becomes the time of the call, in UTC",
			n:         providers.Notification{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R1"},
			wantEvent: "deploy-succeeded",
			wantID:    "ccbd79c4556c3f29de1bfce3bf895821",
			wantBody: `{"version": 1, "id": "ccbd79c4556c3f29de1bfce3bf895821", "kind": "deploy-succeeded",
				"app": "web", "release": "R1", "previous_release": "",
				"summary": "", "reason": "", "rolled_back": false,
				"time": "2000-01-01T00:00:00Z"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := &transport{replies: []reply{{status: http.StatusNoContent}}}
				w := notify.Webhook{URL: "https://hooks.example.com/in?token=abc", Secret: secret, Client: tr.client()}
				if err := w.Notify(context.Background(), tt.n); err != nil {
					t.Fatalf("Notify: %v", err)
				}
				got := tr.attempts()
				if len(got) != 1 {
					t.Fatalf("got %d requests, want 1", len(got))
				}
				a := got[0]
				if diff := cmp.Diff([]string{"POST", "https://hooks.example.com/in?token=abc"}, []string{a.method, a.url}); diff != "" {
					t.Errorf("request (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(decode(t, []byte(tt.wantBody)), decode(t, a.body)); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
				wantHeader := http.Header{
					"Content-Type":       {"application/json"},
					"User-Agent":         {"convox-notify/1"},
					"X-Convox-Delivery":  {tt.wantID},
					"X-Convox-Event":     {tt.wantEvent},
					"X-Convox-Timestamp": {now},
					"X-Convox-Signature": {sign(secret, now, a.body)},
				}
				if diff := cmp.Diff(wantHeader, a.header); diff != "" {
					t.Errorf("headers (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestWebhookReceiverVerifiesAndDecodes(t *testing.T) {
	var got []notify.WebhookPayload
	var verr []error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifySignature(secret, r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body); err != nil {
			verr = append(verr, err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p notify.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			verr = append(verr, err)
		}
		got = append(got, p)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	if err := (notify.Webhook{URL: srv.URL, Secret: secret}).Notify(context.Background(), failed); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if err := (notify.Webhook{URL: srv.URL, Secret: []byte("another secret"), MaxAttempts: 1}).Notify(context.Background(), failed); !errors.Is(err, providers.ErrPermission) {
		t.Errorf("Notify with the wrong secret = %v, want ErrPermission from the receiver's 401", err)
	}
	want := []notify.WebhookPayload{{
		Version: 1, ID: "8ccd36716a66ccfab9db6cd76bd6dedb", Kind: providers.NotifyDeployFailed,
		App: "web", Release: "R2", PreviousRelease: "R1", Summary: "deploy of R2 failed at wait",
		Reason: "exit status 2", RolledBack: true, Time: t0,
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if len(verr) != 1 || !errors.Is(verr[0], notify.ErrBadSignature) {
		t.Errorf("receiver errors = %v, want one ErrBadSignature", verr)
	}
}

// bubbleStart is the time at which the clock of every testing/synctest
// bubble starts.
var bubbleStart = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"version":1}`)
	now := bubbleStart.Unix()
	ts := strconv.FormatInt(now, 10)
	at := func(d time.Duration) string { return strconv.FormatInt(now+int64(d/time.Second), 10) }
	tests := []struct {
		name      string
		secret    []byte
		signature string
		timestamp string
		body      []byte
		want      bool
	}{
		{"a signature made with the secret verifies", secret, sign(secret, ts, body), ts, body, true},
		{"Signature agrees with the documented scheme", secret, notify.Signature(secret, ts, body), ts, body, true},
		{"surrounding spaces are ignored", secret, " " + sign(secret, ts, body) + " ", ts, body, true},
		{"a timestamp at the tolerance verifies", secret, sign(secret, at(-5*time.Minute), body), at(-5 * time.Minute), body, true},
		{"a tampered body fails", secret, sign(secret, ts, body), ts, []byte(`{"version":2}`), false},
		{"a tampered timestamp fails", secret, sign(secret, ts, body), at(time.Second), body, false},
		{"another secret fails", []byte("other"), sign(secret, ts, body), ts, body, false},
		{"an empty secret fails", nil, sign(nil, ts, body), ts, body, false},
		{"a signature without sha256= fails", secret, sign(secret, ts, body)[len("sha256="):], ts, body, false},
		{"a signature that is not hex fails", secret, "sha256=zz", ts, body, false},
		{"a truncated signature fails", secret, sign(secret, ts, body)[:20], ts, body, false},
		{"a replay older than the tolerance fails", secret, sign(secret, at(-5*time.Minute-time.Second), body), at(-5*time.Minute - time.Second), body, false},
		{"a timestamp too far ahead fails", secret, sign(secret, at(6*time.Minute), body), at(6 * time.Minute), body, false},
		{"a timestamp that is not Unix seconds fails", secret, sign(secret, "yesterday", body), "yesterday", body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				err := notify.VerifySignature(tt.secret, tt.signature, tt.timestamp, tt.body)
				if diff := cmp.Diff(tt.want, err == nil); diff != "" {
					t.Errorf("verified, err = %v (-want +got):\n%s", err, diff)
				}
				if err != nil && !errors.Is(err, notify.ErrBadSignature) {
					t.Errorf("err = %v, want ErrBadSignature", err)
				}
			})
		})
	}
}

func TestWebhookRetries(t *testing.T) {
	tests := []struct {
		name string
		// replies returns the transport's script; it runs inside the bubble.
		replies      func() []reply
		config       func(*notify.Webhook)
		timeout      time.Duration
		wantAttempts int
		wantErr      string
		// wantGaps are the exact waits between attempts, or nil to check
		// gapBounds.
		wantGaps  []time.Duration
		gapBounds [][2]time.Duration
	}{
		{
			name:         "503 twice then 200 is delivered on the third attempt after backoff",
			replies:      func() []reply { return []reply{{status: 503}, {status: 503}, {status: 200}} },
			wantAttempts: 3,
			wantErr:      "nil",
			gapBounds:    [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}},
		},
		{
			name:         "400 is not retried",
			replies:      func() []reply { return []reply{{status: 400}} },
			wantAttempts: 1,
			wantErr:      "invalid",
		},
		{
			name:         "403 is not retried, even with Retry-After",
			replies:      func() []reply { return []reply{{status: 403, header: http.Header{"Retry-After": {"1"}}}} },
			wantAttempts: 1,
			wantErr:      "throttled",
		},
		{
			name:         "404 is not retried",
			replies:      func() []reply { return []reply{{status: 404}} },
			wantAttempts: 1,
			wantErr:      "permission",
		},
		{
			name: "429 with Retry-After in seconds waits exactly that long",
			replies: func() []reply {
				return []reply{{status: 429, header: http.Header{"Retry-After": {"7"}}}, {status: 200}}
			},
			wantAttempts: 2,
			wantErr:      "nil",
			wantGaps:     []time.Duration{7 * time.Second},
		},
		{
			name: "Retry-After as an HTTP date is honored",
			replies: func() []reply {
				at := time.Now().Add(12 * time.Second).UTC().Format(http.TimeFormat)
				return []reply{{status: 503, header: http.Header{"Retry-After": {at}}}, {status: 200}}
			},
			wantAttempts: 2,
			wantErr:      "nil",
			wantGaps:     []time.Duration{12 * time.Second},
		},
		{
			name:         "a network error is retried",
			replies:      func() []reply { return []reply{{err: errors.New("connection reset by peer")}, {status: 200}} },
			wantAttempts: 2,
			wantErr:      "nil",
			gapBounds:    [][2]time.Duration{{500 * time.Millisecond, time.Second}},
		},
		{
			name:         "the last error is returned after MaxAttempts attempts",
			replies:      func() []reply { return []reply{{status: 502}} },
			wantAttempts: 4,
			wantErr:      "unavailable",
			gapBounds:    [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}, {2 * time.Second, 4 * time.Second}},
		},
		{
			name:         "MaxAttempts 1 disables retries",
			replies:      func() []reply { return []reply{{status: 503}} },
			config:       func(w *notify.Webhook) { w.MaxAttempts = 1 },
			wantAttempts: 1,
			wantErr:      "unavailable",
		},
		{
			name:         "waits are capped at MaxBackoff",
			replies:      func() []reply { return []reply{{status: 503}, {status: 503}, {status: 200}} },
			config:       func(w *notify.Webhook) { w.MinBackoff, w.MaxBackoff = 4*time.Second, 5*time.Second },
			wantAttempts: 3,
			wantErr:      "nil",
			gapBounds:    [][2]time.Duration{{2 * time.Second, 4 * time.Second}, {2500 * time.Millisecond, 5 * time.Second}},
		},
		{
			name:         "a Retry-After past the deadline ends at once",
			replies:      func() []reply { return []reply{{status: 429, header: http.Header{"Retry-After": {"20"}}}} },
			timeout:      5 * time.Second,
			wantAttempts: 1,
			wantErr:      "throttled",
		},
		{
			name:         "a backoff past the deadline ends at once",
			replies:      func() []reply { return []reply{{status: 503}} },
			config:       func(w *notify.Webhook) { w.MinBackoff = 10 * time.Second },
			timeout:      3 * time.Second,
			wantAttempts: 1,
			wantErr:      "unavailable",
		},
		{
			name:         "a Retry-After above MaxBackoff ends the retries",
			replies:      func() []reply { return []reply{{status: 503, header: http.Header{"Retry-After": {"120"}}}} },
			wantAttempts: 1,
			wantErr:      "unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := &transport{replies: tt.replies()}
				w := notify.Webhook{URL: "https://hooks.example.com/in", Secret: secret, Client: tr.client()}
				if tt.config != nil {
					tt.config(&w)
				}
				ctx := context.Background()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				start := time.Now()
				err := w.Notify(ctx, failed)
				if diff := cmp.Diff(tt.wantErr, category(err)); diff != "" {
					t.Errorf("category of %v (-want +got):\n%s", err, diff)
				}
				got := tr.attempts()
				if diff := cmp.Diff(tt.wantAttempts, len(got)); diff != "" {
					t.Fatalf("attempts (-want +got):\n%s", diff)
				}
				if tt.timeout > 0 {
					if diff := cmp.Diff(time.Duration(0), time.Since(start)); diff != "" {
						t.Errorf("time spent (-want +got):\n%s", diff)
					}
				}
				var gaps []time.Duration
				for i, a := range got {
					if i > 0 {
						gaps = append(gaps, a.at.Sub(got[i-1].at))
					}
					if diff := cmp.Diff(got[0].header.Get(notify.HeaderDelivery), a.header.Get(notify.HeaderDelivery)); diff != "" {
						t.Errorf("attempt %d: delivery ID (-want +got):\n%s", i+1, diff)
					}
					if diff := cmp.Diff(strconv.FormatInt(a.at.Unix(), 10), a.header.Get(notify.HeaderTimestamp)); diff != "" {
						t.Errorf("attempt %d: timestamp is the attempt's time (-want +got):\n%s", i+1, diff)
					}
					if err := notify.VerifySignature(secret, a.header.Get(notify.HeaderSignature), a.header.Get(notify.HeaderTimestamp), a.body); err != nil {
						t.Errorf("attempt %d: %v", i+1, err)
					}
				}
				if tt.wantGaps != nil {
					if diff := cmp.Diff(tt.wantGaps, gaps); diff != "" {
						t.Errorf("waits between attempts (-want +got):\n%s", diff)
					}
				}
				for i, b := range tt.gapBounds {
					if gaps[i] < b[0] || gaps[i] > b[1] {
						t.Errorf("wait %d = %s, want within [%s, %s]", i+1, gaps[i], b[0], b[1])
					}
				}
			})
		})
	}
}

func TestWebhookConfiguration(t *testing.T) {
	tr := &transport{replies: []reply{{status: 200}}}
	tests := []struct {
		name string
		w    notify.Webhook
	}{
		{"a webhook without URL is invalid", notify.Webhook{Secret: secret, Client: tr.client()}},
		{"a relative URL is invalid", notify.Webhook{URL: "/hook", Secret: secret, Client: tr.client()}},
		{"a webhook without secret is invalid", notify.Webhook{URL: "https://hooks.example.com/in", Client: tr.client()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w.Notify(context.Background(), failed)
			if diff := cmp.Diff("invalid", category(err)); diff != "" {
				t.Errorf("category of %v (-want +got):\n%s", err, diff)
			}
		})
	}
	if diff := cmp.Diff(0, len(tr.attempts())); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
