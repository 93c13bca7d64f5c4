package fake_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/providertest"
)

func TestConformance(t *testing.T) {
	t.Run("Store", func(t *testing.T) {
		providertest.TestStore(t, func(t *testing.T) providers.Store { return fake.New(nil).Store() })
	})
	t.Run("Registry", func(t *testing.T) {
		var mu sync.Mutex
		pushes := 0
		providertest.TestRegistry(t, providertest.RegistryHarness{
			New: func(t *testing.T) providers.Registry { return fake.New(nil).Registry() },
			Push: func(t *testing.T, reg providers.Registry, repo, tag string) string {
				mu.Lock()
				pushes++
				cfg := &fake.ImageConfig{Cmd: []string{"serve"}, Env: []string{fmt.Sprintf("PUSH=%d", pushes)}}
				mu.Unlock()
				return reg.(*fake.Registry).Rack().Push(repo, tag, cfg).Digest
			},
		})
	})
	t.Run("Balancer", func(t *testing.T) {
		providertest.TestBalancer(t, providertest.BalancerHarness{
			New: func(t *testing.T) providers.Balancer { return fake.New(nil).Balancer() },
		})
	})
	t.Run("Logs", func(t *testing.T) {
		providertest.TestLogs(t, providertest.LogsHarness{
			New: func(t *testing.T) providers.Logs { return fake.New(nil).Logs() },
		})
	})
	t.Run("Scheduler", func(t *testing.T) {
		providertest.TestScheduler(t, providertest.SchedulerHarness{New: schedulerSetup(nil)})
	})
	t.Run("Scheduler with a circuit breaker", func(t *testing.T) {
		providertest.TestScheduler(t, providertest.SchedulerHarness{New: schedulerSetup(&fake.Options{CircuitBreaker: 3})})
	})
	t.Run("Notifier", func(t *testing.T) {
		providertest.TestNotifier(t, func(t *testing.T) providers.Notifier { return fake.New(nil).Notifier() })
	})
}

func schedulerSetup(opts *fake.Options) func(t *testing.T) providertest.SchedulerSetup {
	return func(t *testing.T) providertest.SchedulerSetup {
		rack := fake.New(opts)
		img := rack.Push("app", "v1", &fake.ImageConfig{Cmd: []string{"serve"}})
		crash := rack.Push("app", "crash", &fake.ImageConfig{Cmd: []string{"crash"}})
		rack.CrashLoop(crash.Digest)
		rack.ExitCode("migrate --all", 3, "migrated 3 tables", "done")
		return providertest.SchedulerSetup{
			Scheduler: rack.Scheduler(),
			Image:     img,
			Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}, {Name: "worker", Count: 1}},
			Crash:     &crash,
			Balancer:  rack.Balancer(),
			Logs:      rack.Logs(),
			Run:       &providertest.RunCase{Command: []string{"migrate", "--all"}, Output: "done", ExitCode: 3},
		}
	}
}

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// world is a rack with an image and a route of app "shop", ready to
// apply releases of one bound web process.
type world struct {
	rack  *fake.Rack
	img   providers.Image
	route providers.Route
}

