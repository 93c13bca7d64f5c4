package ecstest_test

import (
	"errors"
	"fmt"
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
)

func setup(t *testing.T) (*ecstest.Server, *ecs.Client, string) {
	t.Helper()
	srv := ecstest.New(t, nil)
	client := ecs.NewFromConfig(awstest.ConfigFor(srv.URL))
	if _, err := client.CreateCluster(t.Context(), &ecs.CreateClusterInput{ClusterName: aws.String("c")}); err != nil {
		t.Fatal(err)
	}
	td := register(t, client, "app", nil)
	return srv, client, td
}

func register(t *testing.T, client *ecs.Client, family string, env map[string]string) string {
	t.Helper()
	var kv []types.KeyValuePair
	for k, v := range env {
		kv = append(kv, types.KeyValuePair{Name: aws.String(k), Value: aws.String(v)})
	}
	out, err := client.RegisterTaskDefinition(t.Context(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family), NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
		RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		ContainerDefinitions:    []types.ContainerDefinition{{Name: aws.String("main"), Image: aws.String("repo@sha256:1"), Environment: kv}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
}

var awsvpc = &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-1"}}}

func createService(t *testing.T, client *ecs.Client, name, td string, count int32) {
	t.Helper()
	_, err := client.CreateService(t.Context(), &ecs.CreateServiceInput{
		Cluster: aws.String("c"), ServiceName: aws.String(name), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(count),
		LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpc,
		DeploymentConfiguration: &types.DeploymentConfiguration{DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return fmt.Sprint(err)
}

func TestRequestsAreValidatedLikeECS(t *testing.T) {
	_, client, td := setup(t)
	var eleven []string
	for i := range 11 {
		eleven = append(eleven, fmt.Sprintf("s%d", i))
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"DescribeServices takes at most 10 services", func() error {
			_, err := client.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String("c"), Services: eleven})
			return err
		}, "InvalidParameterException"},
		{"a missing cluster is ClusterNotFoundException", func() error {
			_, err := client.ListServices(t.Context(), &ecs.ListServicesInput{Cluster: aws.String("missing")})
			return err
		}, "ClusterNotFoundException"},
		{"a missing task definition family is a ClientException", func() error {
			_, err := client.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("missing")})
			return err
		}, "ClientException"},
		{"awsvpc needs a network configuration", func() error {
			_, err := client.CreateService(t.Context(), &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String("x"), TaskDefinition: aws.String(td), LaunchType: types.LaunchTypeFargate})
			return err
		}, "InvalidParameterException"},
		{"a classic load balancer needs bridge networking", func() error {
			_, err := client.CreateService(t.Context(), &ecs.CreateServiceInput{Cluster: aws.String("c"), ServiceName: aws.String("x"), TaskDefinition: aws.String(td),
				NetworkConfiguration: awsvpc, LoadBalancers: []types.LoadBalancer{{LoadBalancerName: aws.String("lb"), ContainerName: aws.String("main"), ContainerPort: aws.Int32(80)}}})
			return err
		}, "InvalidParameterException"},
		{"updating a missing service is ServiceNotFoundException", func() error {
			_, err := client.UpdateService(t.Context(), &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("missing")})
			return err
		}, "ServiceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := code(tt.call()); got != tt.want {
				t.Errorf("error code = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOneOffTaskGoesPendingRunningStoppedWithItsExitCode(t *testing.T) {
	srv, client, _ := setup(t)
	td := register(t, client, "job", map[string]string{"ECSTEST_EXIT_CODE": "7"})
	run := func() string {
		out, err := client.RunTask(t.Context(), &ecs.RunTaskInput{Cluster: aws.String("c"), TaskDefinition: aws.String(td), NetworkConfiguration: awsvpc, ClientToken: aws.String("once")})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Tasks[0].TaskArn)
	}
	arn := run()
	if again := run(); again != arn {
		t.Errorf("RunTask with the same client token started %s, then %s", arn, again)
	}
	var got []string
	for range 3 {
		out, err := client.DescribeTasks(t.Context(), &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: []string{arn}})
		if err != nil {
			t.Fatal(err)
		}
		task := out.Tasks[0]
		got = append(got, fmt.Sprintf("%s exit=%d", aws.ToString(task.LastStatus), aws.ToInt32(task.Containers[0].ExitCode)))
		srv.Step()
	}
	want := []string{"PENDING exit=0", "RUNNING exit=0", "STOPPED exit=7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task states per step (-want +got):\n%s", diff)
	}
}

