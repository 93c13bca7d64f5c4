package convox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

func TestBadInputHasNoSideEffects(t *testing.T) {
	long := strings.Repeat("a", providers.MaxAppName+1)
	cases := []struct {
		name string
		run  func(ctx context.Context, w *world) error
		want error
	}{
		{"app name with capitals is invalid", func(ctx context.Context, w *world) error {
			_, err := w.c.CreateApp(ctx, "Web", nil)
			return err
		}, providers.ErrInvalid},
		{"app name longer than the AWS-derived limit is invalid", func(ctx context.Context, w *world) error {
			_, err := w.c.CreateApp(ctx, long, nil)
			return err
		}, providers.ErrInvalid},
		{"app on an unknown named balancer is invalid", func(ctx context.Context, w *world) error {
			_, err := w.c.CreateApp(ctx, "web", &convox.AppSpec{Balancer: "alb"})
			return err
		}, providers.ErrInvalid},
		{"release of a missing app is not found", func(ctx context.Context, w *world) error {
			_, err := w.c.App("nope").CreateRelease(ctx, webSpec("web:v1"))
			return err
		}, providers.ErrNotFound},
		{"process name too long for derived resource names is invalid", func(ctx context.Context, w *world) error {
			spec := webSpec("web:v1")
			spec.Processes[0].Name = "averyverylongname"
			_, err := w.c.App("web").CreateRelease(ctx, spec)
			return err
		}, providers.ErrInvalid},
		{"negative count is invalid", func(ctx context.Context, w *world) error {
			spec := webSpec("web:v1")
			spec.Processes[0].Count = -1
			_, err := w.c.App("web").CreateRelease(ctx, spec)
			return err
		}, providers.ErrInvalid},
		{"a variable both plain and secret is invalid", func(ctx context.Context, w *world) error {
			spec := webSpec("web:v1")
			spec.Secrets = map[string]convox.Secret{"MODE": "x"}
			_, err := w.c.App("web").CreateRelease(ctx, spec)
			return err
		}, providers.ErrInvalid},
		{"malformed env name is invalid", func(ctx context.Context, w *world) error {
			spec := webSpec("web:v1")
			spec.Env = map[string]string{"1BAD": "x"}
			_, err := w.c.App("web").CreateRelease(ctx, spec)
			return err
		}, providers.ErrInvalid},
		{"https without a certificate is invalid", func(ctx context.Context, w *world) error {
			spec := webSpec("web:v1")
			spec.Processes[0].Route.Protocol = providers.HTTPS
			_, err := w.c.App("web").CreateRelease(ctx, spec)
			return err
		}, providers.ErrInvalid},
		{"a missing image tag is not found", func(ctx context.Context, w *world) error {
			_, err := w.c.App("web").CreateRelease(ctx, webSpec("web:missing"))
			return err
		}, providers.ErrNotFound},
		{"an image without entrypoint or command for a process without command is invalid", func(ctx context.Context, w *world) error {
			w.rack.Push("web", "bare", &fake.ImageConfig{})
			spec := webSpec("web:bare")
			_, err := w.c.App("web").CreateRelease(ctx, spec)
			return err
		}, providers.ErrInvalid},
		{"promoting a missing release is not found", func(ctx context.Context, w *world) error {
			_, err := w.c.App("web").Promote(ctx, "R9", nil)
			return err
		}, providers.ErrNotFound},
		{"a malformed release ID is invalid", func(ctx context.Context, w *world) error {
			_, err := w.c.App("web").Promote(ctx, "latest", nil)
			return err
		}, providers.ErrInvalid},
		{"the first release needs an image", func(ctx context.Context, w *world) error {
			_, err := w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Processes: webSpec("").Processes})
			return err
		}, providers.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			if _, err := w.c.CreateApp(ctx, "web", nil); err != nil {
				t.Fatal(err)
			}
			w.rack.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
			w.rack.ResetCalls()
			err := tc.run(ctx, w)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// A deploy call reports a *DeployError that changed nothing;
			// any other call an *Error naming the call.
			var de *convox.DeployError
			var ce *convox.Error
			switch {
			case errors.As(err, &de):
				if de.Changed || de.App != "web" {
					t.Errorf("err = %#v, want a *DeployError of web that changed nothing", err)
				}
			case !errors.As(err, &ce) || ce.Op == "":
				t.Errorf("err = %#v, want a *convox.Error naming the call", err)
			}
			for _, c := range w.rack.Calls() {
				switch c.Name() {
				case "Store.Put", "Store.Delete", "Scheduler.Apply", "Balancer.EnsureRoute", "Logs.Write":
					t.Errorf("bad input caused a side effect: %s", c)
				}
			}
		})
	}
}