func newWorld(t *testing.T, opts *fake.Options) *world {
	t.Helper()
	rack := fake.New(opts)
	img := rack.Push("shop", "v1", &fake.ImageConfig{Entrypoint: []string{"/bin/shop"}, Cmd: []string{"serve"}})
	rt, err := rack.Balancer().EnsureRoute(t.Context(), providers.RouteSpec{App: "shop", Process: "web", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	return &world{rack: rack, img: img, route: rt}
}

func (w *world) desired(release string, count int) providers.Desired {
	return providers.Desired{
		App: "shop", Release: release, Token: release, Image: w.img,
		Env:       map[string]string{"API_KEY": "s3cr3t-value"},
		Secret:    []string{"API_KEY"},
		Processes: []providers.Process{{Name: "web", Count: count, Port: 8080}},
		Bindings:  map[string][]providers.Binding{"web": {w.route.Binding}},
	}
}

func (w *world) apply(t *testing.T, d providers.Desired) providers.Rollout {
	t.Helper()
	ro, err := w.rack.Scheduler().Apply(t.Context(), d)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return ro
}

// observation is the part of a Status and a Health call that the step
// model determines.
type observation struct {
	Release string
	Rollout providers.RolloutState
	Reason  string
	Tasks   []string // "id state release [exit reason]"
	Targets []string // "target state"
}

func (w *world) observe(t *testing.T) observation {
	t.Helper()
	st, err := w.rack.Scheduler().Status(t.Context(), "shop")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	o := observation{Release: st.Release}
	if len(st.Rollouts) > 0 {
		o.Rollout, o.Reason = st.Rollouts[0].State, st.Rollouts[0].Reason
	}
	for _, tk := range st.Tasks {
		s := fmt.Sprintf("%s %s %s", tk.ID, tk.State, tk.Release)
		if tk.State == providers.TaskStopped {
			exit := "-"
			if tk.ExitCode != nil {
				exit = fmt.Sprint(*tk.ExitCode)
			}
			s += fmt.Sprintf(" [%s %s]", exit, tk.Reason)
		}
		o.Tasks = append(o.Tasks, s)
	}
	health, err := w.rack.Balancer().Health(t.Context(), w.route.ID)
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	for _, th := range health {
		o.Targets = append(o.Targets, fmt.Sprintf("%s %s", th.Target, th.State))
	}
	return o
}

func TestRolloutStepModel(t *testing.T) {
	w := newWorld(t, &fake.Options{Now: fake.Stepped(epoch, time.Second)})
	type step struct {
		apply string // release to apply before observing, if any
		want  observation
	}
	const (
		t1 = "shop-web-1 "
		t2 = "shop-web-2 "
	)
	steps := []step{
		{apply: "r1", want: observation{Rollout: "in-progress", Tasks: []string{t1 + "pending r1"}, Targets: []string{"10.0.0.1:8080 initial"}}},
		{want: observation{Rollout: "in-progress", Tasks: []string{t1 + "running r1"}, Targets: []string{"10.0.0.1:8080 healthy"}}},
		{want: observation{Rollout: "in-progress", Tasks: []string{t1 + "running r1"}, Targets: []string{"10.0.0.1:8080 healthy"}}},
		{want: observation{Release: "r1", Rollout: "completed", Tasks: []string{t1 + "running r1"}, Targets: []string{"10.0.0.1:8080 healthy"}}},
		{want: observation{Release: "r1", Rollout: "completed", Tasks: []string{t1 + "running r1"}, Targets: []string{"10.0.0.1:8080 healthy"}}},
		{apply: "r2", want: observation{Release: "r1", Rollout: "in-progress",
			Tasks:   []string{t1 + "running r1", t2 + "pending r2"},
			Targets: []string{"10.0.0.1:8080 healthy", "10.0.0.2:8080 initial"}}},
		{want: observation{Release: "r1", Rollout: "in-progress",
			Tasks:   []string{t1 + "running r1", t2 + "running r2"},
			Targets: []string{"10.0.0.1:8080 healthy", "10.0.0.2:8080 healthy"}}},
		{want: observation{Release: "r1", Rollout: "in-progress",
			Tasks:   []string{t1 + "running r1", t2 + "running r2"},
			Targets: []string{"10.0.0.1:8080 draining", "10.0.0.2:8080 healthy"}}},
		{want: observation{Release: "r2", Rollout: "completed",
			Tasks:   []string{t2 + "running r2", t1 + "stopped r1 [0 scaled down by rollout-2]"},
			Targets: []string{"10.0.0.2:8080 healthy"}}},
	}
	for i, s := range steps {
		if s.apply != "" {
			w.apply(t, w.desired(s.apply, 1))
		}
		if diff := cmp.Diff(s.want, w.observe(t)); diff != "" {
			t.Fatalf("observation %d (-want +got):\n%s", i+1, diff)
		}
	}

	// Every task wrote its start line, at the rack's deterministic time.
	page, err := w.rack.Logs().Read(t.Context(), providers.LogQuery{App: "shop"}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []providers.LogEntry{
		{App: "shop", Stream: "shop-web-1", Process: "web", Release: "r1", Message: "starting /bin/shop serve"},
		{App: "shop", Stream: "shop-web-2", Process: "web", Release: "r2", Message: "starting /bin/shop serve"},
	}
	if diff := cmp.Diff(want, page.Entries, cmpopts.IgnoreFields(providers.LogEntry{}, "ID", "Time")); diff != "" {
		t.Errorf("log entries (-want +got):\n%s", diff)
	}
	if !page.Entries[0].Time.After(epoch) || !page.Entries[0].Time.Before(page.Entries[1].Time) {
		t.Errorf("log times %v, %v: want increasing times after %v from the stepped clock", page.Entries[0].Time, page.Entries[1].Time, epoch)
	}
}

func TestScriptedRolloutFaults(t *testing.T) {
	const observations = 12
	tests := []struct {
		name   string
		opts   *fake.Options
		script func(w *world)
		want   observation // after r1 completed, r2 applied and observed 12 times
	}{
		{
			name:   "CrashLoop keeps the rollout in progress while tasks keep crashing",
			script: func(w *world) { w.rack.CrashLoop("r2") },
			want: observation{Release: "r1", Rollout: "in-progress",
				Tasks: []string{
					"shop-web-1 running r1",
					"shop-web-7 stopped r2 [2 exit status 2]", "shop-web-6 stopped r2 [2 exit status 2]",
					"shop-web-5 stopped r2 [2 exit status 2]", "shop-web-4 stopped r2 [2 exit status 2]",
					"shop-web-3 stopped r2 [2 exit status 2]", "shop-web-2 stopped r2 [2 exit status 2]",
				},
				Targets: []string{"10.0.0.1:8080 healthy"}},
		},
		{
			name:   "CrashLoop with a circuit breaker fails the rollout and keeps the old tasks",
			opts:   &fake.Options{CircuitBreaker: 2},
			script: func(w *world) { w.rack.CrashLoop(w.img.Digest) },
			want: observation{Release: "r1", Rollout: "failed", Reason: "circuit breaker: 2 tasks failed to start",
				Tasks: []string{
					"shop-web-1 running r1",
					"shop-web-3 stopped r2 [2 exit status 2]", "shop-web-2 stopped r2 [2 exit status 2]",
				},
				Targets: []string{"10.0.0.1:8080 healthy"}},
		},
		{
			name:   "FailHealth stops the rollout at the drain step with unhealthy targets",
			script: func(w *world) { w.rack.FailHealth("r2") },
			want: observation{Release: "r1", Rollout: "in-progress",
				Tasks:   []string{"shop-web-1 running r1", "shop-web-2 running r2"},
				Targets: []string{"10.0.0.1:8080 healthy", "10.0.0.2:8080 unhealthy"}},
		},
		{
			name:   "NeverConverge keeps new tasks pending",
			script: func(w *world) { w.rack.NeverConverge("shop") },
			want: observation{Release: "r1", Rollout: "in-progress",
				Tasks:   []string{"shop-web-1 running r1"},
				Targets: []string{"10.0.0.1:8080 healthy"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts)
			w.apply(t, w.desired("r1", 1))
			for range 4 {
				w.observe(t)
			}
			tc.script(w)
			w.apply(t, w.desired("r2", 1))
			var got observation
			for range observations {
				got = w.observe(t)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("after %d observations (-want +got):\n%s", observations, diff)
			}
		})
	}
}

func TestCrashedTasksWriteTheirPanic(t *testing.T) {
	w := newWorld(t, nil)
	w.rack.CrashLoop("r1")
	w.apply(t, w.desired("r1", 1))
	w.observe(t)
	w.observe(t)
	page, err := w.rack.Logs().Read(t.Context(), providers.LogQuery{App: "shop", Stream: "shop-web-1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Entries {
		got = append(got, e.Message)
	}
	if diff := cmp.Diff([]string{"starting /bin/shop serve", "panic: boom"}, got); diff != "" {
		t.Errorf("crashed task's log (-want +got):\n%s", diff)
	}
}

func TestImageNeverPushedCannotBePulled(t *testing.T) {
	w := newWorld(t, nil)
	d := w.desired("r1", 1)
	d.Image.Digest = "sha256:" + strings.Repeat("ab", 32)
	w.apply(t, d)
	w.observe(t)
	want := observation{Rollout: "in-progress",
		Tasks:   []string{"shop-web-1 stopped r1 [- CannotPullContainerError: registry.fake.test/shop@sha256:" + strings.Repeat("ab", 32) + ": not found]"},
		Targets: []string{}}
	if diff := cmp.Diff(want, w.observe(t), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("observation (-want +got):\n%s", diff)
	}
}

func TestCancelRolloutKeepsTheOldTasks(t *testing.T) {
	w := newWorld(t, nil)
	w.apply(t, w.desired("r1", 1))
	for range 4 {
		w.observe(t)
	}
	ro := w.apply(t, w.desired("r2", 1))
	for range 3 { // started, running, draining
		w.observe(t)
	}
	if err := w.rack.Scheduler().CancelRollout(t.Context(), "shop", ro.ID); err != nil {
		t.Fatal(err)
	}
	want := observation{Release: "r1", Rollout: "canceled", Reason: "canceled",
		Tasks:   []string{"shop-web-1 running r1", "shop-web-2 stopped r2 [- rollout-2 canceled: canceled]"},
		Targets: []string{"10.0.0.1:8080 healthy"}}
	if diff := cmp.Diff(want, w.observe(t)); diff != "" {
		t.Errorf("observation after cancel (-want +got):\n%s", diff)
	}
}

func TestRunTaskScripts(t *testing.T) {
	tests := []struct {
		name    string
		script  func(r *fake.Rack, img providers.Image)
		token   string
		command []string
		want    []string // task states over RunTask and two GetTasks
		output  []string
	}{
		{
			name:    "unscripted commands write nothing and exit 0",
			command: []string{"true"},
			want:    []string{"pending", "running", "stopped 0 exit status 0"},
		},
		{
			name: "ExitCode matches the joined command",
			script: func(r *fake.Rack, _ providers.Image) {
				r.ExitCode("bin/migrate --fast", 3, "migrating", "failed: no table")
			},
			command: []string{"bin/migrate", "--fast"},
			want:    []string{"pending", "running", "stopped 3 exit status 3"},
			output:  []string{"migrating", "failed: no table"},
		},
		{
			name:    "ExitCode matches the token",
			script:  func(r *fake.Rack, _ providers.Image) { r.ExitCode("run-42", 1, "bye") },
			token:   "run-42",
			command: []string{"anything"},
			want:    []string{"pending", "running", "stopped 1 exit status 1"},
			output:  []string{"bye"},
		},
		{
			name:    "a crash-looping image panics",
			script:  func(r *fake.Rack, img providers.Image) { r.CrashLoop(img.Digest) },
			command: []string{"anything"},
			want:    []string{"pending", "running", "stopped 2 exit status 2"},
			output:  []string{"panic: boom"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rack := fake.New(nil)
			img := rack.Push("shop", "v1", nil)
			if tc.script != nil {
				tc.script(rack, img)
			}
			s := rack.Scheduler()
			tk, err := s.RunTask(t.Context(), providers.RunSpec{App: "shop", Release: "r1", Token: tc.token, Image: img, Process: providers.Process{Name: "web"}, Command: tc.command})
			if err != nil {
				t.Fatal(err)
			}
			states := []string{taskState(tk)}
			for range 2 {
				if tk, err = s.GetTask(t.Context(), "shop", tk.ID); err != nil {
					t.Fatal(err)
				}
				states = append(states, taskState(tk))
			}
			if diff := cmp.Diff(tc.want, states); diff != "" {
				t.Errorf("task states (-want +got):\n%s", diff)
			}
			page, err := rack.Logs().Read(t.Context(), providers.LogQuery{App: "shop", Stream: tk.ID}, "")
			if err != nil {
				t.Fatal(err)
			}
			var output []string
			for _, e := range page.Entries {
				output = append(output, e.Message)
			}
			if diff := cmp.Diff(tc.output, output); diff != "" {
				t.Errorf("task output (-want +got):\n%s", diff)
			}
		})
	}
}

func taskState(tk providers.Task) string {
	if tk.ExitCode == nil {
		return string(tk.State)
	}
	return fmt.Sprintf("%s %d %s", tk.State, *tk.ExitCode, tk.Reason)
}

func TestHooks(t *testing.T) {
	errInjected := errors.New("injected")
	tests := []struct {
		name  string
		hooks fake.Hooks
		// after Apply of r1 and one Status, what Status and the calls show
		wantApplyErr  error
		wantStatusErr error
		wantCalls     []string
	}{
		{
			name: "a typed hook fails a call before it has any effect",
			hooks: fake.Hooks{Scheduler: fake.SchedulerHooks{
				Apply: func(ctx context.Context, d providers.Desired, next func(context.Context, providers.Desired) (providers.Rollout, error)) (providers.Rollout, error) {
					return providers.Rollout{}, errInjected
				},
			}},
			wantApplyErr:  errInjected,
			wantStatusErr: providers.ErrNotFound,
			wantCalls:     []string{"Scheduler.Apply(shop) = injected", "Scheduler.Status(shop) = fake scheduler: status of app \"shop\": not found"},
		},
		{
			name: "a typed hook loses the response of a call that took effect",
			hooks: fake.Hooks{Scheduler: fake.SchedulerHooks{
				Apply: func(ctx context.Context, d providers.Desired, next func(context.Context, providers.Desired) (providers.Rollout, error)) (providers.Rollout, error) {
					if _, err := next(ctx, d); err != nil {
						return providers.Rollout{}, err
					}
					return providers.Rollout{}, fmt.Errorf("connection reset: %w", providers.ErrUnavailable)
				},
			}},
			wantApplyErr: providers.ErrUnavailable,
			wantCalls:    []string{"Scheduler.Apply(shop) = connection reset: unavailable", "Scheduler.Status(shop)"},
		},
		{
			name: "the Call hook injects into any method by name",
			hooks: fake.Hooks{Call: func(ctx context.Context, c fake.Call, next func(context.Context) error) error {
				if c.Name() == "Scheduler.Status" {
					return fmt.Errorf("rate exceeded: %w", providers.ErrThrottled)
				}
				return next(ctx)
			}},
			wantStatusErr: providers.ErrThrottled,
			wantCalls:     []string{"Scheduler.Apply(shop)", "Scheduler.Status(shop) = rate exceeded: throttled"},
		},
		{
			name: "the Call hook runs around the typed hook",
			hooks: fake.Hooks{
				Call: func(ctx context.Context, c fake.Call, next func(context.Context) error) error {
					if err := next(ctx); err != nil {
						return fmt.Errorf("wrapped by Call: %w", err)
					}
					return nil
				},
				Scheduler: fake.SchedulerHooks{
					Status: func(ctx context.Context, app string, next func(context.Context, string) (providers.AppStatus, error)) (providers.AppStatus, error) {
						return providers.AppStatus{}, errInjected
					},
				},
			},
			wantStatusErr: errInjected,
			wantCalls:     []string{"Scheduler.Apply(shop)", "Scheduler.Status(shop) = wrapped by Call: injected"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rack := fake.New(&fake.Options{Hooks: tc.hooks})
			img := rack.Push("shop", "v1", nil)
			s := rack.Scheduler()
			_, err := s.Apply(t.Context(), providers.Desired{App: "shop", Release: "r1", Token: "t1", Image: img})
			if !errors.Is(err, tc.wantApplyErr) || (err == nil) != (tc.wantApplyErr == nil) {
				t.Errorf("Apply: got %v, want %v", err, tc.wantApplyErr)
			}
			_, err = s.Status(t.Context(), "shop")
			if !errors.Is(err, tc.wantStatusErr) || (err == nil) != (tc.wantStatusErr == nil) {
				t.Errorf("Status: got %v, want %v", err, tc.wantStatusErr)
			}
			var calls []string
			for _, c := range rack.Calls() {
				calls = append(calls, c.String())
			}
			if diff := cmp.Diff(tc.wantCalls, calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetHooksChangesLaterCalls(t *testing.T) {
	rack := fake.New(nil)
	st := rack.Store()
	if _, err := st.Put(t.Context(), "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	rack.SetHooks(fake.Hooks{Store: fake.StoreHooks{
		Get: func(ctx context.Context, key string, next func(context.Context, string) (providers.Doc, error)) (providers.Doc, error) {
			d, err := next(ctx, key)
			d.Value = []byte("changed by a hook")
			return d, err
		},
	}})
	d, err := st.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("changed by a hook", string(d.Value)); diff != "" {
		t.Errorf("value (-want +got):\n%s", diff)
	}
}

func TestFailAndThrottle(t *testing.T) {
	errDown := fmt.Errorf("table offline: %w", providers.ErrUnavailable)
	tests := []struct {
		name   string
		script func(r *fake.Rack)
		want   []error // outcomes of successive Store.Put calls (nil means success)
	}{
		{"Throttle fails the next n calls with ErrThrottled", func(r *fake.Rack) { r.Throttle("Store.Put", 2) },
			[]error{providers.ErrThrottled, providers.ErrThrottled, nil, nil}},
		{"Fail returns the given error", func(r *fake.Rack) { r.Fail("Store.Put", errDown, 1) },
			[]error{errDown, nil, nil}},
		{"scripts of one method queue up", func(r *fake.Rack) { r.Fail("Store.Put", errDown, 1); r.Throttle("Store.Put", 1) },
			[]error{errDown, providers.ErrThrottled, nil}},
		{"n <= 0 clears the method's scripts", func(r *fake.Rack) { r.Throttle("Store.Put", 5); r.Fail("Store.Put", nil, 0) },
			[]error{nil, nil}},
		{"scripts of other methods do not apply", func(r *fake.Rack) { r.Throttle("Store.Get", 5) },
			[]error{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rack := fake.New(nil)
			tc.script(rack)
			for i, want := range tc.want {
				_, err := rack.Store().Put(t.Context(), "k", []byte("v"), providers.AnyVersion)
				if (err == nil) != (want == nil) || !errors.Is(err, want) {
					t.Errorf("Put %d: got %v, want %v", i, err, want)
				}
				if errors.Is(want, providers.ErrThrottled) && !providers.IsTemporary(err) {
					t.Errorf("Put %d: throttling error %v is not temporary", i, err)
				}
			}
		})
	}
}

func TestFailOfAnUnknownMethodPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("Throttle of an unknown method did not panic")
		}
	}()
	fake.New(nil).Throttle("Scheduler.Deploy", 1)
}

func TestCallsRecordEveryCallInOrderWithoutSecrets(t *testing.T) {
	w := newWorld(t, nil)
	w.rack.ResetCalls()
	ctx := t.Context()
	w.apply(t, w.desired("r1", 1))
	w.rack.Scheduler().Status(ctx, "shop")
	w.rack.Store().Put(ctx, "apps/shop", []byte(`{"env":{"API_KEY":"s3cr3t-value"}}`), 0)
	w.rack.Registry().Resolve(ctx, "shop:v9")
	w.rack.Logs().Write(ctx, []providers.LogEntry{{App: "shop", Stream: providers.StreamPlatform, Message: "deploying"}})
	w.rack.Notifier().Notify(ctx, providers.Notification{Kind: providers.NotifyDeployStarted, App: "shop", Release: "r1"})

	got := w.rack.Calls()
	want := []fake.Call{
		{Provider: "Scheduler", Method: "Apply", Key: "shop"},
		{Provider: "Scheduler", Method: "Status", Key: "shop"},
		{Provider: "Store", Method: "Put", Key: "apps/shop"},
		{Provider: "Registry", Method: "Resolve", Key: "shop:v9", Err: providers.ErrNotFound},
		{Provider: "Logs", Method: "Write", Key: "shop"},
		{Provider: "Notifier", Method: "Notify", Key: "shop"},
	}
	opts := []cmp.Option{cmpopts.IgnoreFields(fake.Call{}, "Args"), cmpopts.EquateErrors()}
	if diff := cmp.Diff(want, got, opts...); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, got); strings.Contains(s, "s3cr3t") {
			t.Errorf("calls printed with %s reveal a secret: %s", verb, s)
		}
	}
	if d, ok := got[0].Args[0].(providers.Desired); !ok || d.Release != "r1" {
		t.Errorf("Apply's recorded Args[0] = %v, want the Desired of r1", got[0].Args[0])
	}

	w.rack.ResetCalls()
	if got := w.rack.Calls(); len(got) != 0 {
		t.Errorf("Calls after ResetCalls = %v, want none", got)
	}
}

func TestNotificationsAreRecorded(t *testing.T) {
	rack := fake.New(nil)
	n := providers.Notification{Kind: providers.NotifyDeployFailed, App: "shop", Release: "r2", Previous: "r1", Reason: "crash loop", RolledBack: true, Time: epoch}
	if err := rack.Notifier().Notify(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	err := rack.Notifier().Notify(t.Context(), providers.Notification{App: "shop"})
	if !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("Notify without a kind: got %v, want ErrInvalid", err)
	}
	if diff := cmp.Diff([]providers.Notification{n}, rack.Notifications()); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}

func TestSteppedClock(t *testing.T) {
	now := fake.Stepped(epoch, time.Minute)
	var got []time.Time
	for range 3 {
		got = append(got, now())
	}
	want := []time.Time{epoch, epoch.Add(time.Minute), epoch.Add(2 * time.Minute)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stepped clock (-want +got):\n%s", diff)
	}
}

func TestRackRunsOnSynctestTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rack := fake.New(nil)
		ctx, cancel := context.WithCancel(t.Context())
		var tailed []string
		done := make(chan struct{})
		go func() {
			defer close(done)
			for e, err := range rack.Logs().Tail(ctx, providers.LogQuery{App: "shop"}) {
				if err != nil {
					return
				}
				tailed = append(tailed, e.Message)
			}
		}()
		synctest.Wait() // the tail is subscribed and blocked
		time.Sleep(time.Hour)
		if err := rack.Logs().Write(t.Context(), []providers.LogEntry{{App: "shop", Stream: "s", Message: "an hour later"}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		cancel()
		<-done
		if diff := cmp.Diff([]string{"an hour later"}, tailed); diff != "" {
			t.Errorf("tailed (-want +got):\n%s", diff)
		}
		page, err := rack.Logs().Read(t.Context(), providers.LogQuery{App: "shop"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := page.Entries[0].Time; !got.Equal(time.Now()) {
			t.Errorf("entry time %v, want the bubble's clock %v", got, time.Now())
		}
	})
}

func TestConcurrentDeploysAndReads(t *testing.T) {
	rack := fake.New(nil)
	img := rack.Push("shop", "v1", nil)
	var wg sync.WaitGroup
	for i := range 4 {
		app := fmt.Sprintf("app%d", i)
		wg.Go(func() {
			for r := range 3 {
				rel := fmt.Sprintf("r%d", r)
				d := providers.Desired{App: app, Release: rel, Token: rel, Image: img, Processes: []providers.Process{{Name: "web", Count: 2}}}
				if _, err := rack.Scheduler().Apply(t.Context(), d); err != nil {
					t.Error(err)
					return
				}
				for range 4 {
					if _, err := rack.Scheduler().Status(t.Context(), app); err != nil {
						t.Error(err)
						return
					}
				}
				if _, err := rack.Logs().Read(t.Context(), providers.LogQuery{App: app}, ""); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got, err := rack.Scheduler().StatusMany(t.Context(), []string{"app0", "app1", "app2", "app3"})
	if err != nil {
		t.Fatal(err)
	}
	for app, st := range got {
		if st.Release != "r2" {
			t.Errorf("%s: Release %q, want r2", app, st.Release)
		}
	}
	if len(got) != 4 {
		t.Errorf("StatusMany reported %d apps, want 4", len(got))
	}
}

func TestStageStepModel(t *testing.T) {
	w := newWorld(t, nil)
	set, err := w.rack.Balancer().EnsureTargetSet(t.Context(), w.route.ID, "g")
	if err != nil {
		t.Fatal(err)
	}
	w.apply(t, w.desired("r1", 1))
	for range 4 {
		w.observe(t)
	}
	s := w.rack.Scheduler()
	d := w.desired("r2", 1)
	d.Bindings = map[string][]providers.Binding{"web": {set}}
	if _, err := s.Stage(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	const (
		t1 = "shop-web-1 "
		t2 = "shop-web-2 "
	)
	type step struct {
		promote bool // call PromoteStage before observing
		want    observation
	}
	steps := []step{
		{want: observation{Release: "r1", Rollout: "in-progress",
			Tasks:   []string{t1 + "running r1", t2 + "pending r2"},
			Targets: []string{"10.0.0.1:8080 healthy", "10.0.0.2:8080 initial"}}},
		{want: observation{Release: "r1", Rollout: "in-progress",
			Tasks:   []string{t1 + "running r1", t2 + "running r2"},
			Targets: []string{"10.0.0.1:8080 healthy", "10.0.0.2:8080 healthy"}}},
		{want: observation{Release: "r1", Rollout: "completed",
			Tasks:   []string{t1 + "running r1", t2 + "running r2"},
			Targets: []string{"10.0.0.1:8080 healthy", "10.0.0.2:8080 healthy"}}},
		{promote: true, want: observation{Release: "r1", Rollout: "in-progress",
			Tasks:   []string{t1 + "running r1", t2 + "running r2"},
			Targets: []string{"10.0.0.1:8080 draining", "10.0.0.2:8080 healthy"}}},
		{want: observation{Release: "r2", Rollout: "completed",
			Tasks:   []string{t2 + "running r2", t1 + "stopped r1 [0 scaled down by rollout-2]"},
			Targets: []string{"10.0.0.2:8080 healthy"}}},
	}
	for i, st := range steps {
		if st.promote {
			if err := s.PromoteStage(t.Context(), "shop"); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(st.want, w.observe(t)); diff != "" {
			t.Fatalf("observation %d (-want +got):\n%s", i+1, diff)
		}
	}
	health, err := w.rack.Balancer().Health(t.Context(), w.route.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []providers.TargetHealth{{Target: "10.0.0.2:8080", Set: "g", State: providers.TargetHealthy}}
	if diff := cmp.Diff(want, health); diff != "" {
		t.Errorf("targets after promotion (-want +got):\n%s", diff)
	}
}

func TestStageIsDiscardedBy(t *testing.T) {
	tests := []struct {
		name   string
		end    func(t *testing.T, w *world, staged providers.Rollout)
		reason string
	}{
		{"DiscardStage", func(t *testing.T, w *world, _ providers.Rollout) {
			if err := w.rack.Scheduler().DiscardStage(t.Context(), "shop"); err != nil {
				t.Fatal(err)
			}
		}, "discarded"},
		{"CancelRollout of the staged rollout", func(t *testing.T, w *world, staged providers.Rollout) {
			if err := w.rack.Scheduler().CancelRollout(t.Context(), "shop", staged.ID); err != nil {
				t.Fatal(err)
			}
		}, "canceled"},
		{"Apply of a new serving release", func(t *testing.T, w *world, _ providers.Rollout) {
			w.apply(t, w.desired("r3", 1))
		}, "superseded by rollout-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			w.apply(t, w.desired("r1", 1))
			for range 4 {
				w.observe(t)
			}
			staged, err := w.rack.Scheduler().Stage(t.Context(), w.desired("r2", 1))
			if err != nil {
				t.Fatal(err)
			}
			w.observe(t)
			w.observe(t)
			tc.end(t, w, staged)
			st, err := w.rack.Scheduler().Status(t.Context(), "shop")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tk := range st.Tasks {
				if tk.Release == "r2" {
					got = append(got, fmt.Sprintf("%s %s", tk.State, tk.Reason))
				}
			}
			if diff := cmp.Diff([]string{"stopped rollout-2 canceled: " + tc.reason}, got); diff != "" {
				t.Errorf("staged tasks (-want +got):\n%s", diff)
			}
			if err := w.rack.Scheduler().PromoteStage(t.Context(), "shop"); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("PromoteStage after the stage ended: got %v, want ErrNotFound", err)
			}
		})
	}
}
