package convox

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/convox-go/convox/providers"
	"time"
)

// EventType says what an Event reports.
type EventType string

// Event types.
const (
	EventAppCreated      EventType = "app.created"
	EventAppDeleted      EventType = "app.deleted"
	EventReleaseCreated  EventType = "release.created"
	EventDeployStarted   EventType = "deploy.started"
	EventStep            EventType = "deploy.step"      // a step began
	EventWaiting         EventType = "deploy.waiting"   // progress of a wait; see Progress
	EventRetry           EventType = "deploy.retry"     // a temporary error is being retried
	EventDeploySucceeded EventType = "deploy.succeeded" // the release is active and healthy
	EventDeployFailed    EventType = "deploy.failed"    // the deploy failed; see Reason
	EventCompensating    EventType = "deploy.compensating"
	EventRolledBack      EventType = "deploy.rolled-back" // the previous release is serving again
	EventCanceled        EventType = "deploy.canceled"
	EventRollback        EventType = "rollback.started"
	EventNotifyFailed    EventType = "notify.failed" // a notifier failed; the deploy goes on
	EventRun             EventType = "run"           // a one-off process changed state
	// EventPlatform is an event the scheduler's platform recorded while
	// applying the release (a CloudFormation stack event), reported
	// during the deploy's waits when the scheduler implements
	// providers.EventReporter: Time is the platform's, Message the
	// resource and its status, Reason the platform's explanation.
	EventPlatform EventType = "deploy.platform"
)

// Step names a stage of a deploy.
type Step string

// Deploy steps, in order.
const (
	StepPrepare    Step = "prepare"    // check the input and read the app; no side effect
	StepResolve    Step = "resolve"    // resolve the image to a digest
	StepCreate     Step = "create"     // record the new release in the store
	StepLease      Step = "lease"      // take the app's deploy lease
	StepRoutes     Step = "routes"     // ensure balancer routes
	StepApply      Step = "apply"      // hand the release to the scheduler
	StepWait       Step = "wait"       // wait for tasks running and targets healthy
	StepActivate   Step = "activate"   // record the release as active
	StepCompensate Step = "compensate" // restore the previous release
)

// Progress describes a wait: what it waits for and for how long at most.
type Progress struct {
	// Running and Desired count the new release's tasks.
	Running int
	Desired int
	// Healthy and Targets count balancer targets of routed processes.
	Healthy int
	Targets int
	// Stopped counts the new release's tasks that stopped.
	Stopped int
	// Elapsed is how long the wait has run; Limit is the most it will.
	Elapsed time.Duration
	Limit   time.Duration
}

// String renders the progress as "2/3 running, 1/3 healthy, 12s of
// 10m0s"; the timing is left out when the wait has no limit, and
// "healthy" when no process is routed.
func (p Progress) String() string {
	s := fmt.Sprintf("%d/%d running", p.Running, p.Desired)
	if p.Targets > 0 {
		s += fmt.Sprintf(", %d/%d healthy", p.Healthy, p.Targets)
	}
	if p.Stopped > 0 {
		s += fmt.Sprintf(", %d stopped", p.Stopped)
	}
	if p.Limit > 0 {
		s += fmt.Sprintf(", %s of %s", p.Elapsed.Round(time.Second), p.Limit)
	}
	return s
}

// Event is one step of progress, delivered to Options.OnEvent.
type Event struct {
	Time    time.Time
	Type    EventType
	App     string
	Release string
	Step    Step
	// Message is a human-readable description.
	Message string
	// Progress is set on EventWaiting.
	Progress *Progress
	// Reason explains failures, retries and cancellations.
	Reason string
	// Transfer is set on EventMigration.
	Transfer *Transfer
}

// String renders the event on one line.
func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Type, e.App)
	if e.Release != "" {
		s += " " + e.Release
	}
	if e.Step != "" {
		s += " [" + string(e.Step) + "]"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Progress != nil {
		s += " (" + e.Progress.String() + ")"
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// SlogEvents returns an Options.OnEvent function that logs each event to
// logger: failures at Warn, everything else at Info.
func SlogEvents(logger *slog.Logger) func(Event) {
	return func(e Event) {
		level := slog.LevelInfo
		switch e.Type {
		case EventDeployFailed, EventNotifyFailed, EventRetry:
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{slog.String("type", string(e.Type)), slog.String("app", e.App)}
		if e.Release != "" {
			attrs = append(attrs, slog.String("release", e.Release))
		}
		if e.Step != "" {
			attrs = append(attrs, slog.String("step", string(e.Step)))
		}
		if e.Progress != nil {
			p := e.Progress
			attrs = append(attrs, slog.Group("progress",
				slog.Int("running", p.Running), slog.Int("desired", p.Desired),
				slog.Int("healthy", p.Healthy), slog.Int("targets", p.Targets),
				slog.Duration("elapsed", p.Elapsed), slog.Duration("limit", p.Limit)))
		}
		if e.Reason != "" {
			attrs = append(attrs, slog.String("reason", e.Reason))
		}
		logger.LogAttrs(context.Background(), level, e.Message, attrs...)
	}
}

// platformLog writes a platform event line about the deployment into the
// app's logs.
func (d *Deployment) platformLog(ctx context.Context, msg string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.c.opts.NotifyTimeout)
	defer cancel()
	sel, err := d.selection(ctx)
	if err != nil {
		return
	}
	e := providers.LogEntry{Time: time.Now().UTC(), App: d.App, Stream: providers.StreamPlatform, Process: providers.StreamPlatform, Release: d.Release, Message: msg}
	if err := sel.logs.Write(ctx, []providers.LogEntry{e}); err != nil {
		d.c.log.Warn("convox: write platform log", "app", d.App, "err", err)
	}
}

// notify delivers n to every notifier, each bounded by NotifyTimeout; a
// failure is reported as an event and never fails the caller.
func (c *Client) notify(ctx context.Context, n providers.Notification) {
	if n.Time.IsZero() {
		n.Time = time.Now().UTC()
	}
	for i, nt := range c.rack.notifiers {
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.NotifyTimeout)
		err := nt.Notify(nctx, n)
		cancel()
		if err != nil {
			c.emit(Event{Type: EventNotifyFailed, App: n.App, Release: n.Release, Message: fmt.Sprintf("notifier %d failed", i), Reason: err.Error()})
		}
	}
}