func TestApps(t *testing.T) {
	t.Run("create, list in name order, get, and reject duplicates", func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		for _, n := range []string{"zeta", "alpha", "mid"} {
			if _, err := w.c.CreateApp(ctx, n, nil); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		for a, err := range w.c.Apps(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, a.Name)
		}
		if diff := cmp.Diff([]string{"alpha", "mid", "zeta"}, names); diff != "" {
			t.Errorf("apps (-want +got):\n%s", diff)
		}
		_, err := w.c.CreateApp(ctx, "mid", nil)
		if !errors.Is(err, providers.ErrAlreadyExists) {
			t.Errorf("duplicate CreateApp = %v, want ErrAlreadyExists", err)
		}
		a, err := w.c.App("alpha").Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := convox.AppSpec{Registry: convox.DefaultName, Scheduler: convox.DefaultName, Balancer: convox.DefaultName, Logs: convox.DefaultName}
		if diff := cmp.Diff(want, a.Providers); diff != "" {
			t.Errorf("resolved providers (-want +got):\n%s", diff)
		}
		if _, err := w.c.App("nope").Get(ctx); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("GetApp(nope) = %v, want ErrNotFound", err)
		}
	})

	t.Run("delete tears down scheduler, routes, logs and history, idempotently", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			app, _ := w.c.App("web").Get(ctx)
			if err := w.c.DeleteApp(ctx, "web"); err != nil {
				t.Fatalf("DeleteApp: %v", err)
			}
			if _, err := w.c.App("web").Get(ctx); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("app still exists: %v", err)
			}
			if _, err := w.rack.Scheduler().Status(ctx, "web"); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("scheduler still has the app: %v", err)
			}
			if _, err := w.rack.Balancer().Health(ctx, "web-web"); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("route still exists (endpoint %s): %v", app.Endpoints["web"], err)
			}
			page, err := w.rack.Store().List(ctx, "", providers.ListOptions{})
			if err != nil || len(page.Docs) != 0 {
				t.Errorf("store keeps %d documents after delete (err %v)", len(page.Docs), err)
			}
			logs, _ := w.rack.Logs().Read(ctx, providers.LogQuery{App: "web"}, "")
			if len(logs.Entries) != 0 {
				t.Errorf("logs keep %d entries", len(logs.Entries))
			}
			if err := w.c.DeleteApp(ctx, "web"); !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("second DeleteApp = %v, want ErrNotFound", err)
			}
		})
	})

	t.Run("delete resumes after a failure midway", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			w.rack.Fail("Logs.Delete", fmt.Errorf("fake: %w", providers.ErrUnavailable), 1)
			if err := w.c.DeleteApp(ctx, "web"); !errors.Is(err, providers.ErrUnavailable) {
				t.Fatalf("first DeleteApp = %v, want ErrUnavailable", err)
			}
			if _, err := w.c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v1"}); !errors.Is(err, providers.ErrConflict) {
				t.Errorf("release of an app being deleted = %v, want ErrConflict", err)
			}
			if err := w.c.DeleteApp(ctx, "web"); err != nil {
				t.Fatalf("second DeleteApp: %v", err)
			}
		})
	})
}

// plainBalancer hides every optional interface of the balancer it wraps.
type plainBalancer struct{ providers.Balancer }

// plainScheduler hides every optional interface of the scheduler it wraps.
type plainScheduler struct{ providers.Scheduler }

