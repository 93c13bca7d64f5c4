package notify_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/notify"
)

// chatServer is an incoming webhook of a Slack-compatible chat server that
// checks posts the way its documentation describes, and records the text
// it would show.
type chatServer struct {
	*httptest.Server
	mu    sync.Mutex
	shown []string
}

// chatPost is the part of an incoming webhook's JSON that Mattermost and
// Rocket.Chat read (both ignore Slack's Block Kit "blocks").
type chatPost struct {
	Text        *string `json:"text"`
	Attachments []struct {
		Fallback *string `json:"fallback"`
		Color    string  `json:"color"`
		Text     string  `json:"text"`
	} `json:"attachments"`
}

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// newMattermost follows Mattermost's incoming webhook documentation
// (developers.mattermost.com, "Incoming webhooks" and "Message
// attachments"): a JSON body; "text" (Markdown) is required unless
// attachments are given; a post holds at most 16383 characters (longer
// text is split into several posts, which a notification must not need);
// each attachment's "fallback" is required and "color" is a hex code. It
// answers 200 "ok", and 400 with a JSON error whose "id" names the check.
func newMattermost(t *testing.T) *chatServer {
	c := &chatServer{}
	fail := func(w http.ResponseWriter, id, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"id": id, "message": msg, "status_code": 400})
	}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p chatPost
		body, _ := io.ReadAll(r.Body)
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &p) != nil {
			fail(w, "web.incoming_webhook.parse.app_error", "Unable to parse incoming data")
			return
		}
		if (p.Text == nil || *p.Text == "") && len(p.Attachments) == 0 {
			fail(w, "web.incoming_webhook.text.app_error", "No text specified")
			return
		}
		if p.Text != nil && utf8.RuneCountInString(*p.Text) > 16383 {
			fail(w, "test.split", "the text would be split into several posts")
			return
		}
		for _, a := range p.Attachments {
			if a.Fallback == nil || *a.Fallback == "" || (a.Color != "" && !hexColor.MatchString(a.Color)) {
				fail(w, "test.attachment", "an attachment lacks a fallback or has a color that is not a hex code")
				return
			}
		}
		c.mu.Lock()
		c.shown = append(c.shown, *p.Text)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(c.Close)
	return c
}

// newRocketChat follows Rocket.Chat's incoming webhook documentation
// (docs.rocket.chat, "Integrations"): a JSON body whose "text" is the
// message, with Slack-style "attachments" (color, text, fields); a message
// holds at most Message_MaxAllowedSize characters, 5000 by default. It
// answers {"success":true}, or 400 {"success":false,"error":...}.
func newRocketChat(t *testing.T) *chatServer {
	c := &chatServer{}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p chatPost
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &p) != nil || p.Text == nil {
			reply(w, http.StatusBadRequest, map[string]any{"success": false, "error": "error-invalid-message"})
			return
		}
		if utf8.RuneCountInString(*p.Text) > 5000 {
			reply(w, http.StatusBadRequest, map[string]any{"success": false, "error": "error-message-size-exceeded"})
			return
		}
		for _, a := range p.Attachments {
			if a.Color != "" && !hexColor.MatchString(a.Color) {
				reply(w, http.StatusBadRequest, map[string]any{"success": false, "error": "error-invalid-attachment"})
				return
			}
		}
		c.mu.Lock()
		c.shown = append(c.shown, *p.Text)
		c.mu.Unlock()
		reply(w, http.StatusOK, map[string]any{"success": true})
	}))
	t.Cleanup(c.Close)
	return c
}

