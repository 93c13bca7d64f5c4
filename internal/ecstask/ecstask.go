// Package ecstask maps Amazon ECS tasks to providers.Task, once for the
// providers that run ECS tasks (ecsscheduler and cfnstack).
//
//	out, err := api.DescribeTasks(ctx, in)
//	// ...
//	t := ecstask.FromECS(out.Tasks[0])
//	t.App, t.Process, t.Release = app, process, release // the caller knows them
package ecstask

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// ID returns the task ID of a task ARN: its last path segment (an ID is
// returned as it is).
func ID(arn string) string { return arn[strings.LastIndexByte(arn, '/')+1:] }

// FromECS maps t: its ID, state (ECS's RUNNING, DEACTIVATING and STOPPING
// are running; DEPROVISIONING and STOPPED are stopped; every other status
// is pending), stop reason (with the first container's reason), times,
// the first container's exit code once stopped, and the address of a
// task that is not stopped and publishes a port. App, Process and Release
// are left to the caller.
func FromECS(t types.Task) providers.Task {
	out := providers.Task{
		ID:      ID(aws.ToString(t.TaskArn)),
		Reason:  aws.ToString(t.StoppedReason),
		Started: aws.ToTime(t.StartedAt),
		Stopped: aws.ToTime(t.StoppedAt),
	}
	switch aws.ToString(t.LastStatus) {
	case "RUNNING", "DEACTIVATING", "STOPPING":
		out.State = providers.TaskRunning
	case "DEPROVISIONING", "STOPPED":
		out.State = providers.TaskStopped
	default:
		out.State = providers.TaskPending
	}
	if len(t.Containers) == 0 {
		return out
	}
	c := t.Containers[0]
	if out.State == providers.TaskStopped && c.ExitCode != nil {
		code := int(*c.ExitCode)
		out.ExitCode = &code
	}
	if r := aws.ToString(c.Reason); r != "" {
		out.Reason = strings.TrimPrefix(out.Reason+": "+r, ": ")
	}
	ip := ""
	if len(c.NetworkInterfaces) > 0 {
		ip = aws.ToString(c.NetworkInterfaces[0].PrivateIpv4Address)
	}
	if ip != "" && len(c.NetworkBindings) > 0 && out.State != providers.TaskStopped {
		out.Address = fmt.Sprintf("%s:%d", ip, aws.ToInt32(c.NetworkBindings[0].HostPort))
	}
	return out
}

// StopAPI is the ECS call Stop makes; *ecs.Client implements it.
type StopAPI interface {
	StopTask(context.Context, *ecs.StopTaskInput, ...func(*ecs.Options)) (*ecs.StopTaskOutput, error)
}

// Stop stops task id of cluster as providers.TaskRunner.StopTask says:
// get (the provider's GetTask of it, which checks the app) finding it
// unknown (providers.ErrNotFound) or stopped is nil, and so is a task gone
// between get and StopTask (ECS's InvalidParameterException, "The
// referenced task was not found").
func Stop(ctx context.Context, api StopAPI, cluster, id string, get func() (providers.Task, error)) error {
	t, err := get()
	if errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.State == providers.TaskStopped {
		return nil
	}
	_, err = api.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(cluster), Task: aws.String(id), Reason: aws.String("Stopped by convox")})
	if err != nil && awserr.Code(err) != "InvalidParameterException" {
		return awserr.Wrap(fmt.Sprintf("stop task %q", id), err)
	}
	return nil
}