func TestRackCheck(t *testing.T) {
	r := fake.New(nil)
	full := r.ConvoxRack()
	plain := full
	plain.Balancer = plainBalancer{r.Balancer()}
	plain.Scheduler = plainScheduler{r.Scheduler()}
	cases := []struct {
		name string
		rack convox.Rack
		caps []convox.Capability
		want error
	}{
		{"a complete rack passes", full, nil, nil},
		{"the fake offers every capability", full, []convox.Capability{convox.CapTaskRunner, convox.CapCanceler, convox.CapBatchStatus, convox.CapStager, convox.CapWeightShifter, convox.CapLogTailer, convox.CapImageLister, convox.CapImageDeleter}, nil},
		{"a balancer without weights refuses weighted strategies", plain, []convox.Capability{convox.CapWeightShifter}, providers.ErrUnimplemented},
		{"a scheduler without Stager refuses weighted strategies", plain, []convox.Capability{convox.CapStager}, providers.ErrUnimplemented},
		{"a scheduler without Stager fails even beside a weighted balancer", func() convox.Rack {
			rk := full
			rk.Scheduler = plainScheduler{r.Scheduler()}
			return rk
		}(), []convox.Capability{convox.CapWeightShifter, convox.CapStager}, providers.ErrUnimplemented},
		{"a scheduler without one-off tasks refuses runs", plain, []convox.Capability{convox.CapTaskRunner}, providers.ErrUnimplemented},
		{"a rack without a store is invalid", convox.Rack{Registry: r.Registry(), Scheduler: r.Scheduler(), Logs: r.Logs()}, nil, providers.ErrInvalid},
		{"two providers with one name are invalid", convox.Rack{
			Registry: r.Registry(), Scheduler: r.Scheduler(), Logs: r.Logs(), Store: r.Store(),
			Balancers: []convox.Named[providers.Balancer]{{Name: "a", Provider: r.Balancer()}, {Name: "a", Provider: r.Balancer()}},
		}, nil, providers.ErrInvalid},
		{"an unknown capability is invalid", full, []convox.Capability{"Teleport"}, providers.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rack.Check(tc.caps...)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Check = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("run on a scheduler without TaskRunner fails before starting anything", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			rk := w.rack.ConvoxRack()
			rk.Scheduler = plainScheduler{w.rack.Scheduler()}
			c, err := convox.New(rk, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.rack.ResetCalls()
			_, err = c.App("web").Run(ctx, "web", []string{"true"}, nil)
			if !errors.Is(err, providers.ErrUnimplemented) {
				t.Errorf("Run = %v, want ErrUnimplemented", err)
			}
			for _, call := range w.rack.Calls() {
				if call.Name() == "Scheduler.RunTask" {
					t.Errorf("RunTask was called")
				}
			}
		})
	})
}

func TestNamedProviders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		elb := fake.New(&fake.Options{BalancerName: "elb"})
		alb := fake.New(&fake.Options{BalancerName: "alb"})
		rk := elb.ConvoxRack()
		rk.Balancer = nil
		rk.Balancers = []convox.Named[providers.Balancer]{{Name: "elb", Provider: elb.Balancer()}, {Name: "alb", Provider: alb.Balancer()}}
		c, err := convox.New(rk, &convox.Options{PollInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		elb.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
		for _, a := range []struct{ name, balancer string }{{"first", ""}, {"second", "alb"}} {
			if _, err := c.CreateApp(ctx, a.name, &convox.AppSpec{Balancer: a.balancer}); err != nil {
				t.Fatal(err)
			}
		}
		first, _ := c.App("first").Get(ctx)
		second, _ := c.App("second").Get(ctx)
		if diff := cmp.Diff([]string{"elb", "alb"}, []string{first.Providers.Balancer, second.Providers.Balancer}); diff != "" {
			t.Errorf("balancers: the first named is the default (-want +got):\n%s", diff)
		}
		// Routes are made on the app's own balancer.
		spec := convox.ReleaseSpec{Image: "web:v1", Processes: []convox.Process{{Name: "web", Count: 1, Port: 80}}}
		var calls []string
		for _, r := range []*fake.Rack{elb, alb} {
			r.ResetCalls()
		}
		c.App("second").CreateRelease(ctx, spec)
		dep, err := c.App("second").Promote(ctx, "R1", nil)
		if err != nil {
			t.Fatal(err)
		}
		dep.Wait(ctx) // the alb fake runs no tasks (the elb fake's scheduler does), so only the route matters here
		for _, call := range alb.Calls() {
			calls = append(calls, call.Name())
		}
		if len(calls) == 0 || calls[0] != "Balancer.EnsureRoute" {
			t.Errorf("calls on alb = %v, want the route ensured there", calls)
		}
		for _, call := range elb.Calls() {
			if call.Name() == "Balancer.EnsureRoute" {
				t.Errorf("route of an alb app was ensured on elb")
			}
		}
	})
}

func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		w.deployV1(ctx)
		w.rack.ExitCode("migrate --all", 3, "migrating", "failed: table exists")
		var out bytes.Buffer
		res, err := w.c.App("web").Run(ctx, "web", []string{"migrate", "--all"}, &convox.RunOptions{Output: &out})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.ExitCode != 3 {
			t.Errorf("exit code %d, want 3", res.ExitCode)
		}
		if diff := cmp.Diff("migrating\nfailed: table exists\n", out.String()); diff != "" {
			t.Errorf("output (-want +got):\n%s", diff)
		}
		if _, err := w.c.App("web").Run(ctx, "nope", nil, nil); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("Run of a missing process = %v, want ErrNotFound", err)
		}
	})
}

