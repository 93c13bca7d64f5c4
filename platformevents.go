package convox

import (
	"context"
	"fmt"
	"time"

	"github.com/convox-go/convox/providers"
)

// platformEventKey identifies one platform event across polls.
type platformEventKey struct {
	time                     time.Time
	resource, status, reason string
}

// platformEvents returns a function that reports the rollout events the
// scheduler recorded for the deployment's app since the deployment began
// (providers.EventReporter), each
// once, oldest first: as an EventPlatform event of the given step and as
// a line in the app's platform log stream. Each call asks only for the
// events at or after the newest one reported before, and drops those it
// has reported. For a scheduler without the capability the function does
// nothing. A failure to read the events is logged and left for the next
// call: reporting never fails a deploy.
//
// The state lives in the returned function: the deploy's wait makes one
// and calls it at every poll.
func (d *Deployment) platformEvents(s providers.Scheduler) func(ctx context.Context, step Step) {
	c, app, release, since := d.c, d.App, d.Release, d.start
	er, ok := s.(providers.EventReporter)
	if !ok {
		return func(context.Context, Step) {}
	}
	seen := map[platformEventKey]bool{}
	return func(ctx context.Context, step Step) {
		events, err := er.RolloutEvents(ctx, app, since)
		if err != nil {
			c.log.Debug("convox: read platform events", "app", app, "err", err)
			return
		}
		for _, e := range events {
			k := platformEventKey{e.Time, e.Resource, e.Status, e.Reason}
			if seen[k] || e.Time.Before(since) {
				continue
			}
			seen[k] = true
			if e.Time.After(since) {
				since = e.Time
				for old := range seen {
					if old.time.Before(since) {
						delete(seen, old)
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
