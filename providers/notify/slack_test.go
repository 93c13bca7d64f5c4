package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/notify"
)

// capture is an httptest server that records requests and answers with
// status (200 when zero) and body.
type capture struct {
	*httptest.Server
	status int
	body   string

	mu       sync.Mutex
	requests []captured
}

type captured struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

func newCapture(t *testing.T, status int, body string) *capture {
	c := &capture{status: status, body: body}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.requests = append(c.requests, captured{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: data})
		c.mu.Unlock()
		if c.status != 0 {
			w.WriteHeader(c.status)
		}
		io.WriteString(w, c.body)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *capture) got() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), c.requests...)
}

func TestSlackMessage(t *testing.T) {
	tests := []struct {
		name string
		n    providers.Notification
		want string
	}{
		{
			name: "a started deploy is blue and names the release it replaces",
			n:    providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2", Previous: "R1", Summary: "image web:v2, env FOO changed", Time: t0},
			want: `{"text": "web: deploying R2 (replacing R1)", "attachments": [{"fallback": "web: deploying R2 (replacing R1)", "color": "#439fe0", "blocks": [
				{"type": "section", "text": {"type": "mrkdwn", "text": "*web*: deploying \u0060R2\u0060 (replacing \u0060R1\u0060)"}},
				{"type": "section", "fields": [
					{"type": "mrkdwn", "text": "*App*\nweb"},
					{"type": "mrkdwn", "text": "*Outcome*\nstarted"},
					{"type": "mrkdwn", "text": "*Release*\nR2"},
					{"type": "mrkdwn", "text": "*Previous release*\nR1"}]},
				{"type": "section", "text": {"type": "mrkdwn", "text": "*Summary*\nimage web:v2, env FOO changed"}},
				{"type": "context", "elements": [{"type": "mrkdwn", "text": "2025-01-02 03:04:05 UTC"}]}]}]}`,
		},
		{
			name: "a first deploy has no previous release, summary or time",
			n:    providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R1"},
			want: `{"text": "web: deploying R1", "attachments": [{"fallback": "web: deploying R1", "color": "#439fe0", "blocks": [
				{"type": "section", "text": {"type": "mrkdwn", "text": "*web*: deploying \u0060R1\u0060"}},
				{"type": "section", "fields": [
					{"type": "mrkdwn", "text": "*App*\nweb"},
					{"type": "mrkdwn", "text": "*Outcome*\nstarted"},
					{"type": "mrkdwn", "text": "*Release*\nR1"}]}]}]}`,
		},
		{
			name: "a success is green",
			n:    providers.Notification{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R2", Previous: "R1", Summary: "R2 is active and healthy", Time: t0},
			want: `{"text": "web: R2 deployed", "attachments": [{"fallback": "web: R2 deployed", "color": "#2eb886", "blocks": [
				{"type": "section", "text": {"type": "mrkdwn", "text": "*web*: \u0060R2\u0060 deployed"}},
				{"type": "section", "fields": [
					{"type": "mrkdwn", "text": "*App*\nweb"},
					{"type": "mrkdwn", "text": "*Outcome*\nsucceeded"},
					{"type": "mrkdwn", "text": "*Release*\nR2"},
					{"type": "mrkdwn", "text": "*Previous release*\nR1"}]},
				{"type": "section", "text": {"type": "mrkdwn", "text": "*Summary*\nR2 is active and healthy"}},
				{"type": "context", "elements": [{"type": "mrkdwn", "text": "2025-01-02 03:04:05 UTC"}]}]}]}`,
		},
		{
			name: "a rolled-back failure is red, says where it went back to and gives the reason",
			n:    failed,
			want: `{"text": "web: deploy of R2 failed; rolled back to R1", "attachments": [{"fallback": "web: deploy of R2 failed; rolled back to R1", "color": "#a30200", "blocks": [
				{"type": "section", "text": {"type": "mrkdwn", "text": "*web*: deploy of \u0060R2\u0060 failed; rolled back to \u0060R1\u0060"}},
				{"type": "section", "fields": [
					{"type": "mrkdwn", "text": "*App*\nweb"},
					{"type": "mrkdwn", "text": "*Outcome*\nfailed"},
					{"type": "mrkdwn", "text": "*Release*\nR2"},
					{"type": "mrkdwn", "text": "*Previous release*\nR1"},
					{"type": "mrkdwn", "text": "*Rolled back*\nyes"}]},
				{"type": "section", "text": {"type": "mrkdwn", "text": "*Summary*\ndeploy of R2 failed at wait"}},
				{"type": "section", "text": {"type": "mrkdwn", "text": "*Reason*\nexit status 2"}},
				{"type": "context", "elements": [{"type": "mrkdwn", "text": "2025-01-02 03:04:05 UTC"}]}]}]}`,
		},
		{
			name: "a failure that was not rolled back says so",
			n:    providers.Notification{Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Previous: "R1", Reason: "compensation failed"},
			want: `{"text": "web: deploy of R2 failed; not rolled back", "attachments": [{"fallback": "web: deploy of R2 failed; not rolled back", "color": "#a30200", "blocks": [
				{"type": "section", "text": {"type": "mrkdwn", "text": "*web*: deploy of \u0060R2\u0060 failed; not rolled back"}},
				{"type": "section", "fields": [
					{"type": "mrkdwn", "text": "*App*\nweb"},
					{"type": "mrkdwn", "text": "*Outcome*\nfailed"},
					{"type": "mrkdwn", "text": "*Release*\nR2"},
					{"type": "mrkdwn", "text": "*Previous release*\nR1"},
					{"type": "mrkdwn", "text": "*Rolled back*\nno"}]},
				{"type": "section", "text": {"type": "mrkdwn", "text": "*Reason*\ncompensation failed"}}]}]}`,
		},
		{
			name: "a rolled-back first deploy has nowhere to name",
			n:    providers.Notification{Kind: providers.NotifyDeployFailed, App: "web", Release: "R1", RolledBack: true},
			want: `{"text": "web: deploy of R1 failed; rolled back", "attachments": [{"fallback": "web: deploy of R1 failed; rolled back", "color": "#a30200", "blocks": [
				{"type": "section", "text": {"type": "mrkdwn", "text": "*web*: deploy of \u0060R1\u0060 failed; rolled back"}},
				{"type": "section", "fields": [
					{"type": "mrkdwn", "text": "*App*\nweb"},
					{"type": "mrkdwn", "text": "*Outcome*\nfailed"},
					{"type": "mrkdwn", "text": "*Release*\nR1"},
					{"type": "mrkdwn", "text": "*Rolled back*\nyes"}]}]}]}`,
		},
		{
			name: "a rollback is amber and names both releases",
			n:    providers.Notification{Kind: providers.NotifyRollback, App: "web", Release: "R1", Previous: "R2"},
			want: `{"text": "web: rolled back to R1 from R2", "attachments": [{"fallback": "web: rolled back to R1 from R2", "color": "#daa038", "blocks": [
				{"type": "section", "text": {"type": "mrkdwn", "text": "*web*: rolled back to \u0060R1\u0060 from \u0060R2\u0060"}},
				{"type": "section", "fields": [
					{"type": "mrkdwn", "text": "*App*\nweb"},
					{"type": "mrkdwn", "text": "*Outcome*\nrollback"},
					{"type": "mrkdwn", "text": "*Release*\nR1"},
					{"type": "mrkdwn", "text": "*Previous release*\nR2"}]}]}]}`,
		},
		{
			name: "mrkdwn control characters in the notification are escaped",
			n:    providers.Notification{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R2", Summary: "a <b> & c", Reason: "<!channel>"},
			want: `{"text": "web: R2 deployed", "attachments": [{"fallback": "web: R2 deployed", "color": "#2eb886", "blocks": [
				{"type": "section", "text": {"type": "mrkdwn", "text": "*web*: \u0060R2\u0060 deployed"}},
				{"type": "section", "fields": [
					{"type": "mrkdwn", "text": "*App*\nweb"},
					{"type": "mrkdwn", "text": "*Outcome*\nsucceeded"},
					{"type": "mrkdwn", "text": "*Release*\nR2"}]},
				{"type": "section", "text": {"type": "mrkdwn", "text": "*Summary*\na &lt;b&gt; &amp; c"}},
				{"type": "section", "text": {"type": "mrkdwn", "text": "*Reason*\n&lt;!channel&gt;"}}]}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newCapture(t, http.StatusOK, "ok")
			s := notify.Slack{WebhookURL: srv.URL + "/services/T0/B0/secret"}
			if err := s.Notify(context.Background(), tt.n); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			got := srv.got()
			if len(got) != 1 {
				t.Fatalf("got %d requests, want 1", len(got))
			}
			req := got[0]
			if diff := cmp.Diff(captured{Method: "POST", Path: "/services/T0/B0/secret"}, captured{Method: req.Method, Path: req.Path}); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("application/json", req.Header.Get("Content-Type")); diff != "" {
				t.Errorf("Content-Type (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(decode(t, []byte(tt.want)), decode(t, req.Body)); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSlackLongTextIsCutToSlackLimits(t *testing.T) {
	srv := newCapture(t, http.StatusOK, "ok")
	long := make([]byte, 5000)
	for i := range long {
		long[i] = '&'
	}
	n := providers.Notification{Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Reason: string(long)}
	if err := (notify.Slack{WebhookURL: srv.URL}).Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Attachments []struct {
			Blocks []struct {
				Text *struct{ Text string }
			}
		}
	}
	body := srv.got()[0].Body
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatal(err)
	}
	reason := msg.Attachments[0].Blocks[2].Text.Text
	// "*Reason*\n" (9 characters), then whole "&amp;" escapes, then "…",
	// within Slack's 3000-character limit on section text.
	want := "*Reason*\n" + strings.Repeat("&amp;", (3000-9-1)/5) + "…"
	if diff := cmp.Diff(want, reason); diff != "" {
		t.Errorf("reason text (-want +got):\n%s", diff)
	}
}
