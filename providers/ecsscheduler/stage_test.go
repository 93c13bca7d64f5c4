package ecsscheduler_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

// Target groups of the route of shop's web process: the default set and
// the set a weighted deploy stages into.
var (
	tgLive  = providers.Binding{Kind: providers.BindingTargetGroup, Target: "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/shop-web/1", Port: 8080}
	tgStage = providers.Binding{Kind: providers.BindingTargetGroup, Target: "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/shop-web-g/2", Port: 8080}
)

// bound is desired with web bound to b.
func bound(release, token string, b providers.Binding, procs ...providers.Process) providers.Desired {
	d := desired("shop", release, token, map[string]string{"V": release}, procs...)
	d.Bindings = map[string][]providers.Binding{"web": {b}}
	return d
}

// serving applies R1 (token t1) to shop, web bound to tgLive, and settles.
func (r *rack) serving(t *testing.T, procs ...providers.Process) providers.AppStatus {
	t.Helper()
	r.apply(t, bound("R1", "t1", tgLive, procs...))
	r.srv.Settle()
	return r.status(t, "shop")
}

func (r *rack) stage(t *testing.T, d providers.Desired) providers.Rollout {
	t.Helper()
	ro, err := r.sch.Stage(t.Context(), d)
	if err != nil {
		t.Fatalf("Stage(%v): %v", d, err)
	}
	return ro
}

