package ecstask_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/ecstask"
	"github.com/convox-go/convox/providers"
)

func TestFromECS(t *testing.T) {
	const arn = "arn:aws:ecs:us-east-1:123456789012:task/prod/0123abcd"
	started, stopped := time.Unix(1700000000, 0).UTC(), time.Unix(1700000100, 0).UTC()
	exit := func(n int) *int { return &n }
	container := func(status string, code *int32, reason string) types.Task {
		return types.Task{TaskArn: aws.String(arn), LastStatus: aws.String(status), StartedAt: &started,
			Containers: []types.Container{{ExitCode: code, Reason: aws.String(reason),
				NetworkInterfaces: []types.NetworkInterface{{PrivateIpv4Address: aws.String("10.0.0.7")}},
				NetworkBindings:   []types.NetworkBinding{{HostPort: aws.Int32(8080)}}}}}
	}
	stoppedTask := container("STOPPED", aws.Int32(2), "OutOfMemoryError")
	stoppedTask.StoppedAt, stoppedTask.StoppedReason = &stopped, aws.String("Essential container in task exited")
	for _, tc := range []struct {
		name string
		task types.Task
		want providers.Task
	}{
		{"a provisioning task is pending and has no container yet",
			types.Task{TaskArn: aws.String(arn), LastStatus: aws.String("PROVISIONING")},
			providers.Task{ID: "0123abcd", State: providers.TaskPending}},
		{"a running task publishing a port has an address and no exit code",
			container("RUNNING", nil, ""),
			providers.Task{ID: "0123abcd", State: providers.TaskRunning, Started: started, Address: "10.0.0.7:8080"}},
		{"a stopping task still counts as running",
			container("STOPPING", nil, ""),
			providers.Task{ID: "0123abcd", State: providers.TaskRunning, Started: started, Address: "10.0.0.7:8080"}},
		{"a stopped task has its exit code, both reasons and no address",
			stoppedTask,
			providers.Task{ID: "0123abcd", State: providers.TaskStopped, Started: started, Stopped: stopped, ExitCode: exit(2),
				Reason: "Essential container in task exited: OutOfMemoryError"}},
		{"a deprovisioning task is stopped; a container reason alone is the reason",
			container("DEPROVISIONING", aws.Int32(0), "CannotPullContainerError"),
			providers.Task{ID: "0123abcd", State: providers.TaskStopped, Started: started, ExitCode: exit(0), Reason: "CannotPullContainerError"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ecstask.FromECS(tc.task)); diff != "" {
				t.Errorf("FromECS (-want +got):\n%s", diff)
			}
		})
	}
}

func TestID(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:ecs:us-east-1:123456789012:task/prod/0123abcd": "0123abcd",
		"arn:aws:ecs:us-east-1:123456789012:task/0123abcd":      "0123abcd",
		"0123abcd": "0123abcd",
	} {
		if got := ecstask.ID(in); got != want {
			t.Errorf("ID(%q) = %q, want %q", in, got, want)
		}
	}
}

// stopper records the StopTask calls it is given and answers err.
type stopper struct {
	calls []string
	err   error
}

func (s *stopper) StopTask(_ context.Context, in *ecs.StopTaskInput, _ ...func(*ecs.Options)) (*ecs.StopTaskOutput, error) {
	s.calls = append(s.calls, aws.ToString(in.Cluster)+" "+aws.ToString(in.Task))
	return &ecs.StopTaskOutput{}, s.err
}

func TestStop(t *testing.T) {
	running := providers.Task{ID: "t1", State: providers.TaskRunning}
	for _, tc := range []struct {
		name    string
		task    providers.Task
		getErr  error
		stopErr error
		calls   []string
		wantErr error // nil: Stop returns nil
	}{
		{"an unknown task is not stopped again", providers.Task{}, providers.ErrNotFound, nil, nil, nil},
		{"a stopped task is not stopped again", providers.Task{ID: "t1", State: providers.TaskStopped}, nil, nil, nil, nil},
		{"a failed lookup is returned without a stop", providers.Task{}, providers.ErrUnavailable, nil, nil, providers.ErrUnavailable},
		{"a running task is stopped", running, nil, nil, []string{"prod t1"}, nil},
		{"a task gone before the stop is stopped", running, nil, &smithy.GenericAPIError{Code: "InvalidParameterException"}, []string{"prod t1"}, nil},
		{"another failure of the stop is returned, mapped", running, nil, &smithy.GenericAPIError{Code: "AccessDeniedException"}, []string{"prod t1"}, providers.ErrPermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &stopper{err: tc.stopErr}
			err := ecstask.Stop(t.Context(), api, "prod", "t1", func() (providers.Task, error) { return tc.task, tc.getErr })
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Stop = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.calls, api.calls); diff != "" {
				t.Errorf("StopTask calls (-want +got):\n%s", diff)
			}
		})
	}
}
