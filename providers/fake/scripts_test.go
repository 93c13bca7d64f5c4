package fake_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// completeR1 applies r1 and observes it to completion.
func (w *world) completeR1(t *testing.T) {
	t.Helper()
	w.apply(t, w.desired("r1", 1))
	for range 4 {
		w.observe(t)
	}
}

// rollout reports the release the app serves and the state of its newest
// rollout.
func (w *world) rollout(t *testing.T) string {
	t.Helper()
	o := w.observe(t)
	return fmt.Sprintf("serving %s, newest rollout %s", o.Release, o.Rollout)
}

func TestUndoOfRolloutFaults(t *testing.T) {
	const stuck, recover = 8, 6
	tests := []struct {
		name   string
		script func(w *world) (undo func())
	}{
		{"CrashLoop of the release", func(w *world) func() { return w.rack.CrashLoop("r2") }},
		{"CrashLoop of the image digest", func(w *world) func() { return w.rack.CrashLoop(w.img.Digest) }},
		{"FailHealth of the release", func(w *world) func() { return w.rack.FailHealth("r2") }},
		{"FailHealth of the image digest", func(w *world) func() { return w.rack.FailHealth(w.img.Digest) }},
		{"NeverConverge of the app", func(w *world) func() { return w.rack.NeverConverge("shop") }},
		{"NeverConvergeRelease of the release", func(w *world) func() { return w.rack.NeverConvergeRelease("r2") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			w.completeR1(t)
			undo := tc.script(w)
			w.apply(t, w.desired("r2", 1))
			for range stuck {
				w.observe(t)
			}
			if diff := cmp.Diff("serving r1, newest rollout in-progress", w.rollout(t)); diff != "" {
				t.Fatalf("with the script, after %d observations (-want +got):\n%s", stuck, diff)
			}
			undo()
			undo() // a second call does nothing
			got := ""
			for range recover {
				got = w.rollout(t)
			}
			if diff := cmp.Diff("serving r2, newest rollout completed", got); diff != "" {
				t.Errorf("after undo and %d observations (-want +got):\n%s", recover, diff)
			}
		})
	}
}

