package cfnstack_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/providertest"
)

// TestPlanChangesConformanceOnMoto checks the ChangePlanner contract on
// moto, for an app without a stack and for one with a stack: nothing
// changes and no change set is left.
func TestPlanChangesConformanceOnMoto(t *testing.T) {
	r := newRack(t, nil)
	ctx := t.Context()
	app := awstest.Name(t, "plans")
	t.Cleanup(func() { r.stack.Delete(context.WithoutCancel(ctx), app) })
	leftovers := func(ctx context.Context, app string) ([]string, error) {
		out, err := r.cfn.ListChangeSets(ctx, &cloudformation.ListChangeSetsInput{StackName: aws.String(r.stack.StackName(app))})
		if err != nil {
			if strings.Contains(err.Error(), "does not exist") {
				return nil, nil
			}
			return nil, err
		}
		var names []string
		for _, s := range out.Summaries {
			names = append(names, aws.ToString(s.ChangeSetName))
		}
		return names, nil
	}
	r1 := release(app, "R1", "t1", imageV1, nil, 1, 1, providers.Binding{})
	t.Run("an app without a stack", func(t *testing.T) {
		providertest.CheckPlanChanges(t, providertest.PlanHarness{Planner: r.stack, Desired: r1, Leftovers: leftovers})
	})
	if _, err := r.stack.Apply(ctx, r1); err != nil {
		t.Fatal(err)
	}
	t.Run("an app with a stack", func(t *testing.T) {
		r2 := release(app, "R2", "t2", imageV2, map[string]string{"MODE": "two"}, 2, 1, providers.Binding{})
		providertest.CheckPlanChanges(t, providertest.PlanHarness{Planner: r.stack, Desired: r2, Leftovers: leftovers})
	})
}

// TestDeployEventsIncludeTheStacksEventsOnMoto deploys through the root
// client on the stack mode and checks that the deploy's events include
// the stack's events (deploy.platform), in order and once each, and that
// the root's Plan lists the stack's resource changes. moto records only
// the stack's own events; AWS records one per resource as well
// ("DescribeStackEvents: Returns all stack related events", AWS
// CloudFormation API Reference), which the transport in front of moto
// plays for a deploy the circuit breaker fails.
func TestDeployEventsIncludeTheStacksEventsOnMoto(t *testing.T) {
	w := &rewriter{next: http.DefaultTransport, b: circuitBreakerRollsBack}
	r := newRackWith(t,
		func(c *aws.Config) { c.HTTPClient = &http.Client{Transport: w} },
		func(c *aws.Config) { c.HTTPClient = &http.Client{Transport: ecsStartsTasks{http.DefaultTransport}} })
	app := "events" + strings.TrimPrefix(r.cluster, "cluster")
	w.stack = r.stack.StackName(app)
	others := fake.New(nil)
	others.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/worker"}})
	others.Push(app, "v2", &fake.ImageConfig{Entrypoint: []string{"/app/worker"}, Env: []string{"VERSION=2"}})
	var mu sync.Mutex
	var events []convox.Event
	platform := func(release string) []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, e := range events {
			if e.Type == convox.EventPlatform && e.Release == release {
				out = append(out, e.Message+"|"+e.Reason)
			}
		}
		return out
	}
	c, err := convox.New(convox.Rack{Registry: others.Registry(), Scheduler: r.stack, Balancer: r.stack, Logs: others.Logs(), Store: others.Store()},
		&convox.Options{
			PollInterval: 10 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond, Timeout: 30 * time.Second, CompensateTimeout: time.Minute,
			OnEvent: func(e convox.Event) {
				mu.Lock()
				defer mu.Unlock()
				events = append(events, e)
			},
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	t.Cleanup(func() { r.stack.Delete(context.WithoutCancel(ctx), app) })
	if _, err := c.CreateApp(ctx, app, nil); err != nil {
		t.Fatal(err)
	}
	spec := func(tag string) convox.ReleaseSpec {
		return convox.ReleaseSpec{Image: app + ":" + tag, Processes: []convox.Process{{Name: "worker", Count: 1}}}
	}
	if _, err := c.App(app).Deploy(ctx, spec("v1"), nil); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	stackEvents, err := r.stack.Events(ctx, app, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range stackEvents {
		want = append(want, e.Resource+" "+e.Status+"|"+e.Reason)
	}
	if diff := cmp.Diff(want, platform("R1")); diff != "" {
		t.Errorf("platform events of the first deploy, against the stack's events (-want +got):\n%s", diff)
	}

	plan, err := c.App(app).Plan(ctx, spec("v2"))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if !slices.ContainsFunc(plan.Resources, func(c providers.ResourceChange) bool { return c.Resource == "ServiceOfworker" }) {
		t.Errorf("plan of a new image lists resources %+v, want the worker's service among them", plan.Resources)
	}
	if !strings.Contains(plan.String(), "ServiceOfworker") {
		t.Errorf("plan.String() = %q, want the worker's service in it", plan.String())
	}

	w.mu.Lock()
	w.armed = true
	w.mu.Unlock()
	if _, err := c.App(app).Deploy(ctx, spec("v2"), nil); err == nil {
		t.Fatal("deploy the circuit breaker fails succeeded")
	}
	got := platform("R2")
	for _, want := range []string{"ServiceOfweb UPDATE_IN_PROGRESS|", "ServiceOfweb UPDATE_FAILED|" + breakerReason} {
		if n := countOf(got, want); n != 1 {
			t.Errorf("platform events of the failed deploy hold %q %d times, want once; events: %q", want, n, got)
		}
	}
	if i, j := slices.Index(got, "ServiceOfweb UPDATE_IN_PROGRESS|"), slices.Index(got, "ServiceOfweb UPDATE_FAILED|"+breakerReason); i > j {
		t.Errorf("platform events of the failed deploy out of order: %q", got)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
