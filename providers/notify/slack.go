package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/convox-go/convox/providers"
)

// Slack posts notifications to a Slack incoming webhook.
//
// Each notification becomes one message: a plain-text line (shown in
// Slack's notifications) and an attachment colored by outcome — blue when
// a deploy started, green when it succeeded, red when it failed, amber for
// a rollback — holding the headline, the app, outcome, release, previous
// release, whether a failed deploy was rolled back, the summary, the
// reason and the time. Text from the notification is escaped for Slack's
// mrkdwn and cut to Slack's block limits.
//
// Notify makes one attempt: Slack does not deduplicate messages, so a
// retry could post twice. A response outside 2xx is an error that wraps an
// *HTTPError and the matching sentinel (see HTTPError); Slack's short
// error code ("invalid_payload", "no_service", ...) is its Message.
// Redirects are not followed.
//
// The webhook URL is a secret: String, every fmt verb and every returned
// error show only its scheme and host. The zero value is not usable; set
// WebhookURL. A Slack is safe for concurrent use.
type Slack struct {
	// WebhookURL is the incoming webhook's URL
	// ("https://hooks.slack.com/services/T…/B…/…").
	WebhookURL string
	// Client sends the requests; nil means a client like
	// http.DefaultClient. Its CheckRedirect is ignored.
	Client *http.Client
}

var _ providers.Notifier = Slack{}

// Notify implements providers.Notifier: it posts one message for n,
// bounded by ctx.
func (s Slack) Notify(ctx context.Context, n providers.Notification) error {
	u, err := parseEndpoint(s.WebhookURL)
	if err != nil {
		return fmt.Errorf("slack: WebhookURL: %w: %w", providers.ErrInvalid, err)
	}
	body, err := json.Marshal(slackMessageFor(n))
	if err != nil {
		return fmt.Errorf("slack: encode message: %w: %w", providers.ErrInvalid, err)
	}
	x := exchange{
		client:    noRedirects(s.Client),
		method:    http.MethodPost,
		url:       u,
		printable: redactURL(s.WebhookURL),
		header:    http.Header{"Content-Type": {"application/json"}},
		body:      body,
		secrets:   []string{s.WebhookURL, u.Path, u.RawQuery},
	}
	if _, err := x.do(ctx); err != nil {
		return fmt.Errorf("slack: post %s of %s: %w", n.Kind, target(n), err)
	}
	return nil
}

// String describes the notifier with the webhook URL's path redacted.
func (s Slack) String() string {
	return fmt.Sprintf("notify.Slack{WebhookURL:%s}", redactURL(s.WebhookURL))
}

// Format implements fmt.Formatter so that every verb prints String.
func (s Slack) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.String()) }

// Slack's limits on block text, in characters.
const (
	slackSectionMax = 3000
	slackFieldMax   = 2000
)

// maxName bounds each name (app, release) in a headline, keeping the
// headline far below Slack's limits.
const maxName = 200

// Attachment colors by outcome.
const (
	colorStarted   = "#439fe0"
	colorSucceeded = "#2eb886"
	colorFailed    = "#a30200"
	colorRollback  = "#daa038"
	colorOther     = "#808080"
)