func TestUndoRemovesOnlyItsOwnScript(t *testing.T) {
	errA, errB := errors.New("a"), errors.New("b")
	tests := []struct {
		name   string
		script func(r *fake.Rack)
		want   []error // outcomes of successive Store.Put calls (nil means success)
	}{
		{"undo of Fail drops its remaining failures", func(r *fake.Rack) {
			undo := r.Fail("Store.Put", errA, 5)
			undo()
		}, []error{nil, nil}},
		{"undo of the first of two queued scripts leaves the second", func(r *fake.Rack) {
			undo := r.Fail("Store.Put", errA, 2)
			r.Fail("Store.Put", errB, 1)
			undo()
		}, []error{errB, nil}},
		{"undo after a script is used up does not touch a later one", func(r *fake.Rack) {
			undo := r.Fail("Store.Put", errA, 1)
			_, _ = r.Store().Put(context.Background(), "k", nil, providers.AnyVersion)
			r.Fail("Store.Put", errB, 1)
			undo()
		}, []error{errB, nil}},
		{"undo of Throttle", func(r *fake.Rack) {
			undo := r.Throttle("Store.Put", 3)
			undo()
		}, []error{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rack := fake.New(nil)
			tc.script(rack)
			var got []error
			for range tc.want {
				_, err := rack.Store().Put(t.Context(), "k", []byte("v"), providers.AnyVersion)
				got = append(got, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("Put outcomes (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("undo of one of two identical CrashLoops leaves the release crashing", func(t *testing.T) {
		w := newWorld(t, nil)
		w.rack.CrashLoop("r1")
		undo := w.rack.CrashLoop("r1")
		undo()
		w.apply(t, w.desired("r1", 1))
		w.observe(t)
		o := w.observe(t)
		if diff := cmp.Diff([]string{"shop-web-1 stopped r1 [2 exit status 2]"}, o.Tasks); diff != "" {
			t.Errorf("tasks (-want +got):\n%s", diff)
		}
	})
}

func TestUndoOfExitCode(t *testing.T) {
	rack := fake.New(nil)
	img := rack.Push("shop", "v1", nil)
	rack.ExitCode("migrate", 1, "old script")
	undo := rack.ExitCode("migrate", 3, "new script")
	run := func() string {
		t.Helper()
		s := rack.Scheduler()
		tk, err := s.RunTask(t.Context(), providers.RunSpec{App: "shop", Release: "r1", Image: img, Process: providers.Process{Name: "web"}, Command: []string{"migrate"}})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if tk, err = s.GetTask(t.Context(), "shop", tk.ID); err != nil {
				t.Fatal(err)
			}
		}
		return taskState(tk)
	}
	if diff := cmp.Diff("stopped 3 exit status 3", run()); diff != "" {
		t.Errorf("with two scripts, the newest applies (-want +got):\n%s", diff)
	}
	undo()
	if diff := cmp.Diff("stopped 1 exit status 1", run()); diff != "" {
		t.Errorf("after undo of the newest, the older applies again (-want +got):\n%s", diff)
	}
}

func TestNeverConvergeReleaseTargetsOneRelease(t *testing.T) {
	tests := []struct {
		name   string
		script func(w *world, v2 providers.Image)
	}{
		{"by release ID", func(w *world, _ providers.Image) { w.rack.NeverConvergeRelease("r2") }},
		{"by image digest", func(w *world, v2 providers.Image) { w.rack.NeverConvergeRelease(v2.Digest) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			v2 := w.rack.Push("shop", "v2", &fake.ImageConfig{Cmd: []string{"serve", "--v2"}})
			w.completeR1(t)
			tc.script(w, v2)
			d2 := w.desired("r2", 1)
			d2.Image = v2
			w.apply(t, d2)
			for range 8 {
				w.observe(t)
			}
			if diff := cmp.Diff("serving r1, newest rollout in-progress", w.rollout(t)); diff != "" {
				t.Fatalf("r2 (-want +got):\n%s", diff)
			}

			// The rollback: r1 applied again with a new token converges.
			back := w.desired("r1", 1)
			back.Token = "rollback-to-r1"
			w.apply(t, back)
			got := ""
			for range 4 {
				got = w.rollout(t)
			}
			if diff := cmp.Diff("serving r1, newest rollout completed", got); diff != "" {
				t.Errorf("rollback to r1 (-want +got):\n%s", diff)
			}
			st, err := w.rack.Scheduler().Status(t.Context(), "shop")
			if err != nil {
				t.Fatal(err)
			}
			var states []string
			for _, ro := range st.Rollouts {
				states = append(states, fmt.Sprintf("%s %s %s", ro.Release, ro.State, ro.Reason))
			}
			want := []string{"r1 completed ", "r2 canceled superseded by rollout-3", "r1 completed "}
			if diff := cmp.Diff(want, states); diff != "" {
				t.Errorf("rollouts, newest first (-want +got):\n%s", diff)
			}
		})
	}
}

// recorder returns hooks that append name to *order when a Store.Get or
// any call passes through them, then call next.
func recorder(mu *sync.Mutex, order *[]string, name string) fake.Hooks {
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		*order = append(*order, s)
	}
	return fake.Hooks{
		Call: func(ctx context.Context, c fake.Call, next func(context.Context) error) error {
			note(name + ".Call")
			return next(ctx)
		},
		Store: fake.StoreHooks{Get: func(ctx context.Context, key string, next func(context.Context, string) (providers.Doc, error)) (providers.Doc, error) {
			note(name + ".Get")
			return next(ctx, key)
		}},
	}
}

func TestHookLayersCompose(t *testing.T) {
	tests := []struct {
		name  string
		setup func(r *fake.Rack, layer func(string) fake.Hooks)
		want  []string
	}{
		{
			name:  "Options.Hooks alone",
			setup: func(*fake.Rack, func(string) fake.Hooks) {},
			want:  []string{"opts.Call", "opts.Get"},
		},
		{
			name: "the layer added last runs outermost; all Call hooks run before the typed ones",
			setup: func(r *fake.Rack, layer func(string) fake.Hooks) {
				r.AddHooks(layer("b"))
				r.AddHooks(layer("c"))
			},
			want: []string{"c.Call", "b.Call", "opts.Call", "c.Get", "b.Get", "opts.Get"},
		},
		{
			name: "removing a middle layer keeps the others in order",
			setup: func(r *fake.Rack, layer func(string) fake.Hooks) {
				remove := r.AddHooks(layer("b"))
				r.AddHooks(layer("c"))
				remove()
				remove()
			},
			want: []string{"c.Call", "opts.Call", "c.Get", "opts.Get"},
		},
		{
			name: "a layer without a hook for the method is skipped",
			setup: func(r *fake.Rack, layer func(string) fake.Hooks) {
				r.AddHooks(fake.Hooks{Store: fake.StoreHooks{Put: func(ctx context.Context, key string, value []byte, ifVersion int64, next func(context.Context, string, []byte, int64) (int64, error)) (int64, error) {
					t.Error("the Put hook ran for a Get")
					return next(ctx, key, value, ifVersion)
				}}})
				r.AddHooks(layer("c"))
			},
			want: []string{"c.Call", "opts.Call", "c.Get", "opts.Get"},
		},
		{
			name: "SetHooks replaces every layer, Options.Hooks included",
			setup: func(r *fake.Rack, layer func(string) fake.Hooks) {
				remove := r.AddHooks(layer("b"))
				r.SetHooks(layer("s"))
				remove() // does nothing: the layer is already gone
				r.AddHooks(layer("c"))
			},
			want: []string{"c.Call", "s.Call", "c.Get", "s.Get"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var order []string
			layer := func(name string) fake.Hooks { return recorder(&mu, &order, name) }
			rack := fake.New(&fake.Options{Hooks: layer("opts")})
			tc.setup(rack, layer)
			_, err := rack.Store().Get(t.Context(), "k")
			if !errors.Is(err, providers.ErrNotFound) {
				t.Fatalf("Get = %v, want ErrNotFound from the implementation", err)
			}
			if diff := cmp.Diff(tc.want, order); diff != "" {
				t.Errorf("hook order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHookLayersSeeEachOthersResults(t *testing.T) {
	// An inner layer fails the call; an outer one sees the error and may
	// replace it: the composition is a chain, not a list of observers.
	rack := fake.New(nil)
	errInner := errors.New("inner")
	rack.AddHooks(fake.Hooks{Store: fake.StoreHooks{Get: func(ctx context.Context, key string, next func(context.Context, string) (providers.Doc, error)) (providers.Doc, error) {
		return providers.Doc{}, errInner
	}}})
	var seen error
	rack.AddHooks(fake.Hooks{Store: fake.StoreHooks{Get: func(ctx context.Context, key string, next func(context.Context, string) (providers.Doc, error)) (providers.Doc, error) {
		_, seen = next(ctx, key)
		return providers.Doc{Key: key, Value: []byte("recovered"), Version: 7}, nil
	}}})
	d, err := rack.Store().Get(t.Context(), "k")
	if err != nil || !errors.Is(seen, errInner) {
		t.Fatalf("Get = %v with the outer layer seeing %v; want nil, and errInner seen", err, seen)
	}
	if diff := cmp.Diff(providers.Doc{Key: "k", Value: []byte("recovered"), Version: 7}, d); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
}

// failingLogs is a Logs provider whose writes fail.
type failingLogs struct{ providers.Logs }

var errLogsDown = fmt.Errorf("log backend down: %w", providers.ErrUnavailable)

func (failingLogs) Write(context.Context, []providers.LogEntry) error { return errLogsDown }

func messages(t *testing.T, l providers.Logs, q providers.LogQuery) []string {
	t.Helper()
	page, err := l.Read(t.Context(), q, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range page.Entries {
		out = append(out, fmt.Sprintf("%s %s %s: %s", e.Stream, e.Process, e.Release, e.Message))
	}
	return out
}

func TestTaskLogsGoToThePluggedInProvider(t *testing.T) {
	plugged := fake.New(nil).Logs() // any providers.Logs: another rack's stands for a backend under test
	w := newWorld(t, &fake.Options{TaskLogs: plugged})
	if w.rack.TaskLogs() != providers.Logs(plugged) {
		t.Errorf("TaskLogs() is not the plugged-in provider")
	}
	w.rack.CrashLoop("r1")
	w.apply(t, w.desired("r1", 1))
	w.observe(t)
	w.observe(t) // the task starts, writes and crashes during this Status call

	// One-off task output goes there too.
	w.rack.ExitCode("migrate", 0, "migrated")
	tk, err := w.rack.Scheduler().RunTask(t.Context(), providers.RunSpec{App: "shop", Release: "r0", Image: w.img, Process: providers.Process{Name: "web"}, Command: []string{"migrate"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.rack.Scheduler().GetTask(t.Context(), "shop", tk.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{tk.ID + " web r0: migrated"}, messages(t, plugged, providers.LogQuery{App: "shop", Release: "r0"})); diff != "" {
		t.Errorf("one-off task output in the plugged-in Logs (-want +got):\n%s", diff)
	}

	want := []string{
		"shop-web-1 web r1: starting /bin/shop serve",
		"shop-web-1 web r1: panic: boom",
	}
	if diff := cmp.Diff(want, messages(t, plugged, providers.LogQuery{App: "shop", Release: "r1"})); diff != "" {
		t.Errorf("service task output in the plugged-in Logs (-want +got):\n%s", diff)
	}
	if got := messages(t, w.rack.Logs(), providers.LogQuery{App: "shop"}); len(got) != 0 {
		t.Errorf("the rack's own Logs got %q; want nothing when another provider is plugged in", got)
	}
	if errs := w.rack.TaskLogErrors(); len(errs) != 0 {
		t.Errorf("TaskLogErrors = %v, want none", errs)
	}
}

func TestTaskLogsOwnRackByDefault(t *testing.T) {
	w := newWorld(t, nil)
	if w.rack.TaskLogs() != providers.Logs(w.rack.Logs()) {
		t.Errorf("TaskLogs() is not the rack's own Logs")
	}
}

func TestTaskLogsWriteErrorsDoNotFailTheScheduler(t *testing.T) {
	w := newWorld(t, &fake.Options{TaskLogs: failingLogs{}})
	w.apply(t, w.desired("r1", 1))
	for range 4 {
		w.observe(t) // fails the test if a Status call fails
	}
	errs := w.rack.TaskLogErrors()
	if len(errs) != 1 || !errors.Is(errs[0], errLogsDown) {
		t.Errorf("TaskLogErrors = %v, want the one failed write of the start line", errs)
	}
}

func TestTaskLogsMayBeTheRacksOwnLogs(t *testing.T) {
	// A provider that calls back into the rack (here: the rack's own Logs,
	// through its hooks and call recording) must not deadlock.
	var own *fake.Logs
	rack := fake.New(&fake.Options{TaskLogs: providers.Logs(logsFunc(func(ctx context.Context, es []providers.LogEntry) error {
		return own.Write(ctx, es)
	}))})
	own = rack.Logs()
	w := &world{rack: rack, img: rack.Push("shop", "v1", &fake.ImageConfig{Entrypoint: []string{"/bin/shop"}})}
	d := w.desired("r1", 1)
	d.Bindings = nil
	d.Processes[0].Port = 0
	w.apply(t, d)
	for range 2 {
		if _, err := rack.Scheduler().Status(t.Context(), "shop"); err != nil {
			t.Fatal(err)
		}
	}
	got := messages(t, own, providers.LogQuery{App: "shop"})
	if len(got) != 1 || !strings.HasSuffix(got[0], "starting /bin/shop") {
		t.Errorf("own logs = %q, want the start line", got)
	}
	var calls []string
	for _, c := range rack.Calls() {
		calls = append(calls, c.Name())
	}
	if !slices.Contains(calls, "Logs.Write") {
		t.Errorf("calls %v: want the task output's Logs.Write recorded", calls)
	}
}

// logsFunc is a Logs provider whose Write is a function.
type logsFunc func(context.Context, []providers.LogEntry) error

func (f logsFunc) Write(ctx context.Context, es []providers.LogEntry) error { return f(ctx, es) }
func (logsFunc) Read(context.Context, providers.LogQuery, string) (providers.LogPage, error) {
	return providers.LogPage{}, providers.ErrUnimplemented
}
func (logsFunc) Delete(context.Context, string) error { return nil }
