// Package notify delivers deploy notifications to people and systems. It
// has four implementations of providers.Notifier:
//
//   - Slack posts a readable message to a Slack incoming webhook: the app,
//     the release and the previous one, the outcome (started, succeeded,
//     failed, rollback) as text and as the attachment's color, whether a
//     failed deploy was rolled back, the summary and the reason.
//   - Webhook POSTs a versioned JSON document (WebhookPayload) signed with
//     HMAC-SHA256 over a timestamp and the body, with a delivery ID that
//     stays the same across retries, retried with exponential backoff on
//     network errors, 429 and 5xx. Receivers check deliveries with
//     VerifySignature.
//   - GitHub records each deploy as a GitHub deployment of a repository
//     and sets its status (in_progress, success, failure, inactive).
//   - GitLab records each deploy as a deployment of a GitLab environment
//     (running, then success, failed or canceled) with the release's commit
//     SHA and ref, and sets a commit status on that commit.
//
// Add them to a rack; the convox client bounds each call with
// Options.NotifyTimeout and reports a failing notifier as an event without
// failing the deploy:
//
//	rack := convox.Rack{
//		// Registry, Scheduler, Balancer, Logs, Store ...
//		Notifiers: []providers.Notifier{
//			notify.Slack{WebhookURL: os.Getenv("SLACK_WEBHOOK_URL")},
//			notify.Webhook{URL: "https://deploys.example.com/hook", Secret: secret},
//			notify.GitHub{Owner: "acme", Repo: "web", Token: token, Environment: "production", Ref: refOf},
//			notify.GitLab{Project: "acme/web", Token: glToken, Environment: "production", Commit: commitOf},
//		},
//	}
//
// # Slack-compatible chat
//
// Mattermost and Rocket.Chat, which took HipChat's place, accept Slack's
// incoming webhook payload: point Slack.WebhookURL at their incoming
// webhook. Both show the message's "text" (the headline: app, outcome,
// releases) and the attachment's color, and both ignore Slack's Block Kit
// "blocks", so the summary, the reason and the time appear in Slack only;
// Mattermost also shows the attachment's "fallback" (the same headline)
// in notifications. The headline stays far below their limits (Mattermost
// splits posts over 16383 characters; Rocket.Chat refuses messages over
// its Message_MaxAllowedSize, 5000 by default): each name in it is cut to
// 200 characters. Microsoft Teams' incoming webhooks take Adaptive Cards
// instead, a different payload, and have no notifier here.
//
// # Log alerts
//
// A notification of kind providers.NotifyLogAlert (from package
// logforward) reports matching log lines: Slack shows it as a red "log
// alert" with the summary and the first line, Webhook delivers it like any
// kind, and GitHub and GitLab, which record deployments, skip it.
//
// # Errors
//
// Notify returns nil once the endpoint accepted the notification (a 2xx
// response). Otherwise its error follows the providers convention: a
// response outside 2xx wraps an *HTTPError and the sentinel matching the
// status (ErrThrottled for 429, ErrUnavailable for 5xx, ErrPermission for
// 401, 403 and 404, ErrInvalid for other 4xx, see HTTPError); an
// unreachable endpoint wraps ErrUnavailable; a canceled or expired context
// returns the context's error; a misconfigured notifier wraps ErrInvalid.
// providers.IsTemporary tells which failures are worth another try.
//
// # Secrets
//
// Webhook URLs (Slack's and others') carry tokens in their paths, and the
// HMAC secret and the GitHub token are credentials. None of them appears
// in the notifiers' String output, under any fmt verb, or in an error:
// URLs are shown as their scheme and host followed by "/<redacted>".
// Notifications themselves never hold secret values.
//
// All notifiers are plain values, hold no state between calls and are safe
// for concurrent use.
package notify
