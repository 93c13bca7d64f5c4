package providers

import (
	"context"
	"regexp"
	"strings"
	"unicode/utf8"
)

// NotifyLogAlert is the kind of a notification about an app's log lines
// (a crash loop, a panic) rather than about a deploy: Summary says what
// matched and how often, Reason holds the first matching line.
const NotifyLogAlert NotificationKind = "log-alert"

// Subscription forwards an app's log events, optionally filtered, to a
// destination that analyses or ships them: a Lambda function, a Kinesis
// data stream or a Firehose stream.
type Subscription struct {
	// Name identifies the subscription within its app: 1 to
	// MaxSubscriptionName characters, without ':' or '*'.
	Name string
	// Destination is the ARN of a Lambda function
	// (arn:aws:lambda:<region>:<account>:function:<name>), a Kinesis data
	// stream (arn:aws:kinesis:…:stream/<name>) or a Firehose stream
	// (arn:aws:firehose:…:deliverystream/<name>).
	Destination string
	// Pattern selects the events forwarded, in the backend's filter
	// pattern syntax; "" forwards every event. At most
	// MaxSubscriptionPattern bytes.
	Pattern string
	// RoleARN is the IAM role the backend assumes to write to a Kinesis or
	// Firehose destination. Empty asks the provider to create (or reuse)
	// one when it can; a Lambda destination takes none.
	RoleARN string
}

// Limits of a Subscription, those of CloudWatch Logs subscription filters.
const (
	MaxSubscriptionName    = 512
	MaxSubscriptionPattern = 1024
)

// Destination kinds, as DestinationKind returns them.
const (
	DestinationLambda   = "lambda"
	DestinationKinesis  = "kinesis"
	DestinationFirehose = "firehose"
)

var (
	destinationRE = regexp.MustCompile(`^arn:aws[a-z-]*:(lambda|kinesis|firehose):[a-z0-9-]+:[0-9]{12}:(function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?|stream/[A-Za-z0-9_.-]{1,128}|deliverystream/[A-Za-z0-9_.-]{1,64})$`)
	roleRE        = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`)
)

// DestinationKind returns DestinationLambda, DestinationKinesis or
// DestinationFirehose for a destination ARN, and "" for anything else.
func DestinationKind(arn string) string {
	m := destinationRE.FindStringSubmatch(arn)
	if m == nil {
		return ""
	}
	kind := m[1]
	switch {
	case kind == DestinationLambda && strings.HasPrefix(m[2], "function:"),
		kind == DestinationKinesis && strings.HasPrefix(m[2], "stream/"),
		kind == DestinationFirehose && strings.HasPrefix(m[2], "deliverystream/"):
		return kind
	}
	return ""
}

// Validate checks a subscription's fields against the limits above; the
// error matches ErrInvalid.
func (s Subscription) Validate() error {
	if s.Name == "" || utf8.RuneCountInString(s.Name) > MaxSubscriptionName || !utf8.ValidString(s.Name) || strings.ContainsAny(s.Name, ":*") {
		return Invalidf("subscription name %q must be 1 to %d characters without ':' or '*'", truncateName(s.Name), MaxSubscriptionName)
	}
	for _, r := range s.Name {
		if r < 0x20 || r == 0x7f {
			return Invalidf("subscription name %q contains a control character", truncateName(s.Name))
		}
	}
	kind := DestinationKind(s.Destination)
	if kind == "" {
		return Invalidf("subscription %q: destination %q is not the ARN of a Lambda function, Kinesis stream or Firehose stream", s.Name, truncateName(s.Destination))
	}
	if len(s.Pattern) > MaxSubscriptionPattern || !utf8.ValidString(s.Pattern) {
		return Invalidf("subscription %q: the filter pattern must be valid UTF-8 of at most %d bytes, got %d", s.Name, MaxSubscriptionPattern, len(s.Pattern))
	}
	if s.RoleARN != "" && !roleRE.MatchString(s.RoleARN) {
		return Invalidf("subscription %q: role %q is not an IAM role ARN", s.Name, truncateName(s.RoleARN))
	}
	if s.RoleARN != "" && kind == DestinationLambda {
		return Invalidf("subscription %q: a Lambda destination takes no role; grant the backend permission to invoke the function instead", s.Name)
	}
	return nil
}

// truncateName cuts a value quoted in an error to 100 bytes.
func truncateName(s string) string {
	if len(s) <= 100 {
		return s
	}
	return strings.ToValidUTF8(s[:100], "") + "…"
}

// LogSubscriber is implemented by log providers that forward an app's log
// events to other services. Deleting an app's logs (Logs.Delete) removes
// its subscriptions too.
type LogSubscriber interface {
	// Subscribe creates or replaces the app's subscription named s.Name
	// and returns it as stored (with the role the provider created, if
	// any). The app's log resources are created when missing. A backend
	// bounds the subscriptions of an app (two on CloudWatch Logs): one
	// more returns ErrConflict. s is validated (ErrInvalid) before any
	// call.
	Subscribe(ctx context.Context, app string, s Subscription) (Subscription, error)
	// Subscriptions lists the app's subscriptions by name; an app without
	// logs has none.
	Subscriptions(ctx context.Context, app string) ([]Subscription, error)
	// Unsubscribe removes the app's subscription named name; a missing one
	// is not an error.
	Unsubscribe(ctx context.Context, app, name string) error
}
