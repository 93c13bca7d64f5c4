package cfnstack_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cfnstack"
	"github.com/convox-go/convox/providers/fake"
)

// routeChanges keeps the changes of the route resources of process web.
func routeChanges(changes []cfnstack.Change) []cfnstack.Change {
	return slices.DeleteFunc(slices.Clone(changes), func(c cfnstack.Change) bool {
		return c.Resource != "TargetGroupOfweb" && c.Resource != "ListenerRuleOfweb"
	})
}

// TestPlansIncludeTheRoutesADeployMakesFirstOnMoto checks that a plan
// shows the stack a deploy would leave, routes included: the root ensures
// a routed process's route (EnsureRoute) before it applies, so a plan of
// a first deploy of that process lists its target group and listener rule
// as added, whether the app has a stack or not.
func TestPlansIncludeTheRoutesADeployMakesFirstOnMoto(t *testing.T) {
	r := newRack(t, nil)
	ctx := t.Context()
	added := []cfnstack.Change{
		{Action: "Add", Resource: "ListenerRuleOfweb", Type: "AWS::ElasticLoadBalancingV2::ListenerRule"},
		{Action: "Add", Resource: "TargetGroupOfweb", Type: "AWS::ElasticLoadBalancingV2::TargetGroup"},
	}

	t.Run("an app without a stack", func(t *testing.T) {
		app := awstest.Name(t, "newapp")
		r.calls.Reset()
		changes, err := r.stack.Changes(ctx, release(app, "R1", "t1", imageV1, nil, 1, 1, providers.Binding{}))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(added, routeChanges(changes)); diff != "" {
			t.Errorf("route changes of the plan (-want +got):\n%s", diff)
		}
		if w := r.allWrites(); len(w) != 0 {
			t.Errorf("the plan wrote %v, want nothing", w)
		}
	})

	app := awstest.Name(t, "grows")
	t.Cleanup(func() { r.stack.Delete(context.WithoutCancel(ctx), app) })
	workerOnly := providers.Desired{App: app, Release: "R1", Token: "t1", Image: imageV1,
		Processes: []providers.Process{{Name: "worker", Count: 1, CPU: 256, Memory: 512}}}
	if _, err := r.stack.Apply(ctx, workerOnly); err != nil {
		t.Fatal(err)
	}
	r2 := release(app, "R2", "t2", imageV1, nil, 1, 1, providers.Binding{})
	t.Run("an app whose stack has no route yet", func(t *testing.T) {
		r.calls.Reset()
		changes, err := r.stack.Changes(ctx, r2)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(added, routeChanges(changes)); diff != "" {
			t.Errorf("route changes of the plan (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]int{"CreateChangeSet": 1, "DeleteChangeSet": 1}, r.allWrites()); diff != "" {
			t.Errorf("writes of the plan (-want +got):\n%s", diff)
		}
	})

	t.Run("a deployed release planned again", func(t *testing.T) {
		route, err := r.stack.EnsureRoute(ctx, providers.RouteSpec{App: app, Process: "web", Port: 8080, Protocol: providers.HTTP})
		if err != nil {
			t.Fatal(err)
		}
		deployed := release(app, "R2", "t2", imageV1, nil, 1, 1, route.Binding)
		if _, err := r.stack.Apply(ctx, deployed); err != nil {
			t.Fatal(err)
		}
		again := deployed
		again.Token = "t3"
		changes, err := r.stack.Changes(ctx, again)
		if err != nil {
			t.Fatal(err)
		}
		// The same release again differs only in the stack's outputs (the
		// token): no resource changes, and in particular the existing
		// route is not planned anew.
		if len(changes) != 0 {
			t.Errorf("plan of the deployed release = %+v, want no resource change", changes)
		}
	})
}

// TestRootPlanOfAFirstRoutedDeployOnMoto checks the same through the
// root client: the plan of an app's first release with a routed process
// lists the route's target group and listener rule as added, though the
// route does not exist yet (Plan ensures no route).
func TestRootPlanOfAFirstRoutedDeployOnMoto(t *testing.T) {
	r := newRack(t, nil)
	app := "plan" + strings.TrimPrefix(r.cluster, "cluster")
	others := fake.New(nil)
	others.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/web"}})
	c, err := convox.New(convox.Rack{Registry: others.Registry(), Scheduler: r.stack, Balancer: r.stack, Logs: others.Logs(), Store: others.Store()},
		&convox.Options{PollInterval: 10 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.CreateApp(ctx, app, nil); err != nil {
		t.Fatal(err)
	}
	plan, err := c.App(app).Plan(ctx, convox.ReleaseSpec{Image: app + ":v1", Processes: []convox.Process{{Name: "web", Count: 1, Port: 8080}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rc := range plan.Resources {
		if rc.Action == providers.ChangeAdd && strings.HasSuffix(rc.Resource, "Ofweb") && strings.Contains(rc.Type, "ElasticLoadBalancingV2") {
			got = append(got, rc.Resource)
		}
	}
	if diff := cmp.Diff([]string{"ListenerRuleOfweb", "TargetGroupOfweb"}, got); diff != "" {
		t.Errorf("route resources the root's plan adds (-want +got):\n%s", diff)
	}
}