func TestCircuitBreakerRollsBackACrashLoopingDeployment(t *testing.T) {
	srv, client, good := setup(t)
	createService(t, client, "web", good, 2)
	srv.Settle()
	bad := register(t, client, "app", map[string]string{"ECSTEST_EXIT_CODE": "1"})
	if _, err := client.UpdateService(t.Context(), &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("web"), TaskDefinition: aws.String(bad)}); err != nil {
		t.Fatal(err)
	}
	srv.Settle()
	out, err := client.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String("c"), Services: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	svc := out.Services[0]
	type dep struct {
		TaskDefinition string
		State          types.DeploymentRolloutState
		Running        int32
	}
	var got []dep
	for _, d := range svc.Deployments {
		got = append(got, dep{aws.ToString(d.TaskDefinition), d.RolloutState, d.RunningCount})
	}
	if diff := cmp.Diff([]dep{{good, types.DeploymentRolloutStateCompleted, 2}}, got); diff != "" {
		t.Errorf("deployments after the crash loop (-want +got):\n%s", diff)
	}
	var messages []string
	for _, e := range svc.Events {
		messages = append(messages, aws.ToString(e.Message))
	}
	for _, want := range []string{"deployment failed: tasks failed to start.", "rolling back to deployment", "has reached a steady state."} {
		if !slices.ContainsFunc(messages, func(m string) bool { return strings.Contains(m, want) }) {
			t.Errorf("service events %q lack %q", messages, want)
		}
	}
	stopped, err := client.ListTasks(t.Context(), &ecs.ListTasksInput{Cluster: aws.String("c"), DesiredStatus: types.DesiredStatusStopped})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(stopped.TaskArns); n < 3 {
		t.Errorf("stopped tasks = %d, want at least the breaker's threshold of 3", n)
	}
}

