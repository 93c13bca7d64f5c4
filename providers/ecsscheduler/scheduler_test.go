package ecsscheduler_test

import (
	"context"
	"errors"
	"fmt"
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

const cluster = "test"

// rack is a scheduler over the in-process ECS server, with its calls counted.
type rack struct {
	sch    *ecsscheduler.Scheduler
	srv    *ecstest.Server
	client *ecs.Client
	calls  *awstest.Counter
}

func newRack(t *testing.T, opts *ecstest.Options) *rack {
	t.Helper()
	srv := ecstest.New(t, opts)
	calls := awstest.NewCounter()
	cfg := awstest.ConfigFor(srv.URL)
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	client := ecs.NewFromConfig(cfg)
	sch := ecsscheduler.New(client, &ecsscheduler.Options{
		Cluster:          cluster,
		Subnets:          []string{"subnet-1"},
		SecurityGroups:   []string{"sg-1"},
		ExecutionRoleARN: "arn:aws:iam::000000000000:role/exec",
	})
	return &rack{sch: sch, srv: srv, client: client, calls: calls}
}

var image = providers.Image{Repository: "000000000000.dkr.ecr.us-east-1.amazonaws.com/web", Digest: "sha256:" + strings.Repeat("a", 64)}

func desired(app, release, token string, env map[string]string, procs ...providers.Process) providers.Desired {
	return providers.Desired{App: app, Release: release, Token: token, Image: image, Env: env, Processes: procs}
}

var (
	web    = providers.Process{Name: "web", Count: 2, Port: 8080}
	worker = providers.Process{Name: "worker", Count: 1}
)

func (r *rack) apply(t *testing.T, d providers.Desired) providers.Rollout {
	t.Helper()
	ro, err := r.sch.Apply(t.Context(), d)
	if err != nil {
		t.Fatalf("Apply(%v): %v", d, err)
	}
	return ro
}

func (r *rack) status(t *testing.T, app string) providers.AppStatus {
	t.Helper()
	st, err := r.sch.Status(t.Context(), app)
	if err != nil {
		t.Fatalf("Status(%q): %v", app, err)
	}
	return st
}

// summary is the part of a status the tests compare.
type summary struct {
	Release   string
	State     providers.RolloutState
	Processes []providers.ProcessStatus
}

func summarize(st providers.AppStatus) summary {
	s := summary{Release: st.Release, Processes: st.Processes}
	if len(st.Rollouts) > 0 {
		s.State = st.Rollouts[0].State
	}
	return s
}

func TestApplyConvergesAndStatusReportsIt(t *testing.T) {
	r := newRack(t, nil)
	ro := r.apply(t, desired("shop", "R1", "t1", nil, web, worker))
	if diff := cmp.Diff(providers.Rollout{ID: "t1", Release: "R1", Token: "t1", State: providers.RolloutInProgress}, ro, ignoreStarted); diff != "" {
		t.Errorf("Apply rollout (-want +got):\n%s", diff)
	}
	want := summary{Release: "", State: providers.RolloutInProgress, Processes: []providers.ProcessStatus{
		{Name: "web", Release: "R1", Desired: 2}, {Name: "worker", Release: "R1", Desired: 1},
	}}
	if diff := cmp.Diff(want, summarize(r.status(t, "shop"))); diff != "" {
		t.Errorf("status before any step (-want +got):\n%s", diff)
	}

	r.srv.Settle()
	st := r.status(t, "shop")
	want = summary{Release: "R1", State: providers.RolloutCompleted, Processes: []providers.ProcessStatus{
		{Name: "web", Release: "R1", Desired: 2, Running: 2}, {Name: "worker", Release: "R1", Desired: 1, Running: 1},
	}}
	if diff := cmp.Diff(want, summarize(st)); diff != "" {
		t.Errorf("status after settling (-want +got):\n%s", diff)
	}
	var got []string
	for _, task := range st.Tasks {
		got = append(got, fmt.Sprintf("%s %s %s %t", task.Process, task.Release, task.State, task.Address != ""))
	}
	wantTasks := []string{"web R1 running true", "web R1 running true", "worker R1 running false"}
	if diff := cmp.Diff(wantTasks, got); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
}

func TestApplyIsIdempotentByToken(t *testing.T) {
	r := newRack(t, nil)
	first := r.apply(t, desired("shop", "R1", "t1", nil, web))
	r.calls.Reset()
	second := r.apply(t, desired("shop", "R1", "t1", nil, web))
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second Apply with the same token (-first +second):\n%s", diff)
	}
	for _, op := range []string{"RegisterTaskDefinition", "CreateService", "UpdateService", "TagResource", "DeleteService"} {
		if n := r.calls.Count(op); n != 0 {
			t.Errorf("second Apply with the same token called %s %d times, want 0 (calls: %v)", op, n, r.calls)
		}
	}
}