// slackMessage is the JSON payload of an incoming webhook.
type slackMessage struct {
	Text        string            `json:"text"`
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	// Fallback is the plain headline, for clients that show no blocks
	// (Mattermost's documentation requires it).
	Fallback string       `json:"fallback"`
	Color    string       `json:"color"`
	Blocks   []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func mrkdwn(s string) slackText { return slackText{Type: "mrkdwn", Text: s} }

// outcome returns the one-word outcome of a notification and its color.
func outcome(k providers.NotificationKind) (string, string) {
	switch k {
	case providers.NotifyDeployStarted:
		return "started", colorStarted
	case providers.NotifyDeploySucceeded:
		return "succeeded", colorSucceeded
	case providers.NotifyDeployFailed:
		return "failed", colorFailed
	case providers.NotifyRollback:
		return "rollback", colorRollback
	case providers.NotifyLogAlert:
		return "log alert", colorFailed
	default:
		return string(k), colorOther
	}
}

// headline is the one-line description of n: plain text, or Slack mrkdwn
// with the app in bold and releases as code.
func headline(n providers.Notification, md bool) string {
	app, rel, prev := truncate(n.App, maxName), truncate(n.Release, maxName), truncate(n.Previous, maxName)
	if md {
		app, rel, prev = "*"+slackField(n.App, maxName)+"*", "`"+slackField(n.Release, maxName)+"`", "`"+slackField(n.Previous, maxName)+"`"
	}
	switch n.Kind {
	case providers.NotifyDeployStarted:
		s := app + ": deploying " + rel
		if n.Previous != "" {
			s += " (replacing " + prev + ")"
		}
		return s
	case providers.NotifyDeploySucceeded:
		return app + ": " + rel + " deployed"
	case providers.NotifyDeployFailed:
		s := app + ": deploy of " + rel + " failed"
		switch {
		case n.RolledBack && n.Previous != "":
			s += "; rolled back to " + prev
		case n.RolledBack:
			s += "; rolled back"
		default:
			s += "; not rolled back"
		}
		return s
	case providers.NotifyRollback:
		s := app + ": rolled back to " + rel
		if n.Previous != "" {
			s += " from " + prev
		}
		return s
	case providers.NotifyLogAlert:
		s := app + ": log alert"
		if n.Release != "" {
			s += " in " + rel
		}
		return s
	default:
		word, _ := outcome(n.Kind)
		word = truncate(word, maxName)
		if md {
			word = slackField(string(n.Kind), maxName)
		}
		return app + ": " + rel + " " + word
	}
}

// slackMessageFor builds the message for n.
func slackMessageFor(n providers.Notification) slackMessage {
	word, color := outcome(n.Kind)
	fields := []slackText{
		labeled("App", n.App, slackFieldMax),
		labeled("Outcome", word, slackFieldMax),
		labeled("Release", n.Release, slackFieldMax),
	}
	if n.Previous != "" {
		fields = append(fields, labeled("Previous release", n.Previous, slackFieldMax))
	}
	if n.Kind == providers.NotifyDeployFailed {
		rb := "no"
		if n.RolledBack {
			rb = "yes"
		}
		fields = append(fields, mrkdwn("*Rolled back*\n"+rb))
	}
	blocks := []slackBlock{
		{Type: "section", Text: &slackText{Type: "mrkdwn", Text: headline(n, true)}},
		{Type: "section", Fields: fields},
	}
	if n.Summary != "" {
		t := labeled("Summary", n.Summary, slackSectionMax)
		blocks = append(blocks, slackBlock{Type: "section", Text: &t})
	}
	if n.Reason != "" {
		t := labeled("Reason", n.Reason, slackSectionMax)
		blocks = append(blocks, slackBlock{Type: "section", Text: &t})
	}
	if !n.Time.IsZero() {
		blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{mrkdwn(n.Time.UTC().Format(time.DateTime) + " UTC")}})
	}
	return slackMessage{
		Text:        headline(n, false),
		Attachments: []slackAttachment{{Fallback: headline(n, false), Color: color, Blocks: blocks}},
	}
}

// labeled returns mrkdwn text of a bold label and a value on the next
// line, at most max characters in all.
func labeled(label, value string, max int) slackText {
	head := "*" + label + "*\n"
	return mrkdwn(head + slackField(value, max-utf8.RuneCountInString(head)))
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackField escapes s for mrkdwn and cuts it so that the escaped text
// is at most n characters, ending with "…" when it cut; it never splits an
// escape sequence.
func slackField(s string, n int) string {
	e := slackEscape(s)
	if utf8.RuneCountInString(e) <= n {
		return e
	}
	var b strings.Builder
	count := 0
	for _, r := range s {
		piece := slackEscape(string(r))
		l := utf8.RuneCountInString(piece)
		if count+l > n-1 {
			break
		}
		b.WriteString(piece)
		count += l
	}
	b.WriteString("…")
	return b.String()
}
