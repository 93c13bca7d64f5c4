// Command handler is the log forwarder that examples/logforward deploys to
// AWS Lambda (runtime provided.al2023, where the binary is named
// bootstrap). It runs package logforward's handler with sinks chosen by
// environment variables:
//
//	LOGFORWARD_PATTERN          lines to keep and alert on (default "?panic ?FATAL")
//	LOGFORWARD_WEBHOOK_URL      alerts as signed webhook deliveries (notify.Webhook) ...
//	LOGFORWARD_WEBHOOK_SECRET   ... with this HMAC secret (required with the URL)
//	LOGFORWARD_SLACK_URL        alerts to a Slack, Mattermost or Rocket.Chat incoming webhook
//	LOGFORWARD_HTTP_URL         every kept line as JSON lines to a log service ...
//	LOGFORWARD_HTTP_AUTHORIZATION  ... with this Authorization header
//	LOGFORWARD_ALERT_WINDOW     one alert per rule, app and process in this window (default 15m)
//	LOGFORWARD_GROUP_PREFIX     the apps' log group prefix (default "/convox/")
//
// At least one sink must be configured; the program exits at start with
// a message otherwise, so a misconfigured function fails its first
// invocation visibly.
package main

import (
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/convox-go/convox/logforward"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/notify"
)

// DefaultPattern is the pattern when LOGFORWARD_PATTERN is unset.
const DefaultPattern = "?panic ?FATAL"

func main() {
	h, err := New(os.Getenv, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err != nil {
		log.Fatal(err)
	}
	lambda.Start(h)
}

// New builds the handler from the environment.
func New(getenv func(string) string, logger *slog.Logger) (*logforward.Handler, error) {
	pattern := getenv("LOGFORWARD_PATTERN")
	if pattern == "" {
		pattern = DefaultPattern
	}
	var notifiers []providers.Notifier
	if u := getenv("LOGFORWARD_WEBHOOK_URL"); u != "" {
		secret := getenv("LOGFORWARD_WEBHOOK_SECRET")
		if secret == "" {
			return nil, fmt.Errorf("LOGFORWARD_WEBHOOK_URL is set without LOGFORWARD_WEBHOOK_SECRET")
		}
		notifiers = append(notifiers, notify.Webhook{URL: u, Secret: []byte(secret)})
	}
	if u := getenv("LOGFORWARD_SLACK_URL"); u != "" {
		notifiers = append(notifiers, notify.Slack{WebhookURL: u})
	}
	window := time.Duration(0)
	if w := getenv("LOGFORWARD_ALERT_WINDOW"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("LOGFORWARD_ALERT_WINDOW %q is not a positive duration", w)
		}
		window = d
	}
	var sinks []logforward.Sink
	for _, n := range notifiers {
		a, err := logforward.NewAlerts(n, []logforward.Rule{{Name: "alert", Pattern: pattern}}, &logforward.AlertOptions{Window: window})
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, a)
	}
	if u := getenv("LOGFORWARD_HTTP_URL"); u != "" {
		s := logforward.HTTP{URL: u}
		if a := getenv("LOGFORWARD_HTTP_AUTHORIZATION"); a != "" {
			s.Header = http.Header{"Authorization": {a}}
		}
		sinks = append(sinks, s)
	}
	if len(sinks) == 0 {
		return nil, fmt.Errorf("no sink: set LOGFORWARD_WEBHOOK_URL, LOGFORWARD_SLACK_URL or LOGFORWARD_HTTP_URL")
	}
	return logforward.New(logforward.Options{Sinks: sinks, Pattern: pattern, GroupPrefix: getenv("LOGFORWARD_GROUP_PREFIX"), Logger: logger})
}