func TestUnchangedReapplyRegistersNoTaskDefinitionAndStartsNoDeployment(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, desired("shop", "R1", "t1", map[string]string{"A": "1"}, web, worker))
	r.srv.Settle()
	r.calls.Reset()
	r.apply(t, desired("shop", "R1", "t2", map[string]string{"A": "1"}, web, worker))
	if n := r.calls.Count("RegisterTaskDefinition"); n != 0 {
		t.Errorf("re-apply of an unchanged release registered %d task definitions, want 0 (calls: %v)", n, r.calls)
	}
	if diff := cmp.Diff(summary{Release: "R1", State: providers.RolloutCompleted, Processes: []providers.ProcessStatus{
		{Name: "web", Release: "R1", Desired: 2, Running: 2}, {Name: "worker", Release: "R1", Desired: 1, Running: 1},
	}}, summarize(r.status(t, "shop"))); diff != "" {
		t.Errorf("status right after the re-apply: it must not restart anything (-want +got):\n%s", diff)
	}

	r.calls.Reset()
	r.apply(t, desired("shop", "R2", "t3", map[string]string{"A": "2"}, web, worker))
	if n := r.calls.Count("RegisterTaskDefinition"); n != 2 {
		t.Errorf("a changed release registered %d task definitions, want 2 (one per process)", n)
	}
}

func TestStatusOf25ServicesCosts3DescribeServicesCalls(t *testing.T) {
	r := newRack(t, nil)
	var apps []string
	for i := range 5 {
		app := fmt.Sprintf("app%d", i)
		apps = append(apps, app)
		var procs []providers.Process
		for j := range 5 {
			procs = append(procs, providers.Process{Name: fmt.Sprintf("p%d", j), Count: 1})
		}
		r.apply(t, desired(app, "R1", "t1", nil, procs...))
	}
	r.srv.Settle()
	var big []providers.Process
	for j := range 25 {
		big = append(big, providers.Process{Name: fmt.Sprintf("p%d", j), Count: 1})
	}
	r.apply(t, desired("big", "R1", "t1", nil, big...))
	r.srv.Settle()

	r.calls.Reset()
	m, err := r.sch.StatusMany(t.Context(), apps)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 5 {
		t.Errorf("StatusMany returned %d apps, want 5", len(m))
	}
	if n := r.calls.Count("DescribeServices"); n != 3 {
		t.Errorf("StatusMany of 5 apps x 5 services: %d DescribeServices calls, want 3 (calls: %v)", n, r.calls)
	}

	r.calls.Reset()
	st := r.status(t, "big")
	if len(st.Processes) != 25 {
		t.Errorf("Status of an app with 25 processes lists %d", len(st.Processes))
	}
	if n := r.calls.Count("DescribeServices"); n != 3 {
		t.Errorf("Status of 25 services: %d DescribeServices calls, want 3 (calls: %v)", n, r.calls)
	}
	if n := r.calls.Count("DescribeTaskDefinition"); n != 0 {
		t.Errorf("a second poll described %d task definitions, want 0: revisions are cached (calls: %v)", n, r.calls)
	}
}

