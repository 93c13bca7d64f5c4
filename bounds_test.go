package convox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// withCount returns webSpec with the web process scaled to n.
func withCount(image string, n int) convox.ReleaseSpec {
	s := webSpec(image)
	s.Processes[0].Count = n
	return s
}

// withHealthPath returns webSpec with the web process's health path set.
func withHealthPath(path string) convox.ReleaseSpec {
	s := webSpec("web:v1")
	s.Processes[0].Health.Path = path
	return s
}

// manyVars returns n variables V0..V(n-1) set to v.
func manyVars(n int, v string) map[string]string {
	env := make(map[string]string, n)
	for i := range n {
		env[fmt.Sprintf("V%d", i)] = v
	}
	return env
}

// sideEffects lists the calls that are not reads of the store: anything a
// refused request must not make.
func sideEffects(calls []fake.Call) []string {
	var out []string
	for _, c := range calls {
		switch c.Name() {
		case "Store.Get", "Store.List":
		default:
			out = append(out, c.Name())
		}
	}
	return out
}

// TestBadInputIsRefusedBeforeAnySideEffect runs each hazard of unbounded
// input through the client over a fake rack: each is an ErrInvalid, and
// the fake's call log shows no store write and no provider call at all
// (not even a registry lookup), only reads of the app and its releases.
func TestBadInputIsRefusedBeforeAnySideEffect(t *testing.T) {
	lim := providers.DefaultLimits()
	create := func(spec convox.ReleaseSpec) func(context.Context, *convox.Client) error {
		return func(ctx context.Context, c *convox.Client) error {
			_, err := c.App("web").CreateRelease(ctx, spec)
			return err
		}
	}
	cases := []struct {
		name string
		run  func(context.Context, *convox.Client) error
	}{
		{"CreateRelease with a count of a billion", create(withCount("web:v1", 1e9))},
		{"CreateRelease with a count of 1<<40", create(withCount("web:v1", 1<<40))},
		{"CreateRelease with a count of 2^32+1", create(withCount("web:v1", 1<<32+1))},
		{"CreateRelease with a count one over the rack's limit", create(withCount("web:v1", lim.MaxCount+1))},
		{"Plan with a count of 1<<40", func(ctx context.Context, c *convox.Client) error {
			_, err := c.App("web").Plan(ctx, withCount("web:v1", 1<<40))
			return err
		}},
		{"Deploy with a count of a billion", func(ctx context.Context, c *convox.Client) error {
			_, err := c.App("web").Deploy(ctx, withCount("web:v1", 1e9), nil)
			return err
		}},
		{"Scale to a billion", func(ctx context.Context, c *convox.Client) error {
			_, err := c.App("web").Scale(ctx, "web", 1e9, nil)
			return err
		}},
		{"DeployMany with a count of a billion", func(ctx context.Context, c *convox.Client) error {
			_, err := c.DeployMany(ctx, []convox.AppDeploy{{App: "web", Spec: withCount("web:v1", 1e9)}}, nil)
			return err
		}},
		{"more process types than the limit", func(ctx context.Context, c *convox.Client) error {
			s := webSpec("web:v1")
			s.Processes = nil
			for i := range lim.MaxProcesses + 1 {
				s.Processes = append(s.Processes, convox.Process{Name: fmt.Sprintf("p%d", i), Count: 1, Command: []string{"/x"}})
			}
			_, err := c.App("web").CreateRelease(ctx, s)
			return err
		}},
		{"an env value with NUL", create(convox.ReleaseSpec{Image: "web:v1", Env: map[string]string{"MODE": "a\x00b"}})},
		{"SetEnv with a 128 KiB value", func(ctx context.Context, c *convox.Client) error {
			_, err := c.App("web").SetEnv(ctx, map[string]string{"BIG": strings.Repeat("x", 128<<10)}, nil, nil)
			return err
		}},
		{"SetEnv with a secret holding NUL", func(ctx context.Context, c *convox.Client) error {
			_, err := c.App("web").SetEnv(ctx, nil, map[string]convox.Secret{"TOKEN": "a\x00b"}, nil)
			return err
		}},
		{"SetEnv with 20,000 variables", func(ctx context.Context, c *convox.Client) error {
			_, err := c.App("web").SetEnv(ctx, manyVars(20000, "v"), nil, nil)
			return err
		}},
		{"an environment over 64 KiB in all", create(convox.ReleaseSpec{Image: "web:v1", Env: manyVars(3, strings.Repeat("x", 30<<10))})},
		{"an env name with =", create(convox.ReleaseSpec{Image: "web:v1", Env: map[string]string{"A=B": "v"}})},
		{"a health path @127.0.0.1:1/x", create(withHealthPath("@127.0.0.1:1/x"))},
		{"a health path without a slash", create(withHealthPath("health"))},
		{"a health path //127.0.0.1:1/x", create(withHealthPath("//127.0.0.1:1/x"))},
		{"a health path with a scheme and host", create(withHealthPath("http://127.0.0.1:1/x"))},
		{"a health path with a newline", create(withHealthPath("/x\nHost: other"))},
		{"a negative health interval", func(ctx context.Context, c *convox.Client) error {
			s := webSpec("web:v1")
			s.Processes[0].Health.Interval = -1
			_, err := c.App("web").CreateRelease(ctx, s)
			return err
		}},
		{"port 70000", func(ctx context.Context, c *convox.Client) error {
			s := webSpec("web:v1")
			s.Processes[0].Port = 70000
			_, err := c.App("web").CreateRelease(ctx, s)
			return err
		}},
		{"a description over 1 KiB", create(convox.ReleaseSpec{Image: "web:v1", Description: strings.Repeat("d", providers.MaxDescription+1)})},
		{"an image reference with a newline", create(convox.ReleaseSpec{Image: "web:v1\nother"})},
		{"Run with a NUL in the command", func(ctx context.Context, c *convox.Client) error {
			_, err := c.App("web").Run(ctx, "web", []string{"env", "A\x00"}, &convox.RunOptions{Release: "R1"})
			return err
		}},
		{"Logs with a filter over MaxLogFilter", func(ctx context.Context, c *convox.Client) error {
			for _, err := range c.App("web").Logs(ctx, convox.LogQuery{Filter: strings.Repeat("f", providers.MaxLogFilter+1)}) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			ctx := t.Context()
			if _, err := w.c.CreateApp(ctx, "web", nil); err != nil {
				t.Fatal(err)
			}
			w.push("v1")
			if _, err := w.c.App("web").CreateRelease(ctx, webSpec("web:v1")); err != nil {
				t.Fatal(err)
			}
			w.rack.ResetCalls()
			err := tc.run(ctx, w.c)
			if !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if diff := cmp.Diff([]string(nil), sideEffects(w.rack.Calls())); diff != "" {
				t.Errorf("a refused request made calls beyond store reads (-want +got):\n%s", diff)
			}
		})
	}
}

