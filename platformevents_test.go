package convox_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// stackScheduler is the fake's scheduler with the capabilities of a
// scheduler that keeps each app as a stack: it plans, detects drift and
// reports rollout events, answering from its fields.
type stackScheduler struct {
	*fake.Scheduler

	mu sync.Mutex
	// planned records the Desired of each PlanChanges; changes and
	// planErr are its answer.
	planned []providers.Desired
	changes []providers.ResourceChange
	planErr error
	// driftCalls counts DetectDrift calls; drifts and driftErr answer them.
	driftCalls int
	drifts     []providers.ResourceDrift
	driftErr   error
	// script lists the events a rollout records, revealed two per
	// RolloutEvents call, each stamped with the time it is revealed;
	// recorded holds those revealed (and any recorded before).
	script     []providers.PlatformEvent
	recorded   []providers.PlatformEvent
	eventCalls int
	// hold is how many Status calls report no completed release, so that
	// a deploy polls that many times more.
	hold int
}

func (s *stackScheduler) PlanChanges(_ context.Context, d providers.Desired) ([]providers.ResourceChange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.planned = append(s.planned, d)
	return s.changes, s.planErr
}

func (s *stackScheduler) DetectDrift(context.Context, string) ([]providers.ResourceDrift, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.driftCalls++
	return s.drifts, s.driftErr
}

func (s *stackScheduler) RolloutEvents(_ context.Context, _ string, since time.Time) ([]providers.PlatformEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventCalls++
	for range 2 {
		if len(s.script) == 0 {
			break
		}
		e := s.script[0]
		e.Time = time.Now()
		s.recorded, s.script = append(s.recorded, e), s.script[1:]
	}
	var out []providers.PlatformEvent
	for _, e := range s.recorded {
		if !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *stackScheduler) Status(ctx context.Context, app string) (providers.AppStatus, error) {
	st, err := s.Scheduler.Status(ctx, app)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.hold > 0 {
		s.hold--
		st.Release = ""
	}
	return st, err
}

// newStackWorld is newWorld with the fake's scheduler wrapped in s.
func newStackWorld(t *testing.T, s *stackScheduler) *world {
	t.Helper()
	w := &world{t: t, rack: fake.New(nil)}
	s.Scheduler = w.rack.Scheduler()
	rk := w.rack.ConvoxRack()
	rk.Scheduler = s
	c, err := convox.New(rk, &convox.Options{
		OnEvent:      w.record,
		PollInterval: time.Second, MaxPollInterval: 5 * time.Second,
		Timeout: 5 * time.Minute, CompensateTimeout: 5 * time.Minute,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w.c = c
	return w
}

func TestPlatformEventsAreDeployEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := &stackScheduler{
			// An event of an operation before the deploy: never reported.
			recorded: []providers.PlatformEvent{{Time: time.Now().Add(-time.Hour), Resource: "app-web", Status: "UPDATE_COMPLETE"}},
			script: []providers.PlatformEvent{
				{Resource: "app-web", Type: "AWS::CloudFormation::Stack", Status: "CREATE_IN_PROGRESS", Reason: "User Initiated"},
				{Resource: "TaskOfweb", Type: "AWS::ECS::TaskDefinition", Status: "CREATE_IN_PROGRESS"},
				{Resource: "TaskOfweb", Type: "AWS::ECS::TaskDefinition", Status: "CREATE_COMPLETE"},
				{Resource: "ServiceOfweb", Type: "AWS::ECS::Service", Status: "CREATE_COMPLETE"},
				{Resource: "app-web", Type: "AWS::CloudFormation::Stack", Status: "CREATE_COMPLETE"},
			},
			hold: 3,
		}
		w := newStackWorld(t, s)
		time.Sleep(time.Minute) // the stale event is well before the deploy
		w.deployV1(ctx)

		var got []string
		for _, e := range w.allEvents() {
			if e.Type == convox.EventPlatform {
				if e.App != "web" || e.Release != "R1" || e.Step != convox.StepWait {
					t.Errorf("platform event %+v, want app web, release R1, step wait", e)
				}
				got = append(got, e.Message+"|"+e.Reason)
			}
		}
		want := []string{
			"app-web CREATE_IN_PROGRESS|User Initiated",
			"TaskOfweb CREATE_IN_PROGRESS|",
			"TaskOfweb CREATE_COMPLETE|",
			"ServiceOfweb CREATE_COMPLETE|",
			"app-web CREATE_COMPLETE|",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("platform events of the deploy, in order, once each (-want +got):\n%s", diff)
		}
		if s.eventCalls < 3 {
			t.Errorf("RolloutEvents was called %d times, want one per poll (at least 3)", s.eventCalls)
		}
		var lines []string
		for _, e := range w.logs(ctx, convox.LogQuery{Stream: providers.StreamPlatform}) {
			if strings.Contains(e.Message, "_") {
				lines = append(lines, e.Message)
			}
		}
		wantLines := []string{
			"app-web CREATE_IN_PROGRESS: User Initiated",
			"TaskOfweb CREATE_IN_PROGRESS",
			"TaskOfweb CREATE_COMPLETE",
			"ServiceOfweb CREATE_COMPLETE",
			"app-web CREATE_COMPLETE",
		}
		if diff := cmp.Diff(wantLines, lines); diff != "" {
			t.Errorf("platform log lines of the events (-want +got):\n%s", diff)
		}
	})
}