func TestCrashLoopTripsTheCircuitBreakerAndRollsBack(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, desired("shop", "R1", "t1", nil, web))
	r.srv.Settle()
	r.apply(t, desired("shop", "R2", "t2", map[string]string{"ECSTEST_EXIT_CODE": "3"}, web))
	r.srv.Settle()

	st := r.status(t, "shop")
	want := summary{Release: "R1", State: providers.RolloutFailed, Processes: []providers.ProcessStatus{
		{Name: "web", Release: "R1", Desired: 2, Running: 2},
	}}
	if diff := cmp.Diff(want, summarize(st)); diff != "" {
		t.Errorf("status after the crash loop (-want +got):\n%s", diff)
	}
	if reason := st.Rollouts[0].Reason; !strings.Contains(reason, "deployment failed: tasks failed to start") || !strings.HasPrefix(reason, "web: ") {
		t.Errorf("rollout reason = %q, want the process and the failed deployment", reason)
	}
	var crashed int
	for _, task := range st.Tasks {
		if task.State == providers.TaskStopped && task.Release == "R2" {
			crashed++
			if task.ExitCode == nil || *task.ExitCode != 3 || task.Reason != "Essential container in task exited" {
				t.Errorf("crashed task %s: exit code %v, reason %q; want 3 and the essential container reason", task.ID, task.ExitCode, task.Reason)
			}
		}
	}
	if crashed < 3 {
		t.Errorf("status lists %d crashed tasks of R2, want at least the breaker's threshold of 3", crashed)
	}

	// Re-applying the last good release reuses its task definition.
	r.calls.Reset()
	r.apply(t, desired("shop", "R1", "t3", nil, web))
	if n := r.calls.Count("RegisterTaskDefinition"); n != 0 {
		t.Errorf("re-applying the rolled-back-to release registered %d task definitions, want 0", n)
	}
	r.srv.Settle()
	if diff := cmp.Diff(summary{Release: "R1", State: providers.RolloutCompleted, Processes: []providers.ProcessStatus{
		{Name: "web", Release: "R1", Desired: 2, Running: 2},
	}}, summarize(r.status(t, "shop"))); diff != "" {
		t.Errorf("status after re-applying R1 (-want +got):\n%s", diff)
	}
}

