package convox_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/convoxtest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// Scenarios a test author scripts on the fake rack without writing hooks,
// through a real Client.

// scriptedWorld is a client over r with release R1 (image web:v1) active
// and web:v2 pushed.
func scriptedWorld(t *testing.T, r *fake.Rack) *convox.Client {
	t.Helper()
	ctx := t.Context()
	c := convoxtest.NewClient(t, r, &convox.Options{PollInterval: time.Second, MaxPollInterval: 5 * time.Second})
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		t.Fatalf("CreateApp: %v", err)
	}
	for _, tag := range []string{"v1", "v2"} {
		r.Push("web", tag, &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"VERSION=" + tag}})
	}
	if _, err := c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err != nil {
		t.Fatalf("Deploy v1: %v", err)
	}
	return c
}

// deployOutcome is what a failed deploy of R2 reports and leaves.
type deployOutcome struct {
	Release    string
	RolledBack bool
	Active     string
	Deploying  string
}

func failedDeploy(t *testing.T, c *convox.Client, err error) (deployOutcome, *convox.DeployError) {
	t.Helper()
	var de *convox.DeployError
	if !errors.As(err, &de) {
		t.Fatalf("Deploy = %v, want a *DeployError", err)
	}
	app, gerr := c.App("web").Get(t.Context())
	if gerr != nil {
		t.Fatalf("GetApp: %v", gerr)
	}
	return deployOutcome{Release: de.Release, RolledBack: de.RolledBack, Active: app.Active, Deploying: app.Deploying}, de
}

func TestScriptedR2NeverConvergesButR1Recovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := fake.New(nil)
		c := scriptedWorld(t, r)
		r.NeverConvergeRelease("R2")

		_, err := c.App("web").Deploy(t.Context(), webSpec("web:v2"), &convox.DeployOptions{Timeout: 2 * time.Minute})
		got, de := failedDeploy(t, c, err)
		want := deployOutcome{Release: "R2", RolledBack: true, Active: "R1"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("deploy of a release that never converges (-want +got):\n%s", diff)
		}
		if de.Step == "" || de.Reason == "" {
			t.Errorf("DeployError %+v: want the step and reason of the failure", de)
		}
		st, err := r.Scheduler().Status(t.Context(), "web")
		if err != nil {
			t.Fatal(err)
		}
		if st.Release != "R1" {
			t.Errorf("scheduler serves %q, want R1 (the rollback converged)", st.Release)
		}
	})
}

func TestScriptedNeverConvergeOfTheAppStallsTheRollbackToo(t *testing.T) {
	// The contrast that NeverConvergeRelease exists for: stalling the whole
	// app also stalls the SDK's rollback, which then cannot confirm R1.
	synctest.Test(t, func(t *testing.T) {
		r := fake.New(nil)
		c := convoxtest.NewClient(t, r, &convox.Options{
			PollInterval: time.Second, MaxPollInterval: 5 * time.Second, CompensateTimeout: time.Minute,
		})
		ctx := t.Context()
		if _, err := c.CreateApp(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
		r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"V=2"}})
		if _, err := c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err != nil {
			t.Fatal(err)
		}
		undo := r.NeverConverge("web")
		_, err := c.App("web").Deploy(ctx, webSpec("web:v2"), &convox.DeployOptions{Timeout: 2 * time.Minute})
		got, _ := failedDeploy(t, c, err)
		if got.RolledBack {
			t.Errorf("deploy outcome %+v: want RolledBack false while the rollback cannot converge", got)
		}
		undo()
	})
}

func TestScriptedTaskOutputReachesThePluggedInLogs(t *testing.T) {
	tests := []struct {
		name string
		// logs returns the Options.TaskLogs of the rack (nil: its own Logs).
		logs func() providers.Logs
	}{
		{"the rack's own Logs", func() providers.Logs { return nil }},
		{"another Logs provider plugged into the rack", func() providers.Logs { return fake.New(nil).Logs() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := fake.New(&fake.Options{TaskLogs: tc.logs()})
				c := scriptedWorld(t, r)
				r.CrashLoop("R2")
				_, err := c.App("web").Deploy(t.Context(), webSpec("web:v2"), nil)
				got, de := failedDeploy(t, c, err)
				if diff := cmp.Diff(deployOutcome{Release: "R2", RolledBack: true, Active: "R1"}, got); diff != "" {
					t.Errorf("deploy of a crash-looping release (-want +got):\n%s", diff)
				}
				if !hasMessage(de.LastLogLines, "panic: boom") {
					t.Errorf("DeployError.LastLogLines = %v, want the crashed task's %q", de.LastLogLines, "panic: boom")
				}
				for _, e := range de.LastLogLines {
					if e.Release != "R2" {
						t.Errorf("LastLogLines has a line of %s, want only R2's: %+v", e.Release, e)
					}
				}
			})
		})
	}
}