func TestNoPlatformEventsWithoutTheCapability(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		w.deployV1(t.Context())
		if n := w.countEvents(convox.EventPlatform); n != 0 {
			t.Errorf("%d platform events on a scheduler without EventReporter, want 0", n)
		}
	})
}

func TestPlatformEventsAreReportedOnceAcrossTheWaitsOfADeploy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := &stackScheduler{}
		w := newStackWorld(t, s)
		w.deployV1(ctx)
		w.push("v2")
		s.mu.Lock()
		s.script = []providers.PlatformEvent{
			{Resource: "app-web", Status: "UPDATE_IN_PROGRESS"},
			{Resource: "ServiceOfweb", Status: "UPDATE_IN_PROGRESS"},
			{Resource: "ServiceOfweb", Status: "UPDATE_COMPLETE"},
			{Resource: "app-web", Status: "UPDATE_COMPLETE"},
		}
		s.mu.Unlock()
		before := len(w.allEvents())
		// Blue/green waits several times (the staged release, the bake,
		// the switch); each wait polls the events from where the last
		// one stopped.
		if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, &convox.DeployOptions{Strategy: convox.BlueGreen(30 * time.Second)}); err != nil {
			t.Fatalf("blue/green deploy: %v", err)
		}
		var got []string
		waits := map[convox.Step]bool{}
		for _, e := range w.allEvents()[before:] {
			switch e.Type {
			case convox.EventPlatform:
				got = append(got, e.Message)
			case convox.EventWaiting:
				waits[e.Step] = true
			}
		}
		if len(waits) < 2 {
			t.Fatalf("the deploy waited in steps %v, want at least two waits for this test to mean anything", waits)
		}
		want := []string{"app-web UPDATE_IN_PROGRESS", "ServiceOfweb UPDATE_IN_PROGRESS", "ServiceOfweb UPDATE_COMPLETE", "app-web UPDATE_COMPLETE"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("platform events of a deploy with several waits, once each (-want +got):\n%s", diff)
		}
	})
}

// restoringScheduler is a stackScheduler whose rollout events of a
// compensation are scripted: when the previous release is applied again
// to restore it, onRestore's events join the script.
type restoringScheduler struct {
	*stackScheduler
	previous  string
	onRestore []providers.PlatformEvent
}

func (s *restoringScheduler) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	s.mu.Lock()
	if d.Release == s.previous {
		s.script = append(s.script, s.onRestore...)
		s.onRestore = nil
	}
	s.mu.Unlock()
	return s.stackScheduler.Apply(ctx, d)
}

// TestPlatformEventsOfACompensation: the wait of a compensation reports
// the scheduler's rollout events at StepCompensate, each once, after the
// failed deploy's own (the cursor is the deployment's).
func TestPlatformEventsOfACompensation(t *testing.T) {
	type platformEvent struct {
		Step    convox.Step
		Message string
	}
	tests := []struct {
		name string
		// during are the events of the failed deploy; restore those of
		// the compensation.
		during, restore []providers.PlatformEvent
		want            []platformEvent
	}{
		{
			name:    "events of the restore only",
			restore: []providers.PlatformEvent{{Resource: "app-web", Status: "UPDATE_ROLLBACK_IN_PROGRESS"}, {Resource: "ServiceOfweb", Status: "UPDATE_COMPLETE"}},
			want: []platformEvent{
				{convox.StepCompensate, "app-web UPDATE_ROLLBACK_IN_PROGRESS"},
				{convox.StepCompensate, "ServiceOfweb UPDATE_COMPLETE"},
			},
		},
		{
			name:    "events of the deploy, then of the restore, once each",
			during:  []providers.PlatformEvent{{Resource: "app-web", Status: "UPDATE_IN_PROGRESS"}, {Resource: "TaskOfweb", Status: "CREATE_COMPLETE"}},
			restore: []providers.PlatformEvent{{Resource: "app-web", Status: "UPDATE_ROLLBACK_IN_PROGRESS"}, {Resource: "app-web", Status: "UPDATE_ROLLBACK_COMPLETE"}},
			want: []platformEvent{
				{convox.StepWait, "app-web UPDATE_IN_PROGRESS"},
				{convox.StepWait, "TaskOfweb CREATE_COMPLETE"},
				{convox.StepCompensate, "app-web UPDATE_ROLLBACK_IN_PROGRESS"},
				{convox.StepCompensate, "app-web UPDATE_ROLLBACK_COMPLETE"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				s := &restoringScheduler{stackScheduler: &stackScheduler{}, previous: "R1"}
				w := &world{t: t, rack: fake.New(nil)}
				s.Scheduler = w.rack.Scheduler()
				rk := w.rack.ConvoxRack()
				rk.Scheduler = s
				c, err := convox.New(rk, &convox.Options{
					OnEvent:      w.record,
					PollInterval: time.Second, MaxPollInterval: 5 * time.Second,
				})
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				w.c = c
				w.deployV1(ctx)
				w.push("v2")
				w.rack.CrashLoop("R2")
				s.mu.Lock()
				s.script, s.onRestore = tc.during, tc.restore
				s.mu.Unlock()
				before := len(w.allEvents())
				_, err = w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
				var de *convox.DeployError
				if !errors.As(err, &de) || !de.RolledBack {
					t.Fatalf("Deploy v2 = %v, want a *DeployError with R1 restored", err)
				}
				var got []platformEvent
				for _, e := range w.allEvents()[before:] {
					if e.Type == convox.EventPlatform {
						got = append(got, platformEvent{e.Step, e.Message})
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("platform events (-want +got):\n%s", diff)
				}
			})
		})
	}
}