func TestFirstReleaseCrashLoopFailsWithNoRelease(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, desired("shop", "R1", "t1", map[string]string{"ECSTEST_EXIT_CODE": "1"}, worker))
	r.srv.Settle()
	st := r.status(t, "shop")
	if diff := cmp.Diff(summary{Release: "", State: providers.RolloutFailed, Processes: []providers.ProcessStatus{
		{Name: "worker", Release: "R1", Desired: 1},
	}}, summarize(st)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestPollingWithAutoStepObservesTheRollout(t *testing.T) {
	r := newRack(t, &ecstest.Options{AutoStep: true})
	r.apply(t, desired("shop", "R1", "t1", nil, web))
	var states []providers.RolloutState
	for range 20 {
		st := r.status(t, "shop")
		s := st.Rollouts[0].State
		if len(states) == 0 || states[len(states)-1] != s {
			states = append(states, s)
		}
		if s != providers.RolloutInProgress {
			break
		}
	}
	if diff := cmp.Diff([]providers.RolloutState{providers.RolloutInProgress, providers.RolloutCompleted}, states); diff != "" {
		t.Errorf("observed rollout states (-want +got):\n%s", diff)
	}
}

func TestApplyRejectsInvalidDesiredStateBeforeAnyChange(t *testing.T) {
	tg := providers.Binding{Kind: providers.BindingTargetGroup, Target: "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/shop-web/1", Port: 8080}
	clb := providers.Binding{Kind: providers.BindingClassicELB, Target: "shop-web", Port: 8080}
	tests := []struct {
		name   string
		modify func(d *providers.Desired)
	}{
		{"unknown binding kind", func(d *providers.Desired) {
			d.Bindings = map[string][]providers.Binding{"web": {{Kind: providers.BindingLocal, Target: "x", Port: 8080}}}
		}},
		{"binding for a process not listed", func(d *providers.Desired) { d.Bindings = map[string][]providers.Binding{"api": {tg}} }},
		{"two classic balancers", func(d *providers.Desired) {
			d.Bindings = map[string][]providers.Binding{"web": {clb, {Kind: providers.BindingClassicELB, Target: "shop-web2", Port: 8080}}}
		}},
		{"six target groups", func(d *providers.Desired) {
			d.Bindings = map[string][]providers.Binding{"web": {tg, tg, tg, tg, tg, tg}}
		}},
		{"binding on a process without a port", func(d *providers.Desired) {
			d.Bindings = map[string][]providers.Binding{"worker": {{Kind: providers.BindingTargetGroup, Target: "arn"}}}
		}},
		{"invalid process name", func(d *providers.Desired) { d.Processes = append(d.Processes, providers.Process{Name: "Bad_Name"}) }},
		{"duplicate process", func(d *providers.Desired) { d.Processes = append(d.Processes, web) }},
		{"negative count", func(d *providers.Desired) { d.Processes[0].Count = -1 }},
		{"image not pinned", func(d *providers.Desired) { d.Image.Digest = "" }},
		{"invalid app name", func(d *providers.Desired) { d.App = "Shop" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			d := desired("shop", "R1", "t1", nil, web, worker)
			tt.modify(&d)
			_, err := r.sch.Apply(t.Context(), d)
			if !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Apply: %v, want ErrInvalid", err)
			}
			if diff := cmp.Diff(map[string]int{}, r.calls.Counts()); diff != "" {
				t.Errorf("Apply made calls before refusing (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBindingsAttachServicesToBalancers(t *testing.T) {
	tgARN := "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/shop-web/1"
	tests := []struct {
		name        string
		binding     providers.Binding
		wantLaunch  types.LaunchType
		wantNetwork types.NetworkMode
		wantLB      types.LoadBalancer
	}{
		{"a target group runs on Fargate with awsvpc",
			providers.Binding{Kind: providers.BindingTargetGroup, Target: tgARN, Port: 8080},
			types.LaunchTypeFargate, types.NetworkModeAwsvpc,
			types.LoadBalancer{TargetGroupArn: aws.String(tgARN), ContainerName: aws.String("web"), ContainerPort: aws.Int32(8080)}},
		{"a classic load balancer runs on EC2 with bridge networking",
			providers.Binding{Kind: providers.BindingClassicELB, Target: "shop-web"},
			types.LaunchTypeEc2, types.NetworkModeBridge,
			types.LoadBalancer{LoadBalancerName: aws.String("shop-web"), ContainerName: aws.String("web"), ContainerPort: aws.Int32(8080)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			if !r.sch.AcceptsBinding(tt.binding.Kind) {
				t.Fatalf("AcceptsBinding(%q) = false", tt.binding.Kind)
			}
			d := desired("shop", "R1", "t1", nil, web)
			d.Bindings = map[string][]providers.Binding{"web": {tt.binding}}
			r.apply(t, d)
			out, err := r.client.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{"shop_web"}})
			if err != nil {
				t.Fatal(err)
			}
			svc := out.Services[0]
			if svc.LaunchType != tt.wantLaunch {
				t.Errorf("launch type = %s, want %s", svc.LaunchType, tt.wantLaunch)
			}
			if diff := cmp.Diff([]types.LoadBalancer{tt.wantLB}, svc.LoadBalancers, cmpSDK); diff != "" {
				t.Errorf("load balancers (-want +got):\n%s", diff)
			}
			td, err := r.client.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: svc.TaskDefinition})
			if err != nil {
				t.Fatal(err)
			}
			if td.TaskDefinition.NetworkMode != tt.wantNetwork {
				t.Errorf("network mode = %s, want %s", td.TaskDefinition.NetworkMode, tt.wantNetwork)
			}
		})
	}
	if r := newRack(t, nil); r.sch.AcceptsBinding(providers.BindingLocal) {
		t.Error("AcceptsBinding(local) = true, want false")
	}
}

func TestTaskDefinitionLogsToTheAppsLogGroup(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, desired("shop", "R1", "t1", map[string]string{"B": "2", "A": "1"}, web))
	out, err := r.client.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(cluster + "_shop_web")})
	if err != nil {
		t.Fatal(err)
	}
	c := out.TaskDefinition.ContainerDefinitions[0]
	want := map[string]string{
		"awslogs-group": "/convox/shop", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web", "awslogs-create-group": "true",
	}
	if diff := cmp.Diff(want, c.LogConfiguration.Options); diff != "" {
		t.Errorf("awslogs options (-want +got):\n%s", diff)
	}
	var env []string
	for _, kv := range c.Environment {
		env = append(env, *kv.Name+"="+*kv.Value)
	}
	if diff := cmp.Diff([]string{"A=1", "B=2", "PORT=8080"}, env); diff != "" {
		t.Errorf("environment, sorted, with PORT (-want +got):\n%s", diff)
	}
	if got := aws.ToString(c.Image); got != image.Ref() {
		t.Errorf("image = %q, want the pinned reference %q", got, image.Ref())
	}
}