// lowered is a scheduler whose bounds were lowered since releases were
// written: it reports lim and does everything else as the wrapped one.
type lowered struct {
	providers.Scheduler
	lim providers.Limits
}

func (l lowered) Limits() providers.Limits { return l.lim }

// TestCopiedValuesAreValidatedToo checks that what a release copies from
// an earlier one is held to the scheduler's bounds as they are now: a
// release written under a higher limit is neither copied by a spec that
// leaves the formation out, nor promoted, nor planned.
func TestCopiedValuesAreValidatedToo(t *testing.T) {
	r := fake.New(&fake.Options{Limits: providers.Limits{MaxCount: 1000}})
	ctx := t.Context()
	before, err := convox.New(r.ConvoxRack(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := before.CreateApp(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
	if _, err := before.App("web").CreateRelease(ctx, withCount("web:v1", 500)); err != nil {
		t.Fatalf("a count within the rack's limit of 1000: %v", err)
	}

	rack := r.ConvoxRack()
	rack.Scheduler = lowered{r.Scheduler(), providers.Limits{MaxCount: 64}}
	after, err := convox.New(rack, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		run  func() error
	}{
		{"a spec without processes inherits the count", func() error {
			_, err := after.App("web").CreateRelease(ctx, convox.ReleaseSpec{Env: map[string]string{"MODE": "x"}})
			return err
		}},
		{"a plan without processes inherits the count", func() error {
			_, err := after.App("web").Plan(ctx, convox.ReleaseSpec{Description: "only a note"})
			return err
		}},
		{"SetEnv copies the formation", func() error {
			_, err := after.App("web").SetEnv(ctx, map[string]string{"MODE": "x"}, nil, nil)
			return err
		}},
		{"promoting the release", func() error {
			_, err := after.App("web").Promote(ctx, "R1", nil)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.ResetCalls()
			err := tc.run()
			if !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), "500") {
				t.Errorf("err = %v, want it to name the count 500", err)
			}
			if diff := cmp.Diff([]string(nil), sideEffects(r.Calls())); diff != "" {
				t.Errorf("a refused request made calls beyond store reads (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCountsWithinTheLimitDeploy checks the other side of the bound: the
// scheduler's own limit is what counts, and a formation at it deploys.
func TestCountsWithinTheLimitDeploy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, &fake.Options{Limits: providers.Limits{MaxCount: 100}})
		ctx := t.Context()
		if _, err := w.c.CreateApp(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		w.push("v1")
		rel, err := w.c.App("web").Deploy(ctx, withCount("web:v1", 100), nil)
		if err != nil {
			t.Fatalf("Deploy with count 100 on a rack whose limit is 100: %v", err)
		}
		if _, err := w.c.App("web").Scale(ctx, "web", 101, nil); !errors.Is(err, providers.ErrInvalid) {
			t.Fatalf("Scale to 101 = %v, want ErrInvalid", err)
		}
		if got := w.active(ctx); got != rel.ID {
			t.Errorf("active = %s, want %s: a refused scale changes nothing", got, rel.ID)
		}
	})
}

// TestGeneratedDescriptionsFitTheLimit checks that SetEnv of many
// variables, within every other limit, is not refused for the
// description it writes itself: the list of names is shortened.
func TestGeneratedDescriptionsFitTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		w.deployV1(ctx)
		env := map[string]string{}
		for i := range 500 {
			env[fmt.Sprintf("VARIABLE_WITH_A_LONG_NAME_%03d", i)] = "v"
		}
		rel, err := w.c.App("web").SetEnv(ctx, env, nil, nil)
		if err != nil {
			t.Fatalf("SetEnv of 500 variables: %v", err)
		}
		d := rel.Description
		if len(d) > providers.MaxDescription || !strings.HasPrefix(d, "env set VARIABLE_WITH_A_LONG_NAME_000 ") || !strings.HasSuffix(d, " more") {
			t.Errorf("description = %q (%d bytes), want a shortened list within %d bytes", d, len(d), providers.MaxDescription)
		}
	})
}
