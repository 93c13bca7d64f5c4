package ecsscheduler_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

var clbLive = providers.Binding{Kind: providers.BindingClassicELB, Target: "shop-web", Port: 8080}

// attachment is what one ECS service of the app runs and is attached to.
type attachment struct {
	Role     string
	Launch   types.LaunchType
	Balancer []string
	Release  string
}

// attachments returns the app's ACTIVE services, keyed "serving" or
// "paired" by their role.
func (r *rack) attachments(t *testing.T) map[string]attachment {
	t.Helper()
	out := map[string]attachment{}
	for _, name := range r.services(t) {
		svc := r.describe(t, name)
		a := attachment{Role: cmpOr(tagValue(svc, "convox:role"), "serving"), Launch: svc.LaunchType, Release: tagValue(svc, "convox:release")}
		for _, lb := range svc.LoadBalancers {
			switch {
			case lb.LoadBalancerName != nil:
				a.Balancer = append(a.Balancer, "classic:"+aws.ToString(lb.LoadBalancerName))
			default:
				a.Balancer = append(a.Balancer, "target-group:"+aws.ToString(lb.TargetGroupArn)[strings.LastIndex(aws.ToString(lb.TargetGroupArn), "targetgroup/")+len("targetgroup/"):])
			}
		}
		if _, dup := out[a.Role]; dup {
			t.Fatalf("two %s services: %v", a.Role, r.services(t))
		}
		out[a.Role] = a
	}
	return out
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// TestMixedBindingsRunAPairedService checks how a process moves between a
// classic load balancer and target groups, which one ECS service cannot
// attach together: while its bindings mix the kinds, a paired service
// runs the release on the other kind beside the serving one; bindings of
// one kind again retire the service of the other kind.
func TestMixedBindingsRunAPairedService(t *testing.T) {
	onClassic := attachment{Role: "serving", Launch: types.LaunchTypeEc2, Balancer: []string{"classic:shop-web"}}
	onGroup := attachment{Role: "serving", Launch: types.LaunchTypeFargate, Balancer: []string{"target-group:shop-web/1"}}
	paired := attachment{Role: "paired", Launch: types.LaunchTypeFargate, Balancer: []string{"target-group:shop-web/1"}}
	with := func(a attachment, release string) attachment { a.Release = release; return a }
	tests := []struct {
		name string
		// from is what serves before; then mixed bindings are applied (R2),
		// then last.
		from, last providers.Binding
		wantMixed  map[string]attachment
		wantLast   map[string]attachment
	}{
		{
			name: "finishing a move from a classic load balancer promotes the paired service",
			from: clbLive, last: tgLive,
			wantMixed: map[string]attachment{"serving": with(onClassic, "R2"), "paired": with(paired, "R2")},
			wantLast:  map[string]attachment{"serving": with(onGroup, "R3")},
		},
		{
			name: "aborting a move from a classic load balancer retires the paired service",
			from: clbLive, last: clbLive,
			wantMixed: map[string]attachment{"serving": with(onClassic, "R2"), "paired": with(paired, "R2")},
			wantLast:  map[string]attachment{"serving": with(onClassic, "R3")},
		},
		{
			name: "a move from target groups pairs a service on the classic load balancer",
			from: tgLive, last: clbLive,
			wantMixed: map[string]attachment{"serving": with(onGroup, "R2"), "paired": with(attachment{Role: "paired", Launch: types.LaunchTypeEc2, Balancer: []string{"classic:shop-web"}}, "R2")},
			wantLast:  map[string]attachment{"serving": with(onClassic, "R3")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			r.apply(t, bound("R1", "t1", tt.from, web))
			r.srv.Settle()

			mixed := bound("R2", "t2", tt.from, web)
			other := tgLive
			if tt.from == tgLive {
				other = clbLive
			}
			mixed.Bindings["web"] = []providers.Binding{tt.from, other}
			r.apply(t, mixed)
			r.srv.Settle()
			if diff := cmp.Diff(tt.wantMixed, r.attachments(t)); diff != "" {
				t.Errorf("services with mixed bindings (-want +got):\n%s", diff)
			}
			st := r.status(t, "shop")
			if diff := cmp.Diff(summary{Release: "R2", State: providers.RolloutCompleted, Processes: []providers.ProcessStatus{{Name: "web", Release: "R2", Desired: 2, Running: 2}}}, summarize(st)); diff != "" {
				t.Errorf("status with mixed bindings (-want +got):\n%s", diff)
			}
			if n := len(runningIDs(st, "R2")); n != 4 {
				t.Errorf("%d running tasks of R2 with mixed bindings, want 4 (2 per service)", n)
			}
			r.calls.Reset()
			if again := r.apply(t, mixed); again.State != providers.RolloutCompleted {
				t.Errorf("Apply of the same token = %+v, want the completed rollout", again)
			}
			if n := r.calls.Count("CreateService") + r.calls.Count("UpdateService"); n != 0 {
				t.Errorf("Apply of the same token changed services %d times (calls: %v)", n, r.calls)
			}

			r.apply(t, bound("R3", "t3", tt.last, web))
			r.srv.Settle()
			if diff := cmp.Diff(tt.wantLast, r.attachments(t)); diff != "" {
				t.Errorf("services after bindings of one kind again (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(summary{Release: "R3", State: providers.RolloutCompleted, Processes: []providers.ProcessStatus{{Name: "web", Release: "R3", Desired: 2, Running: 2}}}, summarize(r.status(t, "shop"))); diff != "" {
				t.Errorf("status after bindings of one kind again (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTwoRacksNeverShareATaskDefinitionFamily checks that racks (ECS
// clusters) in one account whose cluster and app names differ only in
// where a hyphen falls register their task definitions in families of
// their own, and that deleting one app leaves the other's task
// definitions, the legacy family's included.
func TestTwoRacksNeverShareATaskDefinitionFamily(t *testing.T) {
	srv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	client := ecs.NewFromConfig(awstest.ConfigFor(srv.URL))
	rackA := ecsscheduler.New(client, &ecsscheduler.Options{Cluster: "a-b", Subnets: []string{"subnet-1"}})
	rackB := ecsscheduler.New(client, &ecsscheduler.Options{Cluster: "a", Subnets: []string{"subnet-1"}})
	for _, x := range []struct {
		sch *ecsscheduler.Scheduler
		app string
	}{{rackA, "c"}, {rackB, "b-c"}} {
		if _, err := x.sch.Apply(t.Context(), desired(x.app, "R1", "t1", nil, worker)); err != nil {
			t.Fatal(err)
		}
	}
	// A revision of rack B's app in the family name earlier versions
	// used, which rack A's app "c" would have shared.
	legacy, err := client.RegisterTaskDefinition(t.Context(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("a-b-c-worker"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("worker"), Image: aws.String(image.Ref()),
			DockerLabels: map[string]string{"convox.app": "b-c", "convox.process": "worker", "convox.release": "R0"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	families := func() []string {
		out, err := client.ListTaskDefinitions(t.Context(), &ecs.ListTaskDefinitionsInput{Status: types.TaskDefinitionStatusActive})
		if err != nil {
			t.Fatal(err)
		}
		var fs []string
		for _, arn := range out.TaskDefinitionArns {
			// arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>
			f := arn[strings.LastIndexByte(arn, '/')+1 : strings.LastIndexByte(arn, ':')]
			if !slices.Contains(fs, f) {
				fs = append(fs, f)
			}
		}
		return fs
	}
	if diff := cmp.Diff([]string{"a-b-c-worker", "a-b_c_worker", "a_b-c_worker"}, sortedCopy(families())); diff != "" {
		t.Errorf("families (-want +got):\n%s", diff)
	}
	if err := rackA.Delete(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a-b-c-worker", "a_b-c_worker"}, sortedCopy(families())); diff != "" {
		t.Errorf("families after rack a-b deleted app c (-want +got):\n%s", diff)
	}
	if _, err := client.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: legacy.TaskDefinition.TaskDefinitionArn}); err != nil {
		t.Errorf("rack a's Delete removed rack b's legacy revision: %v", err)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}

// TestAppsWhoseNamesShareAHyphenRunSideBySide checks that two apps of one
// cluster whose app and process names join to the same hyphenated text
// ("a-b"+"c", "a"+"b-c") get services of their own.
func TestAppsWhoseNamesShareAHyphenRunSideBySide(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, desired("a-b", "R1", "t1", nil, providers.Process{Name: "c", Count: 1}))
	r.apply(t, desired("a", "R1", "t1", nil, providers.Process{Name: "b-c", Count: 1}))
	r.srv.Settle()
	if diff := cmp.Diff([]string{"a-b_c", "a_b-c"}, r.services(t)); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	for _, app := range []string{"a-b", "a"} {
		if st := r.status(t, app); len(st.Processes) != 1 || st.Processes[0].Running != 1 {
			t.Errorf("status of %s = %+v, want its one process running", app, st.Processes)
		}
	}
}

func TestStageRefusesMixedBindingsBeforeAnyChange(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, bound("R1", "t1", clbLive, web))
	r.srv.Settle()
	d := bound("R2", "t2", clbLive, web)
	d.Bindings["web"] = []providers.Binding{clbLive, tgLive}
	r.calls.Reset()
	if _, err := r.sch.Stage(t.Context(), d); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("Stage with mixed bindings = %v, want ErrInvalid", err)
	}
	if n := len(r.calls.Counts()); n != 0 {
		t.Errorf("Stage called ECS before refusing: %v", r.calls)
	}
}