func TestProcessesMissingFromTheFormationAreRemoved(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, desired("shop", "R1", "t1", nil, web, worker))
	r.srv.Settle()
	r.apply(t, desired("shop", "R2", "t2", nil, web))
	r.srv.Settle()
	var names []string
	for _, p := range r.status(t, "shop").Processes {
		names = append(names, p.Name)
	}
	if diff := cmp.Diff([]string{"web"}, names); diff != "" {
		t.Errorf("processes (-want +got):\n%s", diff)
	}
}

func TestDeleteRemovesTheAppAndIsIdempotent(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, desired("shop", "R1", "t1", nil, web))
	r.apply(t, desired("shop-api", "R1", "t1", nil, web)) // shares the "shop-" prefix
	r.srv.Settle()
	if err := r.sch.Delete(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.sch.Status(t.Context(), "shop"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Status after Delete: %v, want ErrNotFound", err)
	}
	if err := r.sch.Delete(t.Context(), "shop"); err != nil {
		t.Errorf("second Delete: %v, want nil", err)
	}
	if st := r.status(t, "shop-api"); len(st.Processes) != 1 {
		t.Errorf("Delete of shop touched shop-api: %+v", st.Processes)
	}
	list, err := r.client.ListTaskDefinitions(t.Context(), &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String(cluster + "_shop_web")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.TaskDefinitionArns) != 0 {
		t.Errorf("active task definitions after Delete: %v", list.TaskDefinitionArns)
	}
}