// TestSlackPayloadOnSlackCompatibleChat posts every kind of notification,
// with the longest names and texts, to Mattermost's and Rocket.Chat's
// incoming webhooks: each is accepted in one post, and the text those
// servers show (they do not render Slack's blocks) names the app, the
// outcome and the releases.
func TestSlackPayloadOnSlackCompatibleChat(t *testing.T) {
	long := strings.Repeat("x", 10000)
	app := strings.Repeat("a", 300)
	tests := []struct {
		name string
		n    providers.Notification
		want string
	}{
		{"a started deploy", providers.Notification{Kind: providers.NotifyDeployStarted, App: "web", Release: "R2", Previous: "R1", Summary: long}, "web: deploying R2 (replacing R1)"},
		{"a succeeded deploy", providers.Notification{Kind: providers.NotifyDeploySucceeded, App: "web", Release: "R2"}, "web: R2 deployed"},
		{"a failed deploy", providers.Notification{Kind: providers.NotifyDeployFailed, App: "web", Release: "R2", Previous: "R1", RolledBack: true, Reason: long}, "web: deploy of R2 failed; rolled back to R1"},
		{"a rollback", providers.Notification{Kind: providers.NotifyRollback, App: "web", Release: "R1", Previous: "R2"}, "web: rolled back to R1 from R2"},
		{"a log alert", providers.Notification{Kind: providers.NotifyLogAlert, App: "web", Release: "R2", Summary: "panic: 3 matching lines in worker", Reason: long}, "web: log alert in R2"},
		{"the longest names", providers.Notification{Kind: providers.NotifyDeployStarted, App: app, Release: app, Previous: app, Summary: long, Reason: long},
			strings.Repeat("a", 199) + "…: deploying " + strings.Repeat("a", 199) + "… (replacing " + strings.Repeat("a", 199) + "…)"},
	}
	for _, server := range []struct {
		name string
		new  func(*testing.T) *chatServer
	}{{"mattermost", newMattermost}, {"rocketchat", newRocketChat}} {
		t.Run(server.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					c := server.new(t)
					if err := (notify.Slack{WebhookURL: c.URL + "/hooks/abc123"}).Notify(t.Context(), tt.n); err != nil {
						t.Fatalf("Notify: %v", err)
					}
					if diff := gocmp.Diff([]string{tt.want}, c.shown); diff != "" {
						t.Errorf("shown text (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

// TestSlackReportsChatErrors checks that a refusal by a Slack-compatible
// server is an error carrying its message.
func TestSlackReportsChatErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"id":"web.incoming_webhook.parse.app_error","message":"Unable to parse incoming data","status_code":400}`)
	}))
	defer srv.Close()
	err := notify.Slack{WebhookURL: srv.URL + "/hooks/abc123"}.Notify(t.Context(), failed)
	if category(err) != "invalid" || !strings.Contains(err.Error(), "Unable to parse incoming data") || strings.Contains(err.Error(), "abc123") {
		t.Errorf("Notify = %v, want an invalid error with Mattermost's message and without the hook's key", err)
	}
}

// TestDeploymentNotifiersSkipLogAlerts checks that the notifiers that
// record deployments make no request for a log alert and report no error,
// so that a rack's notifiers can all receive the forwarder's alerts.
func TestDeploymentNotifiersSkipLogAlerts(t *testing.T) {
	alert := providers.Notification{Kind: providers.NotifyLogAlert, App: "web", Release: "R2", Summary: "panic: 3 matching lines in worker"}
	ref := func(providers.Notification) string { return "main" }
	commit := func(providers.Notification) (notify.GitLabCommit, bool) {
		return notify.GitLabCommit{SHA: shaR2, Ref: "main"}, true
	}
	for _, tt := range []struct {
		name string
		n    func(*http.Client) providers.Notifier
	}{
		{"github", func(c *http.Client) providers.Notifier {
			return notify.GitHub{Owner: "acme", Repo: "web", Token: "t0ken", Ref: ref, Client: c}
		}},
		{"gitlab", func(c *http.Client) providers.Notifier {
			return notify.GitLab{Project: "acme/web", Token: glToken, Commit: commit, Client: c}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &transport{replies: []reply{{status: http.StatusInternalServerError}}}
			if err := tt.n(tr.client()).Notify(t.Context(), alert); err != nil {
				t.Errorf("Notify = %v, want nil", err)
			}
			if n := len(tr.attempts()); n != 0 {
				t.Errorf("%d requests, want none", n)
			}
		})
	}
}
