package cfnstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// ecsStartsTasks stands in front of moto's ECS for the provider's client:
// ECS starts a service's tasks and reports them running
// (DescribeServices runningCount reaches desiredCount once they started),
// which moto never does since it runs no task. Nothing else changes.
type ecsStartsTasks struct{ next http.RoundTripper }

func (e ecsStartsTasks) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := e.next.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".DescribeServices") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	services, _ := out["services"].([]any)
	for _, s := range services {
		if m, ok := s.(map[string]any); ok {
			m["runningCount"], m["pendingCount"] = m["desiredCount"], 0
		}
	}
	if b, err = json.Marshal(out); err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	resp.Header.Del("X-Amz-Crc32")
	return resp, nil
}

// TestRootScenariosOnTheStackMode runs the root client on the stack mode
// (moto, with ECS reporting tasks running): deploys, an explicit rollback,
// and a deploy that CloudFormation rolls back (the circuit-breaker
// behaviour of the transport in front of moto) which the root reports as
// failed and compensates. Processes have no port: moto registers no
// target, so no route could ever be healthy.
func TestRootScenariosOnTheStackMode(t *testing.T) {
	w := &rewriter{next: http.DefaultTransport, b: circuitBreakerRollsBack}
	r := newRackWith(t,
		func(c *aws.Config) { c.HTTPClient = &http.Client{Transport: w} },
		func(c *aws.Config) { c.HTTPClient = &http.Client{Transport: ecsStartsTasks{http.DefaultTransport}} })
	app := "shop" + strings.TrimPrefix(r.cluster, "cluster")
	w.stack = r.stack.StackName(app)
	others := fake.New(nil)
	for _, tag := range []string{"v1", "v2", "v3"} {
		others.Push(app, tag, &fake.ImageConfig{Entrypoint: []string{"/app/worker"}})
	}
	c, err := convox.New(convox.Rack{Registry: others.Registry(), Scheduler: r.stack, Balancer: r.stack, Logs: others.Logs(), Store: others.Store()},
		&convox.Options{PollInterval: 10 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond, Timeout: 30 * time.Second, CompensateTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	t.Cleanup(func() { r.stack.Delete(ctx, app) })
	if _, err := c.CreateApp(ctx, app, nil); err != nil {
		t.Fatal(err)
	}
	spec := func(tag string, count int) convox.ReleaseSpec {
		return convox.ReleaseSpec{Image: app + ":" + tag, Processes: []convox.Process{{Name: "worker", Count: count}}}
	}
	active := func() string {
		t.Helper()
		a, err := c.App(app).Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return a.Active
	}
	writes := map[string]map[string]int{}

	r.calls.Reset()
	if _, err := c.App(app).Deploy(ctx, spec("v1", 1), nil); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	writes["first deploy"] = r.writes()
	r.calls.Reset()
	if _, err := c.App(app).Deploy(ctx, spec("v2", 2), nil); err != nil {
		t.Fatalf("second deploy: %v", err)
	}
	writes["deploy"] = r.writes()
	r.calls.Reset()
	if _, err := c.App(app).Rollback(ctx, convox.ToRelease("R1"), nil); err != nil {
		t.Fatalf("rollback to R1: %v", err)
	}
	writes["explicit rollback"] = r.writes()
	if got := r.services(t, app, "worker")["worker"]; got.Desired != 1 {
		t.Errorf("worker after the rollback to R1 = %+v, want R1's count 1", got)
	}
	afterRollback := active()

	w.mu.Lock()
	w.armed = true
	w.mu.Unlock()
	r.calls.Reset()
	_, err = c.App(app).Deploy(ctx, spec("v3", 3), nil)
	writes["deploy rolled back by CloudFormation"] = r.writes()
	var de *convox.DeployError
	if !errors.As(err, &de) {
		t.Fatalf("deploy that CloudFormation rolls back = %v, want a *DeployError", err)
	}
	if !de.RolledBack || !strings.Contains(de.Reason, "Circuit Breaker") {
		t.Errorf("DeployError = rolled back %v, reason %q; want rolled back with the failing service's reason", de.RolledBack, de.Reason)
	}
	if got := active(); got != afterRollback {
		t.Errorf("active release after the failed deploy = %s, want %s still", got, afterRollback)
	}
	if got := r.services(t, app, "worker")["worker"]; got.Desired != 1 {
		t.Errorf("worker after the failed deploy = %+v, want the serving release's count 1", got)
	}
	t.Run("many apps deploy side by side, each in its own stack", func(t *testing.T) {
		apps := []string{app + "a", app + "b", app + "c"}
		errs := make([]error, len(apps))
		var wg sync.WaitGroup
		for i, a := range apps {
			others.Push(a, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/worker"}})
			if _, err := c.CreateApp(ctx, a, nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.stack.Delete(ctx, a) })
			wg.Go(func() {
				_, errs[i] = c.App(a).Deploy(ctx, convox.ReleaseSpec{Image: a + ":v1", Processes: []convox.Process{{Name: "worker", Count: i + 1}}}, nil)
			})
		}
		wg.Wait()
		for i, a := range apps {
			if errs[i] != nil {
				t.Errorf("deploy of %s: %v", a, errs[i])
				continue
			}
			if got := r.services(t, a, "worker")["worker"].Desired; got != i+1 {
				t.Errorf("%s's worker desired count = %d, want %d", a, got, i+1)
			}
		}
	})
	t.Logf("CloudFormation writes of the root's operations: %v", writes)
	want := map[string]map[string]int{
		"first deploy":      {"CreateStack": 1},
		"deploy":            {"UpdateStack": 1},
		"explicit rollback": {"UpdateStack": 1},
		// The failed update, then the root's compensation, which changes
		// only the stack's outputs after AWS's rollback.
		"deploy rolled back by CloudFormation": {"UpdateStack": 2},
	}
	if diff := cmp.Diff(want, writes); diff != "" {
		t.Errorf("CloudFormation writes (-want +got):\n%s", diff)
	}
}

// TestRootRunOnTheStackMode runs a one-off process through the root
// client on the stack mode (moto): AppClient.Run of the active release
// runs the stack's own task definition, registering nothing and changing
// no stack, and returns the task's exit code. moto moves a task to
// STOPPED by itself after a few DescribeTasks, its container with exit
// code 0: a task that ran and exited.
func TestRootRunOnTheStackMode(t *testing.T) {
	r := newRackWith(t,
		func(c *aws.Config) { c.APIOptions = append(c.APIOptions, awstest.MotoRunsFargateTasks) },
		func(c *aws.Config) {
			c.HTTPClient = &http.Client{Transport: ecsStartsTasks{http.DefaultTransport}}
			c.APIOptions = append(c.APIOptions, awstest.MotoRunsFargateTasks)
		})
	app := "run" + strings.TrimPrefix(r.cluster, "cluster")
	others := fake.New(nil)
	others.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/worker"}})
	c, err := convox.New(convox.Rack{Registry: others.Registry(), Scheduler: r.stack, Balancer: r.stack, Logs: others.Logs(), Store: others.Store()},
		&convox.Options{PollInterval: 10 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	t.Cleanup(func() { r.stack.Delete(context.WithoutCancel(ctx), app) })
	if _, err := c.CreateApp(ctx, app, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.App(app).Deploy(ctx, convox.ReleaseSpec{Image: app + ":v1", Env: map[string]string{"MODE": "a"},
		Processes: []convox.Process{{Name: "worker", Count: 1}}}, nil); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	r.calls.Reset()
	res, err := c.App(app).Run(ctx, "worker", []string{"bin/migrate"}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != 0 || res.Task.State != providers.TaskStopped || res.Task.Release != "R1" || res.Task.Process != "worker" {
		t.Errorf("Run = %+v, want the stopped task of worker, R1, exit code 0", res)
	}
	if diff := cmp.Diff(map[string]int{"RunTask": 1}, r.allWrites()); diff != "" {
		t.Errorf("mutating CloudFormation and ECS calls of the run (-want +got):\n%s", diff)
	}
}
