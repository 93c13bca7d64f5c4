package notify_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/notify"
)

// notifiers returns one notifier of each kind whose every request goes to
// base (a server URL) with client, configured so that one notification is
// one request: the webhook does not retry and the GitHub notifier updates
// deployment 7.
func notifiers(base string, client *http.Client) []struct {
	name string
	n    providers.Notifier
} {
	return []struct {
		name string
		n    providers.Notifier
	}{
		{"slack", notify.Slack{WebhookURL: base + "/services/T0/B0/slack-secret-path", Client: client}},
		{"webhook", notify.Webhook{URL: base + "/hooks/webhook-secret-path", Secret: []byte("hmac-secret-value"), Client: client, MaxAttempts: 1}},
		{"github", notify.GitHub{
			Owner: "acme", Repo: "web", Token: "ghp_secret_token_value", BaseURL: base, Client: client,
			DeploymentID: func(providers.Notification) (int64, bool) { return 7, true },
		}},
	}
}

// secrets are the secret values of the notifiers of notifiers.
var secrets = []string{"slack-secret-path", "webhook-secret-path", "hmac-secret-value", "ghp_secret_token_value"}

func TestStatusCategories(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   string
		// wantErr is the *HTTPError the error wraps.
		wantErr *notify.HTTPError
	}{
		{name: "2xx is success", status: http.StatusNoContent, want: "nil"},
		{name: "400 is invalid", status: 400, body: "invalid_payload", want: "invalid", wantErr: &notify.HTTPError{StatusCode: 400, Message: "invalid_payload"}},
		{name: "401 is permission", status: 401, body: `{"message": "Bad credentials"}`, want: "permission", wantErr: &notify.HTTPError{StatusCode: 401, Message: "Bad credentials"}},
		{name: "403 is permission", status: 403, body: "invalid_token", want: "permission", wantErr: &notify.HTTPError{StatusCode: 403, Message: "invalid_token"}},
		{name: "403 with an exhausted rate limit is throttled", status: 403, header: http.Header{"X-Ratelimit-Remaining": {"0"}}, body: `{"message": "API rate limit exceeded"}`, want: "throttled", wantErr: &notify.HTTPError{StatusCode: 403, Message: "API rate limit exceeded"}},
		{name: "404 is permission", status: 404, body: "no_service", want: "permission", wantErr: &notify.HTTPError{StatusCode: 404, Message: "no_service"}},
		{name: "409 is conflict", status: 409, want: "conflict", wantErr: &notify.HTTPError{StatusCode: 409}},
		{name: "410 is invalid", status: 410, body: "channel_is_archived", want: "invalid", wantErr: &notify.HTTPError{StatusCode: 410, Message: "channel_is_archived"}},
		{name: "422 is invalid with GitHub's message", status: 422, body: `{"message": "Validation Failed", "errors": [{"field": "state"}]}`, want: "invalid", wantErr: &notify.HTTPError{StatusCode: 422, Message: "Validation Failed"}},
		{name: "429 is throttled with its Retry-After", status: 429, header: http.Header{"Retry-After": {"30"}}, body: "rate_limited", want: "throttled", wantErr: &notify.HTTPError{StatusCode: 429, Message: "rate_limited", RetryAfter: 30 * time.Second}},
		{name: "500 is unavailable", status: 500, body: "rollup_error", want: "unavailable", wantErr: &notify.HTTPError{StatusCode: 500, Message: "rollup_error"}},
		{name: "503 is unavailable", status: 503, want: "unavailable", wantErr: &notify.HTTPError{StatusCode: 503}},
		{name: "a redirect is not followed and is invalid", status: 302, header: http.Header{"Location": {"/elsewhere"}}, want: "invalid", wantErr: &notify.HTTPError{StatusCode: 302}},
		{name: "a multi-line body becomes one line", status: 400, body: "bad\n\tthing\r\n", want: "invalid", wantErr: &notify.HTTPError{StatusCode: 400, Message: "bad thing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &transport{replies: []reply{{status: tt.status, header: tt.header, body: tt.body}}}
			for _, nt := range notifiers("https://example.com", tr.client()) {
				if nt.name == "github" && tt.status == 302 {
					continue // GitHub's client follows redirects (see TestGitHub)
				}
				t.Run(nt.name, func(t *testing.T) {
					before := len(tr.attempts())
					err := nt.n.Notify(context.Background(), failed)
					if diff := cmp.Diff(tt.want, category(err)); diff != "" {
						t.Errorf("category of %v (-want +got):\n%s", err, diff)
					}
					var herr *notify.HTTPError
					if !errors.As(err, &herr) {
						herr = nil
					}
					if diff := cmp.Diff(tt.wantErr, herr); diff != "" {
						t.Errorf("HTTPError (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(1, len(tr.attempts())-before); diff != "" {
						t.Errorf("requests (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	t.Run("a server slower than the deadline ends the call at the deadline with the context's error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := &transport{replies: []reply{{hang: true}}}
			for _, nt := range notifiers("https://example.com", tr.client()) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				start := time.Now()
				err := nt.n.Notify(ctx, failed)
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) || providers.IsTemporary(err) {
					t.Errorf("%s: Notify = %v, want only context.DeadlineExceeded", nt.name, err)
				}
				if diff := cmp.Diff(10*time.Second, time.Since(start)); diff != "" {
					t.Errorf("%s: returned after (-want +got):\n%s", nt.name, diff)
				}
			}
		})
	})
	t.Run("a real server slower than the deadline returns the context's error", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		for _, nt := range notifiers(srv.URL, srv.Client()) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			err := nt.n.Notify(ctx, failed)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || providers.IsTemporary(err) {
				t.Errorf("%s: Notify = %v, want only context.DeadlineExceeded", nt.name, err)
			}
		}
	})
	t.Run("a canceled context is returned as context.Canceled", func(t *testing.T) {
		srv := newCapture(t, http.StatusOK, "")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, nt := range notifiers(srv.URL, srv.Client()) {
			if err := nt.n.Notify(ctx, failed); !errors.Is(err, context.Canceled) || providers.IsTemporary(err) {
				t.Errorf("%s: Notify = %v, want only context.Canceled", nt.name, err)
			}
		}
	})
}

