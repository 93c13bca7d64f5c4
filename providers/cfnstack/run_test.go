package cfnstack_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/providertest"
)

// ecsHonorsClientToken stands in front of moto's ECS, which ignores
// RunTask's clientToken, and plays what ECS does with it: "If you retry a
// request that completed successfully using the same client token and the
// same parameters, the retry succeeds without performing any further
// actions" and returns the original task; the same token with other
// parameters "fails with a ConflictException" (Amazon ECS API Reference,
// Ensuring idempotency). Nothing else changes.
type ecsHonorsClientToken struct {
	next http.RoundTripper

	mu   sync.Mutex
	runs map[string]run // by client token
}

type run struct{ request, response []byte }

func (e *ecsHonorsClientToken) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".RunTask") || req.Body == nil {
		return e.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	var in struct {
		ClientToken string `json:"clientToken"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	reply := func(status int, b []byte) *http.Response {
		return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}, Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: req}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev, ok := e.runs[in.ClientToken]; ok && in.ClientToken != "" {
		if bytes.Equal(prev.request, body) {
			return reply(http.StatusOK, prev.response), nil
		}
		return reply(http.StatusBadRequest, []byte(`{"__type":"ConflictException","message":"The client token was used with other parameters."}`)), nil
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	resp, err := e.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if e.runs == nil {
		e.runs = map[string]run{}
	}
	e.runs[in.ClientToken] = run{request: body, response: out}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	return resp, nil
}

// TestTaskRunnerConformanceOnMoto runs the scheduler suite's TaskRunner
// group on moto, with ECS's client-token idempotency played in front of
// it (ecsHonorsClientToken) and moto's departures in one-off tasks
// adapted (awstest.MotoRunsFargateTasks). The other groups wait for an app's tasks to
// run: moto's ECS never runs one, and the stack mode's Status lists no
// tasks (see TestSchedulerConformance). moto runs no command: its tasks
// move to STOPPED by themselves after a few DescribeTasks, their
// container with exit code 0, so the one-off command of "the task stops
// with the command's exit code" is one that exits 0 ("true"), and the
// output half of that rule is not checked (no Logs: nothing runs to
// write any).
func TestTaskRunnerConformanceOnMoto(t *testing.T) {
	tokens := &ecsHonorsClientToken{next: http.DefaultTransport}
	r := newRackWith(t, func(c *aws.Config) { c.APIOptions = append(c.APIOptions, awstest.MotoRunsFargateTasks) },
		func(c *aws.Config) {
			c.HTTPClient = &http.Client{Transport: tokens}
			c.APIOptions = append(c.APIOptions, awstest.MotoRunsFargateTasks)
		})
	providertest.TestScheduler(t, providertest.SchedulerHarness{
		New: func(t *testing.T) providertest.SchedulerSetup {
			if !strings.Contains(t.Name(), "/TaskRunner") {
				t.Skip("moto's ECS runs no task, and this group waits for running tasks; only the TaskRunner group runs on moto")
			}
			return providertest.SchedulerSetup{
				Scheduler: r.stack, Image: imageV1,
				Processes: []providers.Process{{Name: "web", Count: 1, Port: 8080}, {Name: "worker", Count: 1}},
				Run:       &providertest.RunCase{Command: []string{"true"}, ExitCode: 0},
			}
		},
		Poll: 10 * time.Millisecond, Timeout: 30 * time.Second,
	})
}

// ecsWrites are the mutating ECS operations.
var ecsWrites = []string{"CreateCluster", "RunTask", "StopTask", "RegisterTaskDefinition", "DeregisterTaskDefinition", "TagResource", "CreateService", "UpdateService", "DeleteService"}

// allWrites counts the mutating CloudFormation and ECS calls made since
// the last Reset.
func (r *rack) allWrites() map[string]int {
	out := r.writes()
	for op, n := range r.calls.Counts() {
		if slices.Contains(ecsWrites, op) && n > 0 {
			out[op] = n
		}
	}
	return out
}

// describeTask returns what ECS says of a task.
func (r *rack) describeTask(t *testing.T, id string) ecstypes.Task {
	t.Helper()
	out, err := r.ecs.DescribeTasks(t.Context(), &ecs.DescribeTasksInput{Cluster: aws.String(r.cluster), Tasks: []string{id}, Include: []ecstypes.TaskField{ecstypes.TaskFieldTags}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("DescribeTasks %s: %v %v", id, out, err)
	}
	return out.Tasks[0]
}

// TestOneOffTasksOnMoto checks what the stack mode's one-off tasks do on
// moto: a run of the deployed release uses the stack's task definition
// and changes nothing else; a run of another release registers one
// outside the stack, once; an app without a stack gets one with its log
// group; bad specs fail before any call; Delete stops the one-offs and
// deregisters what RunTask registered.
func TestOneOffTasksOnMoto(t *testing.T) {
	// moto's departures in one-off tasks adapted (see
	// awstest.MotoRunsFargateTasks).
	memory := func(c *aws.Config) { c.APIOptions = append(c.APIOptions, awstest.MotoRunsFargateTasks) }
	r := newRackWith(t, memory, memory)
	ctx := t.Context()
	app := awstest.Name(t, "runs")
	t.Cleanup(func() { r.stack.Delete(ctx, app) })
	spec := providers.RouteSpec{App: app, Process: "web", Port: 8080, Protocol: providers.HTTP}
	route, err := r.stack.EnsureRoute(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	r1 := release(app, "R1", "t1", imageV1, map[string]string{"MODE": "a"}, 1, 1, route.Binding)
	if _, err := r.stack.Apply(ctx, r1); err != nil {
		t.Fatal(err)
	}
	template := func() string {
		out, err := r.cfn.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: aws.String(r.stack.StackName(app))})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.TemplateBody)
	}
	before := template()
	runOf := func(rel, token string, img providers.Image, env map[string]string, command ...string) providers.RunSpec {
		return providers.RunSpec{App: app, Release: rel, Token: token, Image: img, Env: env, Process: r1.Processes[0], Command: command}
	}
	writes := map[string]map[string]int{}
	var tasks []string

	t.Run("a run of the deployed release uses the stack's task definition", func(t *testing.T) {
		r.calls.Reset()
		tk, err := r.stack.RunTask(ctx, runOf("R1", "run1", imageV1, map[string]string{"MODE": "a"}, "bin/migrate", "--all"))
		if err != nil {
			t.Fatal(err)
		}
		writes["run of the deployed release"] = r.allWrites()
		tasks = append(tasks, tk.ID)
		want := providers.Task{ID: tk.ID, App: app, Process: "web", Release: "R1", State: tk.State}
		if diff := cmp.Diff(want, tk, cmpopts.IgnoreFields(providers.Task{}, "Started")); diff != "" {
			t.Errorf("RunTask (-want +got):\n%s", diff)
		}
		svc, err := r.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(r.cluster), Services: []string{app + "-web"}})
		if err != nil || len(svc.Services) != 1 {
			t.Fatalf("DescribeServices: %v %v", svc, err)
		}
		got := r.describeTask(t, tk.ID)
		if a, b := aws.ToString(got.TaskDefinitionArn), aws.ToString(svc.Services[0].TaskDefinition); a != b {
			t.Errorf("the one-off runs task definition %s, want the web service's %s", a, b)
		}
		var command []string
		if got.Overrides != nil && len(got.Overrides.ContainerOverrides) == 1 {
			command = got.Overrides.ContainerOverrides[0].Command
		}
		if diff := cmp.Diff([]string{"bin/migrate", "--all"}, command); diff != "" {
			t.Errorf("command override (-want +got):\n%s", diff)
		}
		if after := template(); after != before {
			t.Errorf("the stack's template changed with a one-off")
		}
	})

	t.Run("a run of another release registers its task definition outside the stack, once", func(t *testing.T) {
		r.calls.Reset()
		tk, err := r.stack.RunTask(ctx, runOf("R2", "run2", imageV2, map[string]string{"MODE": "b"}))
		if err != nil {
			t.Fatal(err)
		}
		writes["run of another release"] = r.allWrites()
		r.calls.Reset()
		again, err := r.stack.RunTask(ctx, runOf("R2", "run3", imageV2, map[string]string{"MODE": "b"}))
		if err != nil {
			t.Fatal(err)
		}
		writes["second run of that release"] = r.allWrites()
		tasks = append(tasks, tk.ID, again.ID)
		a, b := r.describeTask(t, tk.ID), r.describeTask(t, again.ID)
		if aws.ToString(a.TaskDefinitionArn) != aws.ToString(b.TaskDefinitionArn) {
			t.Errorf("two runs of one release ran %s and %s, want one task definition", aws.ToString(a.TaskDefinitionArn), aws.ToString(b.TaskDefinitionArn))
		}
		td, err := r.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: a.TaskDefinitionArn})
		if err != nil {
			t.Fatal(err)
		}
		c := td.TaskDefinition.ContainerDefinitions[0]
		env := map[string]string{}
		for _, kv := range c.Environment {
			env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		}
		type def struct {
			FamilyPrefix bool
			Image        string
			Env          map[string]string
			Log          map[string]string
		}
		want := def{true, imageV2.Ref(), map[string]string{"MODE": "b", "PORT": "8080"},
			map[string]string{"awslogs-group": "/convox/" + app, "awslogs-region": awstest.Region, "awslogs-stream-prefix": "web"}}
		got := def{strings.HasPrefix(aws.ToString(td.TaskDefinition.Family), r.cluster+"-"+app+"_web_"), aws.ToString(c.Image), env, c.LogConfiguration.Options}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("the one-off's task definition (-want +got):\n%s", diff)
		}
		if after := template(); after != before {
			t.Errorf("the stack's template changed with a one-off")
		}
	})

	fresh := awstest.Name(t, "fresh")
	t.Cleanup(func() { r.stack.Delete(ctx, fresh) })
	t.Run("an app without a stack gets one holding its log group", func(t *testing.T) {
		r.calls.Reset()
		s := runOf("R1", "run4", imageV1, nil)
		s.App = fresh
		if _, err := r.stack.RunTask(ctx, s); err != nil {
			t.Fatal(err)
		}
		writes["run of an app without a stack"] = r.allWrites()
		res, err := r.cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String(r.stack.StackName(fresh))})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, x := range res.StackResources {
			ids = append(ids, aws.ToString(x.LogicalResourceId))
		}
		if diff := cmp.Diff([]string{"LogGroup"}, ids); diff != "" {
			t.Errorf("resources of the new stack (-want +got):\n%s", diff)
		}
	})

	t.Run("mutating calls per one-off", func(t *testing.T) {
		want := map[string]map[string]int{
			"run of the deployed release":   {"RunTask": 1},
			"run of another release":        {"RegisterTaskDefinition": 1, "RunTask": 1},
			"second run of that release":    {"RunTask": 1},
			"run of an app without a stack": {"CreateStack": 1, "RegisterTaskDefinition": 1, "RunTask": 1},
		}
		t.Logf("mutating CloudFormation and ECS calls: %v", writes)
		if diff := cmp.Diff(want, writes); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})

	long := make([]string, 0, 100)
	for range 100 {
		long = append(long, strings.Repeat("x", 100))
	}
	for _, tc := range []struct {
		name   string
		change func(*providers.RunSpec)
	}{
		{"a bad app name", func(s *providers.RunSpec) { s.App = "Bad_App" }},
		{"an empty token", func(s *providers.RunSpec) { s.Token = "" }},
		{"an image without a digest", func(s *providers.RunSpec) { s.Image.Digest = "" }},
		{"a secret by reference", func(s *providers.RunSpec) {
			s.Secret, s.SecretRefs = []string{"KEY"}, map[string]string{"KEY": "arn:aws:ssm:us-east-1:123456789012:parameter/k"}
		}},
		{"a command over ECS's 8192 characters of overrides", func(s *providers.RunSpec) { s.Command = long }},
		{"a command argument with NUL", func(s *providers.RunSpec) { s.Command = []string{"a\x00"} }},
	} {
		t.Run("invalid before any call: "+tc.name, func(t *testing.T) {
			s := runOf("R1", "bad", imageV1, nil)
			tc.change(&s)
			r.calls.Reset()
			if _, err := r.stack.RunTask(ctx, s); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("RunTask = %v, want ErrInvalid", err)
			}
			if n := r.calls.Counts(); len(n) != 0 {
				t.Errorf("calls before the error: %v, want none", n)
			}
		})
	}

	t.Run("another app's task is not found", func(t *testing.T) {
		if len(tasks) == 0 {
			t.Fatal("no task was started")
		}
		if _, err := r.stack.GetTask(ctx, fresh, tasks[0]); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("GetTask of %s's task as %s's = %v, want ErrNotFound", app, fresh, err)
		}
		r.calls.Reset()
		if err := r.stack.StopTask(ctx, fresh, tasks[0]); err != nil {
			t.Fatal(err)
		}
		if n := r.calls.Count("StopTask"); n != 0 {
			t.Errorf("StopTask of another app's task called ECS StopTask %d times, want none", n)
		}
	})

	t.Run("Delete stops the one-offs and deregisters their task definitions", func(t *testing.T) {
		if len(tasks) != 3 {
			t.Fatalf("started tasks %v, want 3", tasks)
		}
		outside := aws.ToString(r.describeTask(t, tasks[1]).TaskDefinitionArn)
		if err := r.stack.Delete(ctx, app); err != nil {
			t.Fatal(err)
		}
		// moto moves a task's last status towards STOPPED by itself, one
		// step per DescribeTasks; the desired status is what StopTask sets.
		var desired []string
		for _, id := range tasks {
			desired = append(desired, aws.ToString(r.describeTask(t, id).DesiredStatus))
		}
		if diff := cmp.Diff([]string{"STOPPED", "STOPPED", "STOPPED"}, desired); diff != "" {
			t.Errorf("desired status of the one-off tasks after Delete (-want +got):\n%s", diff)
		}
		td, err := r.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(outside)})
		if err != nil || td.TaskDefinition.Status != ecstypes.TaskDefinitionStatusInactive {
			t.Errorf("the one-off's own task definition after Delete: %v %v, want INACTIVE", td, err)
		}
	})
}
