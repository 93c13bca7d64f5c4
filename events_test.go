package convox_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/fake"
)

// eventLog records events per app, and can hold the callback on one
// app's events until released.
type eventLog struct {
	mu     sync.Mutex
	byApp  map[string][]convox.Event
	holdOn string        // the app whose events block the callback ("" for none)
	held   chan struct{} // receives once an event of holdOn is being held
	free   chan struct{} // closed to release the held callback
}

func (l *eventLog) onEvent(e convox.Event) {
	l.mu.Lock()
	l.byApp[e.App] = append(l.byApp[e.App], e)
	hold := l.holdOn != "" && e.App == l.holdOn
	l.mu.Unlock()
	if hold {
		select {
		case l.held <- struct{}{}:
		default:
		}
		<-l.free
	}
}

func (l *eventLog) hold(app string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holdOn = app
}

func (l *eventLog) of(app string) []convox.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.byApp[app])
}

// newEventClient returns a client over a fake rack with apps a and b
// created and an image pushed for each, reporting its events to l.
func newEventClient(t *testing.T, l *eventLog) *convox.Client {
	t.Helper()
	rack := fake.New(nil)
	c, err := convox.New(rack.ConvoxRack(), &convox.Options{
		OnEvent:      l.onEvent,
		PollInterval: time.Millisecond, MaxPollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"a", "b"} {
		if _, err := c.CreateApp(t.Context(), app, nil); err != nil {
			t.Fatal(err)
		}
		rack.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
	}
	return c
}

func TestEventsPerApp(t *testing.T) {
	t.Run("a callback held on one app's events does not delay another app's deploy", func(t *testing.T) {
		l := &eventLog{byApp: map[string][]convox.Event{}, held: make(chan struct{}, 1), free: make(chan struct{})}
		c := newEventClient(t, l)
		ctx := t.Context()
		l.hold("a")
		aDone := make(chan error, 1)
		go func() {
			_, err := c.App("a").Deploy(context.WithoutCancel(ctx), webSpec("a:v1"), nil)
			aDone <- err
		}()
		<-l.held // a's deploy is now stuck in the callback

		bDone := make(chan error, 1)
		go func() {
			_, err := c.App("b").Deploy(ctx, webSpec("b:v1"), nil)
			bDone <- err
		}()
		// Only a guard against a hang: b's deploy must finish while a's
		// callback is still held, however long it takes.
		select {
		case err := <-bDone:
			if err != nil {
				t.Fatalf("deploy of b = %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("the deploy of b did not finish while a callback on a's events was held")
		}
		select {
		case err := <-aDone:
			t.Fatalf("the deploy of a finished (%v) while its callback was held", err)
		default:
		}
		if got := l.of("b"); len(got) == 0 || got[len(got)-1].Type != convox.EventDeploySucceeded {
			t.Errorf("b's last event is not %s: %v", convox.EventDeploySucceeded, got)
		}
		close(l.free)
		if err := <-aDone; err != nil {
			t.Fatalf("deploy of a = %v", err)
		}
	})

	t.Run("events of concurrent deployments arrive in order per app, before Wait returns", func(t *testing.T) {
		l := &eventLog{byApp: map[string][]convox.Event{}}
		c := newEventClient(t, l)
		ctx := t.Context()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, app := range []string{"a", "b"} {
			wg.Go(func() {
				_, errs[i] = c.App(app).Deploy(ctx, webSpec(app+":v1"), nil)
			})
		}
		wg.Wait()
		for i, app := range []string{"a", "b"} {
			if errs[i] != nil {
				t.Fatalf("deploy of %s = %v", app, errs[i])
			}
			// The order of one deployment's events, with repeated progress
			// reports of one step folded into one.
			type step struct {
				Type convox.EventType
				Step convox.Step
			}
			var got []step
			for _, e := range l.of(app) {
				s := step{e.Type, e.Step}
				if e.Type == convox.EventAppCreated || e.Type == convox.EventReleaseCreated || len(got) > 0 && got[len(got)-1] == s {
					continue
				}
				got = append(got, s)
			}
			want := []step{
				{convox.EventDeployStarted, convox.StepLease},
				{convox.EventStep, convox.StepRoutes},
				{convox.EventStep, convox.StepApply},
				{convox.EventWaiting, convox.StepWait},
				{convox.EventDeploySucceeded, convox.StepActivate},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events of %s (-want +got):\n%s", app, diff)
			}
		}
	})
}