// leaks returns the secrets s contains.
func leaks(s string) []string {
	var found []string
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			found = append(found, secret)
		}
	}
	return found
}

func TestStringRedactsSecrets(t *testing.T) {
	for _, nt := range notifiers("https://user:password-1@hooks.example.com", nil) {
		want := map[string]string{
			"slack":   "notify.Slack{WebhookURL:https://hooks.example.com/<redacted>}",
			"webhook": "notify.Webhook{URL:https://hooks.example.com/<redacted> Secret:<redacted> MaxAttempts:1 MinBackoff:0s MaxBackoff:0s}",
			"github":  "notify.GitHub{Owner:acme Repo:web BaseURL:https://hooks.example.com Environment: Token:<redacted>}",
		}[nt.name]
		for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			for _, v := range []any{nt.n, &nt.n, []any{nt.n}, struct{ N providers.Notifier }{nt.n}} {
				got := fmt.Sprintf(format, v)
				if l := leaks(got); l != nil || strings.Contains(got, "password-1") {
					t.Errorf("%s: Sprintf(%q) = %s: leaks %q", nt.name, format, got, l)
				}
			}
		}
		if diff := cmp.Diff(want, fmt.Sprint(nt.n)); diff != "" {
			t.Errorf("%s: String (-want +got):\n%s", nt.name, diff)
		}
	}
}

func TestErrorsRedactSecrets(t *testing.T) {
	// echo answers with everything it received, as a careless endpoint might.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "%s %s %v %s", r.Method, r.URL, r.Header, body)
	}))
	t.Cleanup(echo.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name string
		base string
		want string
	}{
		{"an endpoint echoing the request", echo.URL, "invalid"},
		{"an unreachable endpoint", closed.URL, "unavailable"},
		{"an unparsable URL", "https://hooks.example.com/%zz", "invalid"},
		{"a URL that is not http", "ftp://hooks.example.com", "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, nt := range notifiers(tt.base, nil) {
				err := nt.n.Notify(context.Background(), failed)
				if diff := cmp.Diff(tt.want, category(err)); diff != "" {
					t.Errorf("%s: category of %v (-want +got):\n%s", nt.name, err, diff)
				}
				for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
					if l := leaks(fmt.Sprintf(format, err)); l != nil {
						t.Errorf("%s: Sprintf(%q, err) = %s: leaks %q", nt.name, format, err, l)
					}
				}
				var ue *url.Error
				if errors.As(err, &ue) {
					if l := leaks(ue.URL); l != nil {
						t.Errorf("%s: url.Error.URL = %s: leaks %q", nt.name, ue.URL, l)
					}
				}
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		requests.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	const calls = 16
	nts := notifiers(srv.URL, srv.Client())
	var wg sync.WaitGroup
	errs := make(chan error, calls*len(nts))
	for _, nt := range nts {
		for range calls {
			wg.Go(func() { errs <- nt.n.Notify(context.Background(), failed) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if diff := cmp.Diff(int64(calls*len(nts)), requests.Load()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
