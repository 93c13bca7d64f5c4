package convox_test

import (
	"context"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// world is a Client over a fake rack, recording events.
type world struct {
	t    *testing.T
	rack *fake.Rack
	c    *convox.Client

	mu     sync.Mutex
	events []convox.Event
}

// newWorld returns a world whose client polls every second (fake time under synctest).
func newWorld(t *testing.T, opts *fake.Options) *world {
	t.Helper()
	w := &world{t: t, rack: fake.New(opts)}
	c, err := convox.New(w.rack.ConvoxRack(), &convox.Options{
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

func (w *world) record(e convox.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, e)
}

func (w *world) eventTypes() []convox.EventType {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ts []convox.EventType
	for _, e := range w.events {
		ts = append(ts, e.Type)
	}
	return ts
}

func (w *world) allEvents() []convox.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]convox.Event(nil), w.events...)
}

func (w *world) countEvents(typ convox.EventType) int {
	n := 0
	for _, t := range w.eventTypes() {
		if t == typ {
			n++
		}
	}
	return n
}

// push adds an image with an entrypoint; the tag names the version.
func (w *world) push(tag string) providers.Image {
	return w.rack.Push("web", tag, &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"VERSION=" + tag}})
}

// webSpec is a release of the image with one routed web process and a worker.
func webSpec(image string) convox.ReleaseSpec {
	return convox.ReleaseSpec{
		Image: image,
		Env:   map[string]string{"MODE": "production"},
		Processes: []convox.Process{
			{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}},
			{Name: "worker", Count: 1, Command: []string{"/app/worker"}},
		},
	}
}

// createApp creates app "web" and deploys tag v1 on it.
func (w *world) deployV1(ctx context.Context) *convox.Release {
	w.t.Helper()
	if _, err := w.c.CreateApp(ctx, "web", nil); err != nil {
		w.t.Fatalf("CreateApp: %v", err)
	}
	w.push("v1")
	rel, err := w.c.App("web").Deploy(ctx, webSpec("web:v1"), nil)
	if err != nil {
		w.t.Fatalf("Deploy v1: %v", err)
	}
	return rel
}

func (w *world) active(ctx context.Context) string {
	w.t.Helper()
	app, err := w.c.App("web").Get(ctx)
	if err != nil {
		w.t.Fatalf("GetApp: %v", err)
	}
	return app.Active
}

// serving returns the release the scheduler reports as rolled out.
func (w *world) serving(ctx context.Context) string {
	w.t.Helper()
	st, err := w.rack.Scheduler().Status(ctx, "web")
	if err != nil {
		w.t.Fatalf("Status: %v", err)
	}
	return st.Release
}

func (w *world) logs(ctx context.Context, q convox.LogQuery) []providers.LogEntry {
	w.t.Helper()
	var out []providers.LogEntry
	for e, err := range w.c.App("web").Logs(ctx, q) {
		if err != nil {
			w.t.Fatalf("Logs: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func statuses(t *testing.T, ctx context.Context, c *convox.Client, app string) map[string]convox.ReleaseStatus {
	t.Helper()
	m := map[string]convox.ReleaseStatus{}
	for r, err := range c.App(app).Releases(ctx) {
		if err != nil {
			t.Fatalf("Releases: %v", err)
		}
		m[r.ID] = r.Status
	}
	return m
}

// sawStep reports whether an event of the step was emitted.
func (w *world) sawStep(step convox.Step) bool {
	for _, e := range w.allEvents() {
		if e.Step == step {
			return true
		}
	}
	return false
}

// collect gathers what an iterator of the SDK yields, stopping at its error.
func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}
