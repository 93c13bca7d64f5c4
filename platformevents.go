package convox

import (
	"context"
	"fmt"
	"time"
)

// platformEventKey identifies one platform event across polls.
type platformEventKey struct {
	time                     time.Time
	resource, status, reason string
}

// platformCursor is how far a deployment has reported the scheduler's
// rollout events: the newest event time reported, and the events at that
// time already reported (several can share a timestamp).
type platformCursor struct {
	since time.Time
	seen  map[platformEventKey]bool
}

// platformEvents returns a function that reports the rollout events the
// scheduler recorded for the deployment's app since the deployment began
// (providers.EventReporter), each once, oldest first: as an EventPlatform
// event of the given step and as a line in the app's platform log stream.
// Each call asks only for the events at or after the newest one reported
// before, and drops those it has reported. For a scheduler without the
// capability the function does nothing. A failure to read the events is
// logged and left for the next call: reporting never fails a deploy.
//
// The cursor lives in the deployment, so the several waits of a weighted
// deploy (stage, shift, switch) and the wait of its compensation
// (waitRestored) report each event once between them. The waits of one
// deployment run one after another, never at once. RolloutEvents goes
// through the scheduler's chain (rate limit and accounting; it is not
// retried, the next poll asks again).
func (d *Deployment) platformEvents(s schedulerCalls) func(ctx context.Context, step Step) {
	c, app, release := d.c, d.App, d.Release
	er, ok := s.eventReporter()
	if !ok {
		return func(context.Context, Step) {}
	}
	cur := &d.platform
	if cur.seen == nil {
		cur.since, cur.seen = d.start, map[platformEventKey]bool{}
	}
	return func(ctx context.Context, step Step) {
		events, err := er.RolloutEvents(ctx, app, cur.since)
		if err != nil {
			c.log.Debug("convox: read platform events", "app", app, "err", err)
			return
		}
		for _, e := range events {
			k := platformEventKey{e.Time, e.Resource, e.Status, e.Reason}
			if cur.seen[k] || e.Time.Before(cur.since) {
				continue
			}
			cur.seen[k] = true
			if e.Time.After(cur.since) {
				cur.since = e.Time
				for old := range cur.seen {
					if old.time.Before(cur.since) {
						delete(cur.seen, old)
					}
				}
			}
			msg := fmt.Sprintf("%s %s", e.Resource, e.Status)
			c.emit(Event{Time: e.Time, Type: EventPlatform, App: app, Release: release, Step: step, Message: msg, Reason: e.Reason})
			if e.Reason != "" {
				msg += ": " + e.Reason
			}
			d.platformLog(ctx, msg)
		}
	}
}