func TestLogs(t *testing.T) {
	t.Run("filters by process, release and message", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			for _, e := range w.logs(ctx, convox.LogQuery{Process: "worker"}) {
				if e.Process != "worker" {
					t.Errorf("process filter let through %+v", e)
				}
			}
			got := w.logs(ctx, convox.LogQuery{Filter: "active and healthy"})
			if len(got) != 1 || got[0].Release != "R1" {
				t.Errorf("filter returned %+v, want the one activation line", got)
			}
			time.Sleep(time.Second)
			if n := len(w.logs(ctx, convox.LogQuery{Since: 500 * time.Millisecond})); n != 0 {
				t.Errorf("since 1ns returned %d old lines", n)
			}
		})
	})

	t.Run("follow with a context already ended yields nothing and no error", func(t *testing.T) {
		w := newWorld(t, nil)
		w.c.CreateApp(t.Context(), "web", nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for e, err := range w.c.App("web").Logs(ctx, convox.LogQuery{Follow: true}) {
			t.Errorf("yielded %+v, %v", e, err)
		}
	})

	t.Run("follow yields new lines once each and stops with the context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			w.deployV1(ctx)
			fctx, cancel := context.WithCancel(ctx)
			var got []string
			done := make(chan struct{})
			go func() {
				defer close(done)
				for e, err := range w.c.App("web").Logs(fctx, convox.LogQuery{Follow: true, Stream: providers.StreamPlatform}) {
					if err != nil {
						t.Errorf("follow: %v", err)
						return
					}
					got = append(got, e.Message)
				}
			}()
			time.Sleep(3 * time.Second)
			w.push("v2")
			if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Second)
			cancel()
			<-done
			want := []string{"promoting R1", "R1 is active and healthy", "promoting R2 (active: R1)", "R2 is active and healthy"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("followed lines (-want +got):\n%s", diff)
			}
		})
	})
}

func TestSecretsNeverLeak(t *testing.T) {
	const secret = "hunter2-do-not-print"
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		if _, err := w.c.CreateApp(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		w.push("v1")
		spec := webSpec("web:v1")
		spec.Secrets = map[string]convox.Secret{"DB_PASSWORD": secret}
		rel, err := w.c.App("web").Deploy(ctx, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.rack.CrashLoop(w.push("v2").Digest)
		_, deployErr := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
		if deployErr == nil {
			t.Fatal("crashing deploy succeeded")
		}
		_, runErr := w.c.App("web").Run(ctx, "web", []string{"env"}, nil)

		var texts []string
		add := func(format string, v any) { texts = append(texts, fmt.Sprintf(format, v)) }
		for _, e := range w.allEvents() {
			add("%v", e)
			add("%+v", e)
			add("%#v", e)
		}
		for _, err := range []error{deployErr, runErr} {
			if err != nil {
				add("%v", err)
				add("%+v", err)
				add("%#v", err)
			}
		}
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			add(f, rel)
			add(f, *rel)
			add(f, rel.Secrets)
		}
		b, _ := json.Marshal(rel)
		texts = append(texts, string(b))
		for _, e := range w.logs(ctx, convox.LogQuery{}) {
			add("%+v", e)
		}
		for _, c := range w.rack.Calls() {
			add("%v", c)
			add("%+v", c.Args)
		}
		for _, n := range w.rack.Notifications() {
			add("%+v", n)
		}
		plan, err := w.c.App("web").Plan(ctx, convox.ReleaseSpec{Secrets: map[string]convox.Secret{"DB_PASSWORD": secret + "-rotated"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			add(f, plan)
		}
		pb, _ := json.Marshal(plan)
		texts = append(texts, string(pb))
		for _, s := range texts {
			if strings.Contains(s, secret) {
				t.Fatalf("secret value leaked in: %s", s)
			}
		}
		if string(rel.Secrets["DB_PASSWORD"]) != secret {
			t.Errorf("the secret is not usable by explicit conversion")
		}
		t.Logf("scanned %d renderings", len(texts))
	})
}

func TestRootHasNoAWSDependency(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", ".", "./providers", "./providers/providertest", "./providers/fake").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/aws/") {
			t.Errorf("the root, providers, providertest or fake package depends on %s", pkg)
		}
	}
}

func TestTasks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		if ts, err := func() ([]providers.Task, error) {
			w.c.CreateApp(ctx, "web", nil)
			return collect(w.c.App("web").Tasks(ctx))
		}(); err != nil || len(ts) != 0 {
			t.Fatalf("Tasks before any deploy = %v, %v; want none", ts, err)
		}
		w.push("v1")
		if _, err := w.c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err != nil {
			t.Fatal(err)
		}
		ts, err := collect(w.c.App("web").Tasks(ctx))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, task := range ts {
			got = append(got, fmt.Sprintf("%s %s %s", task.Process, task.Release, task.State))
		}
		want := []string{"web R1 running", "web R1 running", "worker R1 running"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("tasks (-want +got):\n%s", diff)
		}
	})
}
