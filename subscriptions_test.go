package convox_test

import (
	"context"
	"errors"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// subscribingLogs adds providers.LogSubscriber to a logs backend, keeping
// subscriptions in memory and removing an app's with its logs, as the
// interface requires. It records the subscriber calls it receives.
type subscribingLogs struct {
	providers.Logs

	mu    sync.Mutex
	subs  map[string]map[string]providers.Subscription
	calls []string
	// fail, when set, is returned by every subscriber call.
	fail error
}

func (l *subscribingLogs) record(call string) error {
	l.calls = append(l.calls, call)
	return l.fail
}

func (l *subscribingLogs) Subscribe(_ context.Context, app string, s providers.Subscription) (providers.Subscription, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.record("Subscribe " + app + " " + s.Name); err != nil {
		return providers.Subscription{}, err
	}
	if l.subs[app] == nil {
		l.subs[app] = map[string]providers.Subscription{}
	}
	l.subs[app][s.Name] = s
	return s, nil
}

func (l *subscribingLogs) Subscriptions(_ context.Context, app string) ([]providers.Subscription, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.record("Subscriptions " + app); err != nil {
		return nil, err
	}
	var out []providers.Subscription
	for _, name := range slices.Sorted(maps.Keys(l.subs[app])) {
		out = append(out, l.subs[app][name])
	}
	return out, nil
}

func (l *subscribingLogs) Unsubscribe(_ context.Context, app, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.record("Unsubscribe " + app + " " + name); err != nil {
		return err
	}
	delete(l.subs[app], name)
	return nil
}

func (l *subscribingLogs) Delete(ctx context.Context, app string) error {
	l.mu.Lock()
	delete(l.subs, app)
	l.mu.Unlock()
	return l.Logs.Delete(ctx, app)
}

func (l *subscribingLogs) recorded() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

const (
	lambdaARN  = "arn:aws:lambda:us-east-1:123456789012:function:logforward"
	kinesisARN = "arn:aws:kinesis:us-east-1:123456789012:stream/logs"
)

// subscribingClient returns a client over a fake rack whose logs backend
// subscribes, with app "web" created.
func subscribingClient(t *testing.T) (*convox.Client, *subscribingLogs) {
	t.Helper()
	r := fake.New(nil)
	logs := &subscribingLogs{Logs: r.Logs(), subs: map[string]map[string]providers.Subscription{}}
	rack := r.ConvoxRack()
	rack.Logs = logs
	c, err := convox.New(rack, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(t.Context(), "web", nil); err != nil {
		t.Fatal(err)
	}
	return c, logs
}

func TestSubscriptionsLifecycle(t *testing.T) {
	c, logs := subscribingClient(t)
	ctx := t.Context()
	web := c.App("web")
	alerts := providers.Subscription{Name: "alerts", Destination: lambdaARN, Pattern: "?panic ?FATAL"}
	archive := providers.Subscription{Name: "archive", Destination: kinesisARN, RoleARN: "arn:aws:iam::123456789012:role/logs"}
	for _, s := range []providers.Subscription{archive, alerts} {
		got, err := web.Subscribe(ctx, s)
		if err != nil {
			t.Fatalf("Subscribe %s: %v", s.Name, err)
		}
		if diff := cmp.Diff(s, got); diff != "" {
			t.Errorf("Subscribe %s (-want +got):\n%s", s.Name, diff)
		}
	}
	got, err := collectSubs(web.Subscriptions(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]providers.Subscription{alerts, archive}, got); diff != "" {
		t.Errorf("Subscriptions (-want +got):\n%s", diff)
	}
	if err := web.Unsubscribe(ctx, "archive"); err != nil {
		t.Fatal(err)
	}
	if got, _ := collectSubs(web.Subscriptions(ctx)); !cmp.Equal([]providers.Subscription{alerts}, got) {
		t.Errorf("Subscriptions after Unsubscribe = %v, want alerts alone", got)
	}
	if err := c.DeleteApp(ctx, "web"); err != nil {
		t.Fatalf("DeleteApp: %v", err)
	}
	if _, ok := logs.subs["web"]; ok {
		t.Errorf("DeleteApp left the subscriptions %v", logs.subs["web"])
	}
	want := []string{"Subscribe web archive", "Subscribe web alerts", "Subscriptions web", "Unsubscribe web archive", "Subscriptions web"}
	if diff := cmp.Diff(want, logs.recorded()); diff != "" {
		t.Errorf("provider calls (-want +got):\n%s", diff)
	}
}

func TestSubscriptionsRefuse(t *testing.T) {
	tests := []struct {
		name string
		// run makes one call on a client whose app "web" exists.
		run  func(ctx context.Context, c *convox.Client, logs *subscribingLogs) error
		want error
		op   string
		// reaches says whether the provider is called.
		reaches bool
	}{
		{"an invalid subscription before any call", func(ctx context.Context, c *convox.Client, _ *subscribingLogs) error {
			_, err := c.App("web").Subscribe(ctx, providers.Subscription{Name: "a", Destination: "arn:aws:sqs:us-east-1:123456789012:q"})
			return err
		}, providers.ErrInvalid, "Subscribe", false},
		{"a missing app before any call", func(ctx context.Context, c *convox.Client, _ *subscribingLogs) error {
			_, err := c.App("api").Subscribe(ctx, providers.Subscription{Name: "a", Destination: lambdaARN})
			return err
		}, providers.ErrNotFound, "Subscribe", false},
		{"an empty name to unsubscribe before any call", func(ctx context.Context, c *convox.Client, _ *subscribingLogs) error {
			return c.App("web").Unsubscribe(ctx, "")
		}, providers.ErrInvalid, "Unsubscribe", false},
		{"a provider error keeps its sentinel", func(ctx context.Context, c *convox.Client, logs *subscribingLogs) error {
			logs.fail = providers.ErrThrottled
			_, err := collectSubs(c.App("web").Subscriptions(ctx))
			return err
		}, providers.ErrThrottled, "Subscriptions", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs := subscribingClient(t)
			err := tt.run(t.Context(), c, logs)
			var ce *convox.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &ce) || ce.Op != tt.op {
				t.Errorf("err = %v, want a *convox.Error of %s matching %v", err, tt.op, tt.want)
			}
			if diff := cmp.Diff(tt.reaches, len(logs.recorded()) > 0); diff != "" {
				t.Errorf("provider reached (-want +got):\n%s\ncalls: %v", diff, logs.recorded())
			}
		})
	}
}