func TestListServicesPagesByTenByDefault(t *testing.T) {
	_, client, td := setup(t)
	for i := range 12 {
		createService(t, client, fmt.Sprintf("s%02d", i), td, 0)
	}
	var pages []int
	var token *string
	for {
		out, err := client.ListServices(t.Context(), &ecs.ListServicesInput{Cluster: aws.String("c"), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(out.ServiceArns))
		if token = out.NextToken; token == nil {
			break
		}
	}
	if diff := cmp.Diff([]int{10, 2}, pages); diff != "" {
		t.Errorf("page sizes (-want +got):\n%s", diff)
	}
}

func TestUnsupportedOperationsSaySo(t *testing.T) {
	_, client, _ := setup(t)
	_, err := client.ListClusters(t.Context(), &ecs.ListClustersInput{})
	if got := code(err); got != "UnknownOperationException" {
		t.Errorf("ListClusters error code = %q, want UnknownOperationException", got)
	}
}

func TestDeletingAServiceScaledToZeroDrainsItLikeECS(t *testing.T) {
	srv, client, td := setup(t)
	createService(t, client, "web", td, 2)
	srv.Settle()
	if _, err := client.UpdateService(t.Context(), &ecs.UpdateServiceInput{Cluster: aws.String("c"), Service: aws.String("web"), DesiredCount: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteService(t.Context(), &ecs.DeleteServiceInput{Cluster: aws.String("c"), Service: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	// state is what a client sees of the service and its tasks.
	type state struct {
		Listed   bool
		Status   string // from DescribeServices, "MISSING" when it fails the service
		Tasks    []string
		Recreate string // error code of CreateService with the same name, "" when it succeeds
	}
	look := func() state {
		var st state
		list, err := client.ListServices(t.Context(), &ecs.ListServicesInput{Cluster: aws.String("c")})
		if err != nil {
			t.Fatal(err)
		}
		st.Listed = len(list.ServiceArns) > 0
		out, err := client.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String("c"), Services: []string{"web"}})
		if err != nil {
			t.Fatal(err)
		}
		st.Status = "MISSING"
		if len(out.Services) > 0 {
			st.Status = aws.ToString(out.Services[0].Status)
		}
		var arns []string
		for _, desired := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
			tasks, err := client.ListTasks(t.Context(), &ecs.ListTasksInput{Cluster: aws.String("c"), ServiceName: aws.String("web"), DesiredStatus: desired})
			if err != nil {
				t.Fatal(err)
			}
			arns = append(arns, tasks.TaskArns...)
		}
		desc, err := client.DescribeTasks(t.Context(), &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: arns})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range desc.Tasks {
			st.Tasks = append(st.Tasks, aws.ToString(tk.LastStatus))
		}
		return st
	}
	recreate := func() string {
		_, err := client.CreateService(t.Context(), &ecs.CreateServiceInput{
			Cluster: aws.String("c"), ServiceName: aws.String("web"), TaskDefinition: aws.String(td), DesiredCount: aws.Int32(0),
			LaunchType: types.LaunchTypeFargate, NetworkConfiguration: awsvpc,
		})
		if err != nil {
			return code(err)
		}
		return ""
	}
	var got []state
	for i := range 3 {
		if i > 0 {
			srv.Step()
		}
		st := look()
		if i < 2 {
			st.Recreate = recreate()
		}
		got = append(got, st)
	}
	got[2].Recreate = recreate()
	want := []state{
		{Listed: false, Status: "DRAINING", Tasks: []string{"RUNNING", "RUNNING"}, Recreate: "InvalidParameterException"},
		{Listed: false, Status: "DRAINING", Tasks: []string{"DEACTIVATING", "DEACTIVATING"}, Recreate: "InvalidParameterException"},
		{Listed: false, Status: "MISSING", Tasks: []string{"STOPPED", "STOPPED"}, Recreate: ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the deleted service and its tasks, per step (-want +got):\n%s", diff)
	}
}

func TestCrashImageNowStopsRunningTasksOfTheImage(t *testing.T) {
	srv, client, td := setup(t)
	other, err := client.RegisterTaskDefinition(t.Context(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String("other"), NetworkMode: types.NetworkModeAwsvpc, Cpu: aws.String("256"), Memory: aws.String("512"),
		RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		ContainerDefinitions:    []types.ContainerDefinition{{Name: aws.String("main"), Image: aws.String("repo@sha256:2")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	createService(t, client, "web", td, 2)
	createService(t, client, "api", aws.ToString(other.TaskDefinition.TaskDefinitionArn), 1)
	srv.Settle()
	srv.CrashImageNow("repo@sha256:1", 4)
	srv.Step()
	tasks, err := client.ListTasks(t.Context(), &ecs.ListTasksInput{Cluster: aws.String("c"), DesiredStatus: types.DesiredStatusStopped})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := client.DescribeTasks(t.Context(), &ecs.DescribeTasksInput{Cluster: aws.String("c"), Tasks: tasks.TaskArns})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range desc.Tasks {
		got = append(got, fmt.Sprintf("%s exit=%d", aws.ToString(tk.Group), aws.ToInt32(tk.Containers[0].ExitCode)))
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"service:web exit=4", "service:web exit=4"}, got); diff != "" {
		t.Errorf("stopped tasks after CrashImageNow of web's image (-want +got):\n%s", diff)
	}
}
