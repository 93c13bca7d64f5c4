package convox

import (
	"context"
	"fmt"
	"iter"

	"github.com/convox-go/convox/providers"
)

// Subscribe creates or replaces the app's subscription named s.Name (a
// providers.Subscription forwards the app's log lines, optionally filtered
// by a pattern, to a Lambda function, a Kinesis stream or a Firehose
// stream; package logforward is a Lambda handler that reads what it
// delivers) and
// returns it as stored (with the role the logs backend created for a
// Kinesis or Firehose destination, when it created one). The app's logs
// backend must implement providers.LogSubscriber (cwlogs does); that, the
// subscription's fields and the app's existence are checked before any
// change. DeleteApp deletes the app's logs and with them its
// subscriptions.
//
//	sub, err := c.App("web").Subscribe(ctx, providers.Subscription{
//		Name:        "alerts",
//		Destination: "arn:aws:lambda:us-east-1:123456789012:function:logforward",
//		Pattern:     "?panic ?FATAL",
//	})
func (a *AppClient) Subscribe(ctx context.Context, s providers.Subscription) (providers.Subscription, error) {
	const op = "Subscribe"
	if err := s.Validate(); err != nil {
		return providers.Subscription{}, wrapErr(op, a.name, "", err)
	}
	sub, err := a.subscriber(ctx, true)
	if err != nil {
		return providers.Subscription{}, wrapErr(op, a.name, "", err)
	}
	out, err := sub.Subscribe(ctx, a.name, s)
	if err != nil {
		return providers.Subscription{}, wrapErr(op, a.name, "", err)
	}
	return out, nil
}

// Subscriptions yields the app's subscriptions by name, like every
// listing of the API; a failure is yielded last.
func (a *AppClient) Subscriptions(ctx context.Context) iter.Seq2[providers.Subscription, error] {
	return func(yield func(providers.Subscription, error) bool) {
		const op = "Subscriptions"
		sub, err := a.subscriber(ctx, false)
		if err != nil {
			yield(providers.Subscription{}, wrapErr(op, a.name, "", err))
			return
		}
		out, err := sub.Subscriptions(ctx, a.name)
		if err != nil {
			yield(providers.Subscription{}, wrapErr(op, a.name, "", err))
			return
		}
		for _, s := range out {
			if !yield(s, nil) {
				return
			}
		}
	}
}

// Unsubscribe removes the app's subscription named name; a missing one is
// not an error.
func (a *AppClient) Unsubscribe(ctx context.Context, name string) error {
	const op = "Unsubscribe"
	if name == "" {
		return wrapErr(op, a.name, "", providers.Invalidf("no subscription name"))
	}
	sub, err := a.subscriber(ctx, false)
	if err != nil {
		return wrapErr(op, a.name, "", err)
	}
	return wrapErr(op, a.name, "", sub.Unsubscribe(ctx, a.name, name))
}

// subscriber loads the app and returns its logs backend as a
// providers.LogSubscriber. forChange refuses an app being deleted.
func (a *AppClient) subscriber(ctx context.Context, forChange bool) (providers.LogSubscriber, error) {
	app, sel, err := a.load(ctx)
	if err != nil {
		return nil, err
	}
	if forChange && app.Deleting {
		return nil, fmt.Errorf("%w: app %q is being deleted", providers.ErrConflict, a.name)
	}
	if err := sel.check(CapLogSubscriber); err != nil {
		return nil, err
	}
	return sel.logs.(providers.LogSubscriber), nil
}