func TestStatusOfAnUnknownAppIsNotFound(t *testing.T) {
	r := newRack(t, nil)
	if _, err := r.sch.Status(t.Context(), "ghost"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Status before the cluster exists: %v, want ErrNotFound", err)
	}
	r.apply(t, desired("shop", "R1", "t1", nil, web))
	if _, err := r.sch.Status(t.Context(), "ghost"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Status of an app never applied: %v, want ErrNotFound", err)
	}
	m, err := r.sch.StatusMany(t.Context(), []string{"ghost", "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["ghost"]; ok || len(m) != 1 {
		t.Errorf("StatusMany keys = %v, want only shop", m)
	}
}

func TestCancelRolloutGoesBackToThePreviousRelease(t *testing.T) {
	r := newRack(t, nil)
	r.apply(t, desired("shop", "R1", "t1", nil, web))
	r.srv.Settle()
	ro := r.apply(t, desired("shop", "R2", "t2", map[string]string{"V": "2"}, web))
	r.srv.Step()
	canceler := providers.Canceler(r.sch)
	if err := canceler.CancelRollout(t.Context(), "shop", ro.ID); err != nil {
		t.Fatal(err)
	}
	if err := canceler.CancelRollout(t.Context(), "shop", "unknown"); err != nil {
		t.Errorf("canceling an unknown rollout: %v, want nil", err)
	}
	r.srv.Settle()
	if diff := cmp.Diff(summary{Release: "R1", State: providers.RolloutCanceled, Processes: []providers.ProcessStatus{
		{Name: "web", Release: "R1", Desired: 2, Running: 2},
	}}, summarize(r.status(t, "shop"))); diff != "" {
		t.Errorf("status after cancel (-want +got):\n%s", diff)
	}
}

func TestRunTaskIsIdempotentAndReportsTheExitCode(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantExit int
	}{
		{"a task that succeeds exits 0", nil, 0},
		{"a failing task reports its exit code", map[string]string{"ECSTEST_EXIT_CODE": "2"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRack(t, nil)
			runner := providers.TaskRunner(r.sch)
			spec := providers.RunSpec{App: "shop", Release: "R1", Token: "run-1", Image: image, Env: tt.env, Process: web, Command: []string{"rake", "db:migrate"}}
			first, err := runner.RunTask(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			again, err := runner.RunTask(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			if first.ID != again.ID {
				t.Errorf("RunTask with the same token started %s and %s, want one task", first.ID, again.ID)
			}
			r.srv.Settle()
			got, err := runner.GetTask(t.Context(), "shop", first.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != providers.TaskStopped || got.ExitCode == nil || *got.ExitCode != tt.wantExit || got.Release != "R1" || got.Process != "web" {
				t.Errorf("GetTask = %+v, want stopped web task of R1 with exit code %d", got, tt.wantExit)
			}
		})
	}
}

func TestTaskRunnerNotFoundAndStopRules(t *testing.T) {
	r := newRack(t, nil)
	runner := providers.TaskRunner(r.sch)
	long, err := runner.RunTask(t.Context(), providers.RunSpec{App: "shop", Release: "R1", Token: "t", Image: image, Process: worker,
		Env: map[string]string{"ECSTEST_EXIT_CODE": "0", "ECSTEST_RUN_STEPS": "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runner.GetTask(t.Context(), "shop", "0123456789abcdef"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("GetTask of an unknown task: %v, want ErrNotFound", err)
	}
	if _, err := runner.GetTask(t.Context(), "other", long.ID); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("GetTask of another app's task: %v, want ErrNotFound", err)
	}
	if err := runner.StopTask(t.Context(), "shop", "0123456789abcdef"); err != nil {
		t.Errorf("StopTask of an unknown task: %v, want nil", err)
	}
	r.srv.Step()
	if err := runner.StopTask(t.Context(), "shop", long.ID); err != nil {
		t.Fatal(err)
	}
	got, err := runner.GetTask(t.Context(), "shop", long.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != providers.TaskStopped {
		t.Errorf("after StopTask the task is %s, want stopped", got.State)
	}
	if err := runner.StopTask(t.Context(), "shop", long.ID); err != nil {
		t.Errorf("StopTask of a stopped task: %v, want nil", err)
	}

	other, err := runner.RunTask(t.Context(), providers.RunSpec{App: "shop", Release: "R1", Token: "t2", Image: image, Process: worker,
		Env: map[string]string{"ECSTEST_EXIT_CODE": "0", "ECSTEST_RUN_STEPS": "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.sch.Delete(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
	if got, err := runner.GetTask(t.Context(), "shop", other.ID); err != nil || got.State != providers.TaskStopped {
		t.Errorf("after Delete the one-off task is %+v (%v), want stopped", got, err)
	}
}

func TestCanceledContextIsReturnedAsTheContextError(t *testing.T) {
	r := newRack(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.sch.Apply(ctx, desired("shop", "R1", "t1", nil, web))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a canceled context: %v, want context.Canceled", err)
	}
	for _, s := range []error{providers.ErrUnavailable, providers.ErrInvalid, providers.ErrNotFound} {
		if errors.Is(err, s) {
			t.Errorf("Apply with a canceled context matches %v", s)
		}
	}
}