// services lists the names of the cluster's ACTIVE services.
func (r *rack) services(t *testing.T) []string {
	t.Helper()
	out, err := r.client.ListServices(t.Context(), &ecs.ListServicesInput{Cluster: aws.String(cluster)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, arn := range out.ServiceArns {
		names = append(names, arn[strings.LastIndexByte(arn, '/')+1:])
	}
	slices.Sort(names)
	return names
}

// describe returns a service by name.
func (r *rack) describe(t *testing.T, name string) types.Service {
	t.Helper()
	out, err := r.client.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{name}, Include: []types.ServiceField{types.ServiceFieldTags}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("DescribeServices(%s) = %+v, %v", name, out, err)
	}
	return out.Services[0]
}

func tagValue(svc types.Service, key string) string {
	for _, tg := range svc.Tags {
		if aws.ToString(tg.Key) == key {
			return aws.ToString(tg.Value)
		}
	}
	return ""
}

// runningIDs returns the IDs of the running tasks of a release.
func runningIDs(st providers.AppStatus, release string) []string {
	var ids []string
	for _, tk := range st.Tasks {
		if tk.Release == release && tk.State == providers.TaskRunning {
			ids = append(ids, tk.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// stagedService is the name of the service staging shop's web process,
// read from the cluster.
func (r *rack) stagedService(t *testing.T) string {
	t.Helper()
	for _, n := range r.services(t) {
		if strings.HasPrefix(n, "shop_web--") {
			return n
		}
	}
	t.Fatalf("no staged web service among %v", r.services(t))
	return ""
}

// observation is what the step-by-step tests compare after each step.
type observation struct {
	Release string
	// Rollouts are "token release state", newest first.
	Rollouts []string
	// Running counts running tasks by release.
	Running map[string]int
}

func observe(st providers.AppStatus) observation {
	o := observation{Release: st.Release, Running: map[string]int{}}
	for _, ro := range st.Rollouts {
		o.Rollouts = append(o.Rollouts, ro.Token+" "+ro.Release+" "+string(ro.State))
	}
	for _, tk := range st.Tasks {
		if tk.State == providers.TaskRunning {
			o.Running[tk.Release]++
		}
	}
	return o
}

// steps observes the app, then steps the simulation and observes again,
// n times.
func (r *rack) steps(t *testing.T, n int) []observation {
	t.Helper()
	var got []observation
	for i := 0; i <= n; i++ {
		if i > 0 {
			r.srv.Step()
		}
		got = append(got, observe(r.status(t, "shop")))
	}
	return got
}

func TestStageRunsASecondServiceInTheStagedTargetGroup(t *testing.T) {
	r := newRack(t, nil)
	before := r.serving(t, web, worker)
	ro := r.stage(t, bound("R2", "t2", tgStage, web, worker))
	if diff := cmp.Diff(providers.Rollout{ID: "t2", Release: "R2", Token: "t2", State: providers.RolloutInProgress}, ro, ignoreStarted); diff != "" {
		t.Errorf("Stage rollout (-want +got):\n%s", diff)
	}
	r.srv.Settle()
	st := r.status(t, "shop")

	t.Run("the serving service keeps its task definition, target group and tasks", func(t *testing.T) {
		svc := r.describe(t, "shop_web")
		want := []types.LoadBalancer{{TargetGroupArn: aws.String(tgLive.Target), ContainerName: aws.String("web"), ContainerPort: aws.Int32(8080)}}
		if diff := cmp.Diff(want, svc.LoadBalancers, cmpSDK); diff != "" {
			t.Errorf("serving load balancers (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(runningIDs(before, "R1"), runningIDs(st, "R1")); diff != "" {
			t.Errorf("serving tasks (-before +staged):\n%s", diff)
		}
	})
	t.Run("each process is staged in a service named after it and the token, in the staged target group", func(t *testing.T) {
		names := r.services(t)
		re := regexp.MustCompile(`^shop_(web|worker)(--[0-9a-f]{8})?$`)
		for _, n := range names {
			if !re.MatchString(n) {
				t.Errorf("service %q does not match %s", n, re)
			}
		}
		if len(names) != 4 {
			t.Fatalf("services %v, want two serving and two staged", names)
		}
		svc := r.describe(t, r.stagedService(t))
		want := []types.LoadBalancer{{TargetGroupArn: aws.String(tgStage.Target), ContainerName: aws.String("web"), ContainerPort: aws.Int32(8080)}}
		if diff := cmp.Diff(want, svc.LoadBalancers, cmpSDK); diff != "" {
			t.Errorf("staged load balancers (-want +got):\n%s", diff)
		}
		if got := tagValue(svc, "convox:role"); got != "staged" {
			t.Errorf("staged service role tag = %q, want staged", got)
		}
	})
	t.Run("status reports the staged processes after the serving ones and the release stays the serving one", func(t *testing.T) {
		want := summary{Release: "R1", State: providers.RolloutCompleted, Processes: []providers.ProcessStatus{
			{Name: "web", Release: "R1", Desired: 2, Running: 2}, {Name: "web", Release: "R2", Desired: 2, Running: 2},
			{Name: "worker", Release: "R1", Desired: 1, Running: 1}, {Name: "worker", Release: "R2", Desired: 1, Running: 1},
		}}
		if diff := cmp.Diff(want, summarize(st)); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"t2 R2 completed", "t1 R1 completed"}, observe(st).Rollouts); diff != "" {
			t.Errorf("rollouts, the staged one first (-want +got):\n%s", diff)
		}
	})
}

func TestStageRules(t *testing.T) {
	tests := []struct {
		name string
		// run stages (or not) after R1 serves and returns the error of the
		// call under test.
		run func(t *testing.T, r *rack) error
		// wantErr is the sentinel the call returns, nil for success.
		wantErr error
		// wantCalls are the calls the call under test makes, by operation.
		wantCalls map[string]int
	}{
		{"an app never applied is not found and nothing changes",
			func(t *testing.T, r *rack) error {
				_, err := r.sch.Stage(t.Context(), desired("ghost", "R2", "t2", nil, web))
				return err
			},
			providers.ErrNotFound, map[string]int{"ListServices": 1}},
		{"an invalid desired state is refused before any call",
			func(t *testing.T, r *rack) error {
				d := bound("R2", "t2", tgStage, web)
				d.Bindings["web"] = []providers.Binding{{Kind: providers.BindingLocal, Target: "x"}}
				_, err := r.sch.Stage(t.Context(), d)
				return err
			},
			providers.ErrInvalid, map[string]int{}},
		{"staging the same token again changes nothing",
			func(t *testing.T, r *rack) error {
				r.stage(t, bound("R2", "t2", tgStage, web))
				r.calls.Reset()
				_, err := r.sch.Stage(t.Context(), bound("R2", "t2", tgStage, web))
				return err
			},
			nil, map[string]int{"ListServices": 1, "DescribeServices": 1}},
		{"staging the serving token again changes nothing",
			func(t *testing.T, r *rack) error {
				_, err := r.sch.Stage(t.Context(), bound("R1", "t1", tgStage, web))
				return err
			},
			nil, map[string]int{"ListServices": 1, "DescribeServices": 1}},
		{"a new token retires the previous stage and stages again",
			func(t *testing.T, r *rack) error {
				r.stage(t, bound("R2", "t2", tgStage, web))
				r.calls.Reset()
				_, err := r.sch.Stage(t.Context(), bound("R3", "t3", tgStage, web))
				return err
			},
			nil, map[string]int{"ListServices": 1, "DescribeServices": 1, "DescribeTaskDefinition": 1, "RegisterTaskDefinition": 1, "UpdateService": 1, "DeleteService": 1, "CreateService": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			r.serving(t, web)
			r.calls.Reset()
			err := tt.run(t, r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("call: %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantCalls, r.calls.Counts()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestANewTokenReplacesTheStagedRelease(t *testing.T) {
	r := newRack(t, nil)
	r.serving(t, web)
	r.stage(t, bound("R2", "t2", tgStage, web))
	r.srv.Settle()
	first := r.stagedService(t)
	r.stage(t, bound("R3", "t3", tgStage, web))
	r.srv.Settle()
	st := r.status(t, "shop")
	if diff := cmp.Diff(observation{Release: "R1", Rollouts: []string{"t3 R3 completed", "t1 R1 completed"}, Running: map[string]int{"R1": 2, "R3": 2}}, observe(st)); diff != "" {
		t.Errorf("status after staging R3 over R2 (-want +got):\n%s", diff)
	}
	if slices.Contains(r.services(t), first) {
		t.Errorf("the service of the replaced stage %s is still listed: %v", first, r.services(t))
	}
}

func TestPromoteStageSwitchesServicesWithoutRestartingTasks(t *testing.T) {
	r := newRack(t, nil)
	r.serving(t, web)
	r.stage(t, bound("R2", "t2", tgStage, web))
	r.srv.Settle()
	stagedTasks := runningIDs(r.status(t, "shop"), "R2")
	name := r.stagedService(t)
	r.calls.Reset()
	if err := r.sch.PromoteStage(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}

	t.Run("the old service is tagged, scaled to zero and deleted, the staged one only tagged", func(t *testing.T) {
		want := map[string]int{"ListServices": 1, "DescribeServices": 1, "TagResource": 1, "UpdateService": 1, "DeleteService": 1}
		if diff := cmp.Diff(want, r.calls.Counts()); diff != "" {
			t.Errorf("PromoteStage calls (-want +got):\n%s", diff)
		}
		svc := r.describe(t, name)
		got := map[string]string{}
		for _, k := range []string{"convox:role", "convox:promoted", "convox:replaced", "convox:base", "convox:prev-token", "convox:token"} {
			got[k] = tagValue(svc, k)
		}
		wantTags := map[string]string{"convox:role": "serving", "convox:promoted": "t2", "convox:replaced": "shop_web", "convox:base": "R1", "convox:prev-token": "t1", "convox:token": "t2"}
		if diff := cmp.Diff(wantTags, got); diff != "" {
			t.Errorf("tags of the promoted service (-want +got):\n%s", diff)
		}
	})
	t.Run("the release becomes the staged one once the old tasks drained and stopped", func(t *testing.T) {
		want := []observation{
			{Release: "R1", Rollouts: []string{"t2 R2 in-progress", "t1 R1 completed"}, Running: map[string]int{"R1": 2, "R2": 2}},
			{Release: "R1", Rollouts: []string{"t2 R2 in-progress", "t1 R1 completed"}, Running: map[string]int{"R1": 2, "R2": 2}},
			{Release: "R2", Rollouts: []string{"t2 R2 completed", "t1 R1 completed"}, Running: map[string]int{"R2": 2}},
		}
		if diff := cmp.Diff(want, r.steps(t, 2)); diff != "" {
			t.Errorf("observations after PromoteStage, one per step (-want +got):\n%s", diff)
		}
	})
	t.Run("the promoted tasks are the staged ones", func(t *testing.T) {
		if diff := cmp.Diff(stagedTasks, runningIDs(r.status(t, "shop"), "R2")); diff != "" {
			t.Errorf("running tasks of R2 (-staged +promoted):\n%s", diff)
		}
	})
	t.Run("the old service is gone once its tasks stopped", func(t *testing.T) {
		if diff := cmp.Diff([]string{name}, r.services(t)); diff != "" {
			t.Errorf("services (-want +got):\n%s", diff)
		}
	})
	t.Run("a later Apply updates the promoted service in place", func(t *testing.T) {
		r.calls.Reset()
		r.apply(t, bound("R3", "t3", tgStage, web))
		if n := r.calls.Count("CreateService"); n != 0 {
			t.Errorf("Apply after the promotion created %d services, want 0", n)
		}
		r.srv.Settle()
		if diff := cmp.Diff(observation{Release: "R3", Rollouts: []string{"t3 R3 completed", "t2 R2 completed"}, Running: map[string]int{"R3": 2}}, observe(r.status(t, "shop"))); diff != "" {
			t.Errorf("status after the Apply (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{name}, r.services(t)); diff != "" {
			t.Errorf("services (-want +got):\n%s", diff)
		}
	})
}

func TestPromoteStageFormationChanges(t *testing.T) {
	tests := []struct {
		name    string
		serving []providers.Process
		staged  []providers.Process
		want    []providers.ProcessStatus
	}{
		{"a process type only the staged release has becomes serving",
			[]providers.Process{web}, []providers.Process{web, worker},
			[]providers.ProcessStatus{{Name: "web", Release: "R2", Desired: 2, Running: 2}, {Name: "worker", Release: "R2", Desired: 1, Running: 1}}},
		{"a process type the staged release lacks is removed",
			[]providers.Process{web, worker}, []providers.Process{web},
			[]providers.ProcessStatus{{Name: "web", Release: "R2", Desired: 2, Running: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			r.serving(t, tt.serving...)
			r.stage(t, bound("R2", "t2", tgStage, tt.staged...))
			r.srv.Settle()
			if err := r.sch.PromoteStage(t.Context(), "shop"); err != nil {
				t.Fatal(err)
			}
			r.srv.Settle()
			st := r.status(t, "shop")
			if diff := cmp.Diff(summary{Release: "R2", State: providers.RolloutCompleted, Processes: tt.want}, summarize(st)); diff != "" {
				t.Errorf("status after the promotion (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]int{"R2": len(runningIDs(st, "R2"))}, observe(st).Running); diff != "" {
				t.Errorf("running tasks by release (-want +got):\n%s", diff)
			}
			if n := len(r.services(t)); n != len(tt.want) {
				t.Errorf("services %v, want one per process", r.services(t))
			}
		})
	}
}

// failOnce fails one call of one operation, after letting skip calls of
// it through, with a server error as an ECS outage would, and passes every
// other call through.
type failOnce struct {
	*ecs.Client
	op     string
	skip   int
	failed bool
}

func (f *failOnce) fail(op string) error {
	if op != f.op || f.failed {
		return nil
	}
	if f.skip > 0 {
		f.skip--
		return nil
	}
	f.failed = true
	return &smithy.GenericAPIError{Code: "ServerException", Message: "injected " + op + " failure", Fault: smithy.FaultServer}
}

func (f *failOnce) TagResource(ctx context.Context, in *ecs.TagResourceInput, o ...func(*ecs.Options)) (*ecs.TagResourceOutput, error) {
	if err := f.fail("TagResource"); err != nil {
		return nil, err
	}
	return f.Client.TagResource(ctx, in, o...)
}

func (f *failOnce) UpdateService(ctx context.Context, in *ecs.UpdateServiceInput, o ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error) {
	if err := f.fail("UpdateService"); err != nil {
		return nil, err
	}
	return f.Client.UpdateService(ctx, in, o...)
}

func (f *failOnce) DeleteService(ctx context.Context, in *ecs.DeleteServiceInput, o ...func(*ecs.Options)) (*ecs.DeleteServiceOutput, error) {
	if err := f.fail("DeleteService"); err != nil {
		return nil, err
	}
	return f.Client.DeleteService(ctx, in, o...)
}

func TestPromoteStageRetriedAfterAFailureCompletesThePromotion(t *testing.T) {
	tests := []struct {
		name  string
		op    string
		skip  int
		procs []providers.Process
	}{
		{"after scaling the old service down failed", "UpdateService", 0, []providers.Process{web}},
		{"after deleting the old service failed", "DeleteService", 0, []providers.Process{web}},
		{"after tagging the second staged service failed", "TagResource", 1, []providers.Process{web, worker}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ecstest.New(t, nil)
			client := ecs.NewFromConfig(awstest.ConfigFor(srv.URL))
			api := &failOnce{Client: client}
			r := &rack{srv: srv, client: client, calls: awstest.NewCounter(),
				sch: ecsscheduler.New(api, &ecsscheduler.Options{Cluster: cluster, Subnets: []string{"subnet-1"}})}
			r.serving(t, tt.procs...)
			r.stage(t, bound("R2", "t2", tgStage, tt.procs...))
			srv.Settle()
			api.op, api.skip = tt.op, tt.skip
			err := r.sch.PromoteStage(t.Context(), "shop")
			if !errors.Is(err, providers.ErrUnavailable) {
				t.Fatalf("PromoteStage with a failing %s: %v, want ErrUnavailable", tt.op, err)
			}
			if got := observe(r.status(t, "shop")); got.Release != "R1" {
				t.Errorf("release after the failed PromoteStage = %q, want R1 while the old services run", got.Release)
			}
			if err := r.sch.PromoteStage(t.Context(), "shop"); err != nil {
				t.Fatalf("PromoteStage again: %v, want nil", err)
			}
			srv.Settle()
			st := r.status(t, "shop")
			want := observation{Release: "R2", Rollouts: []string{"t2 R2 completed", "t1 R1 completed"}, Running: map[string]int{"R2": len(runningIDs(st, "R2"))}}
			if diff := cmp.Diff(want, observe(st)); diff != "" {
				t.Errorf("status after the retried PromoteStage (-want +got):\n%s", diff)
			}
			for _, name := range r.services(t) {
				svc := r.describe(t, name)
				got := [3]string{tagValue(svc, "convox:role"), tagValue(svc, "convox:base"), tagValue(svc, "convox:prev-token")}
				if diff := cmp.Diff([3]string{"serving", "R1", "t1"}, got); diff != "" {
					t.Errorf("role, base and previous rollout of %s (-want +got):\n%s", name, diff)
				}
			}
			if n := len(r.services(t)); n != len(tt.procs) {
				t.Errorf("services %v, want one per process", r.services(t))
			}
			err = r.sch.PromoteStage(t.Context(), "shop")
			if !errors.Is(err, providers.ErrNotFound) {
				t.Errorf("PromoteStage once the promotion completed: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestAFailedStagedRolloutIsNotPromoted(t *testing.T) {
	r := newRack(t, nil)
	r.serving(t, web)
	d := bound("R2", "t2", tgStage, web)
	d.Env["ECSTEST_EXIT_CODE"] = "3"
	r.stage(t, d)
	r.srv.Settle()
	st := r.status(t, "shop")
	if got := st.Rollouts[0]; got.State != providers.RolloutFailed || !strings.Contains(got.Reason, "circuit breaker") {
		t.Errorf("staged rollout %+v, want failed by the circuit breaker", got)
	}
	if err := r.sch.PromoteStage(t.Context(), "shop"); !errors.Is(err, providers.ErrConflict) {
		t.Errorf("PromoteStage of a failed stage: %v, want ErrConflict", err)
	}
	if err := r.sch.DiscardStage(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	r.srv.Settle()
	if diff := cmp.Diff(observation{Release: "R1", Rollouts: []string{"t1 R1 completed"}, Running: map[string]int{"R1": 2}}, observe(r.status(t, "shop"))); diff != "" {
		t.Errorf("status after discarding the failed stage (-want +got):\n%s", diff)
	}
}

func TestDiscardingAStage(t *testing.T) {
	tests := []struct {
		name string
		// starting discards while the staged tasks run but their rollout
		// is in progress, instead of once it completed.
		starting bool
		discard  func(t *testing.T, r *rack) error
		// want is the observation once everything settled.
		want observation
	}{
		{"DiscardStage drains the staged tasks and keeps the serving release", false,
			func(t *testing.T, r *rack) error { return r.sch.DiscardStage(t.Context(), "shop") },
			observation{Release: "R1", Rollouts: []string{"t1 R1 completed"}, Running: map[string]int{"R1": 2}}},
		{"CancelRollout of the staged rollout in progress discards the stage", true,
			func(t *testing.T, r *rack) error { return r.sch.CancelRollout(t.Context(), "shop", "t2") },
			observation{Release: "R1", Rollouts: []string{"t1 R1 completed"}, Running: map[string]int{"R1": 2}}},
		{"Apply while a stage exists discards it", false,
			func(t *testing.T, r *rack) error {
				_, err := r.sch.Apply(t.Context(), bound("R3", "t3", tgLive, web))
				return err
			},
			observation{Release: "R3", Rollouts: []string{"t3 R3 completed", "t1 R1 completed"}, Running: map[string]int{"R3": 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			r.serving(t, web)
			r.stage(t, bound("R2", "t2", tgStage, web))
			if tt.starting {
				r.srv.Step() // the tasks start
				r.srv.Step() // and run, not yet steady
				if st := r.status(t, "shop"); st.Rollouts[0].State != providers.RolloutInProgress {
					t.Fatalf("staged rollout %+v, want in progress", st.Rollouts[0])
				}
			} else {
				r.srv.Settle()
			}
			if err := tt.discard(t, r); err != nil {
				t.Fatal(err)
			}
			var drain []int
			for _, o := range r.steps(t, 2) {
				if o.Release != "R1" {
					t.Errorf("release %q while the stage drains, want R1", o.Release)
				}
				drain = append(drain, o.Running["R2"])
			}
			if diff := cmp.Diff([]int{2, 2, 0}, drain); diff != "" {
				t.Errorf("running staged tasks per step: reported while they drain, then stopped (-want +got):\n%s", diff)
			}
			r.srv.Settle()
			if diff := cmp.Diff(tt.want, observe(r.status(t, "shop"))); diff != "" {
				t.Errorf("observation once settled (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"shop_web"}, r.services(t)); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCancelRolloutLeavesAPromotedRolloutAlone(t *testing.T) {
	r := newRack(t, nil)
	r.serving(t, web)
	r.stage(t, bound("R2", "t2", tgStage, web))
	r.srv.Settle()
	if err := r.sch.PromoteStage(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	r.calls.Reset()
	if err := r.sch.CancelRollout(t.Context(), "shop", "t2"); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"UpdateService", "TagResource", "DeleteService"} {
		if n := r.calls.Count(op); n != 0 {
			t.Errorf("CancelRollout of a promoted rollout called %s %d times, want 0", op, n)
		}
	}
	r.srv.Settle()
	if diff := cmp.Diff(observation{Release: "R2", Rollouts: []string{"t2 R2 completed", "t1 R1 completed"}, Running: map[string]int{"R2": 2}}, observe(r.status(t, "shop"))); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestStagedServicesShareDescribeServicesBatches(t *testing.T) {
	tests := []struct {
		name          string
		apps, procs   int
		wantDescribes int
	}{
		{"5 apps with one process each, serving and staged: 10 services, 1 call", 5, 1, 1},
		{"3 apps with three processes each, serving and staged: 18 services, 2 calls", 3, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			var apps []string
			for i := range tt.apps {
				app := "app" + string(rune('a'+i))
				apps = append(apps, app)
				var procs []providers.Process
				for j := range tt.procs {
					procs = append(procs, providers.Process{Name: "p" + string(rune('a'+j)), Count: 1})
				}
				r.apply(t, desired(app, "R1", "t1", nil, procs...))
				r.srv.Settle()
				r.stage(t, desired(app, "R2", "t2", map[string]string{"V": "2"}, procs...))
			}
			r.srv.Settle()
			r.calls.Reset()
			m, err := r.sch.StatusMany(t.Context(), apps)
			if err != nil {
				t.Fatal(err)
			}
			for _, app := range apps {
				if got := len(m[app].Processes); got != 2*tt.procs {
					t.Errorf("app %s reports %d processes, want %d serving and staged", app, got, 2*tt.procs)
				}
			}
			if n := r.calls.Count("DescribeServices"); n != tt.wantDescribes {
				t.Errorf("DescribeServices calls = %d, want %d (calls: %v)", n, tt.wantDescribes, r.calls)
			}
		})
	}
}

func TestRetainedReleasesKeepTheirTaskDefinitions(t *testing.T) {
	r := newRack(t, nil)
	r.serving(t, web)
	r1 := aws.ToString(r.describe(t, "shop_web").TaskDefinition)
	r.stage(t, bound("R2", "t2", tgStage, web))
	r.srv.Settle()
	if err := r.sch.DiscardStage(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	r.stage(t, bound("R3", "t3", tgStage, web))
	r.srv.Settle()
	if err := r.sch.PromoteStage(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	r.srv.Settle()
	if n := r.calls.Count("DeregisterTaskDefinition"); n != 0 {
		t.Errorf("staging, discarding and promoting deregistered %d task definitions, want 0", n)
	}
	out, err := r.client.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(r1)})
	if err != nil {
		t.Fatal(err)
	}
	if out.TaskDefinition.Status != types.TaskDefinitionStatusActive {
		t.Errorf("R1's task definition is %s after R3 was promoted, want ACTIVE for a rollback", out.TaskDefinition.Status)
	}
}

func TestDeleteRemovesStagedServices(t *testing.T) {
	r := newRack(t, nil)
	r.serving(t, web)
	r.stage(t, bound("R2", "t2", tgStage, web))
	if err := r.sch.Delete(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string(nil), r.services(t)); diff != "" {
		t.Errorf("services after Delete (-want +got):\n%s", diff)
	}
	if _, err := r.sch.Status(t.Context(), "shop"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Status after Delete: %v, want ErrNotFound", err)
	}
}

func TestStagedServiceNamesFitECSAndNeverClash(t *testing.T) {
	tests := []struct {
		name         string
		app, process string
	}{
		{"the longest app and process names", strings.Repeat("a", 20), strings.Repeat("p", 7)},
		{"a process whose name extends another's", "shop", "web-green"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			d := desired(tt.app, "R1", "t1", nil, providers.Process{Name: tt.process, Count: 1}, providers.Process{Name: "web", Count: 1})
			r.apply(t, d)
			r.srv.Settle()
			d.Release, d.Token = "R2", "t2"
			r.stage(t, d)
			names := r.services(t)
			if len(slices.Compact(slices.Clone(names))) != 4 {
				t.Errorf("services %v, want four distinct", names)
			}
			for _, n := range names {
				if len(n) > 43 {
					t.Errorf("service name %q is %d characters, want at most 43", n, len(n))
				}
			}
		})
	}
}

func TestDrainingTasksAreReportedForTheirAppOnly(t *testing.T) {
	r := newRack(t, nil)
	for _, app := range []string{"shop", "shop-api"} { // the second shares the first's "shop-" prefix
		r.apply(t, desired(app, "R1", "t1", nil, web))
	}
	r.srv.Settle()
	if _, err := r.sch.Stage(t.Context(), desired("shop-api", "R2", "t2", nil, web)); err != nil {
		t.Fatal(err)
	}
	r.srv.Settle()
	if err := r.sch.DiscardStage(t.Context(), "shop-api"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		app  string
		want map[string]int
	}{
		{"shop", map[string]int{"R1": 2}},
		{"shop-api", map[string]int{"R1": 2, "R2": 2}},
	}
	for _, tt := range tests {
		t.Run("the running tasks of "+tt.app+" while shop-api's stage drains", func(t *testing.T) {
			if diff := cmp.Diff(tt.want, observe(r.status(t, tt.app)).Running); diff != "" {
				t.Errorf("running tasks by release (-want +got):\n%s", diff)
			}
		})
	}
}