func TestSubscriptionsNeedTheCapability(t *testing.T) {
	r := fake.New(nil)
	c, err := convox.New(r.ConvoxRack(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(t.Context(), "web", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.App("web").Subscribe(t.Context(), providers.Subscription{Name: "a", Destination: lambdaARN})
	if !errors.Is(err, providers.ErrUnimplemented) || !strings.Contains(err.Error(), "LogSubscriber") {
		t.Errorf("Subscribe on a backend without subscriptions = %v, want ErrUnimplemented naming LogSubscriber", err)
	}
	if err := r.ConvoxRack().Check(convox.CapLogSubscriber); !errors.Is(err, providers.ErrUnimplemented) {
		t.Errorf("Rack.Check(CapLogSubscriber) on the fake = %v, want ErrUnimplemented before any call", err)
	}
	sc, _ := subscribingClient(t)
	if err := sc.App("web").Check(t.Context(), convox.CapLogSubscriber); err != nil {
		t.Errorf("AppClient.Check(CapLogSubscriber) on a subscribing backend = %v, want nil", err)
	}
}

// collectSubs gathers a subscription listing, stopping at its error.
func collectSubs(seq iter.Seq2[providers.Subscription, error]) ([]providers.Subscription, error) {
	var out []providers.Subscription
	for s, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}
