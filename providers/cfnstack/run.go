package cfnstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/ecstask"
	"github.com/convox-go/convox/providers"
)

// One-off tasks (providers.TaskRunner).
//
// A one-off task runs on the stack's cluster and never changes the stack.
// Its task definition is the stack's own when the stack holds the one the
// run needs: task definitions are stack resources named by a hash of
// their content, so rendering the run's process as Apply does names the
// resource to look up (DescribeStackResource), and a run of the deployed
// release registers nothing. Any other run (another release, another
// environment) registers a task definition outside the stack, in a family
// named by the hash of its content ("<cluster>-<app>_<process>_<hash>"),
// reused by every run of that content and deregistered by Delete. It
// cannot be the stack's: adding it to the template would be a stack
// update, and ECS overrides cannot change a task definition's image or
// remove its variables.

var _ providers.TaskRunner = (*Stack)(nil)

// Tags of a one-off task: whose it is and what it runs.
const (
	tagApp     = "convox:app"
	tagProcess = "convox:process"
	tagRelease = "convox:release"
	tagToken   = "convox:token"
)

// maxOverrides is the most characters ECS takes in a RunTask's overrides,
// JSON included ("A total of 8192 characters are allowed for overrides",
// Amazon ECS API Reference, RunTask).
const maxOverrides = 8192

// maxFamily is the longest task definition family ECS takes.
const maxFamily = 255

// maxTaskID bounds a task ID or ARN given to GetTask and StopTask.
const maxTaskID = 256

// startedBy marks an app's one-off tasks; Delete lists them by it (ECS
// allows 36 characters: apps have at most 20).
func startedBy(app string) string { return "convox:" + app }

// runFamilyPrefix begins the families of an app's out-of-stack task
// definitions: no app or process name holds "_", so no other app's
// family (nor a stack's, "<cluster>-<app>-<process>") begins with it.
func (s *Stack) runFamilyPrefix(app string) string { return s.opts.Cluster + "-" + app + "_" }

// RunTask starts a one-off task of spec.Process with spec.Command (the
// process's command when empty), spec.Image and spec.Env, on the stack's
// cluster and network, logging to the app's log group like its services.
// It is idempotent by spec.Token (ECS's client token: a retry within 24
// hours returns the same task). An app without a stack gets one holding
// only its log group first, as a first EnsureRoute does: the task logs
// there, and a log group made outside the stack would make the stack's
// creation fail later; with Options.ExternalLogGroup it gets none (the
// task's log driver creates the group when missing). The stack mode keeps
// no secret by reference: a spec with SecretRefs is invalid.
func (s *Stack) RunTask(ctx context.Context, spec providers.RunSpec) (providers.Task, error) {
	if err := spec.Validate(s.Limits()); err != nil {
		return providers.Task{}, err
	}
	if spec.Token == "" {
		return providers.Task{}, providers.Invalidf("run of %s/%s: the token is empty", spec.App, spec.Process.Name)
	}
	if spec.Image.Repository == "" || spec.Image.Digest == "" {
		return providers.Task{}, providers.Invalidf("run of %s/%s: image %q is not pinned to a digest", spec.App, spec.Process.Name, spec.Image.Ref())
	}
	if len(spec.SecretRefs) > 0 {
		return providers.Task{}, providers.Invalidf("run of %s/%s: the stack mode keeps secret values in its task definitions and takes no secret references", spec.App, spec.Process.Name)
	}
	p := spec.Process
	// "<prefix><process>_<hash>", the hash being taskDefinitionID's 12 hex digits.
	if n := len(s.runFamilyPrefix(spec.App)) + len(p.Name) + 1 + 12; n > maxFamily {
		return providers.Task{}, providers.Invalidf("run of %s/%s: its task definition family would be %d characters; ECS allows %d", spec.App, p.Name, n, maxFamily)
	}
	in := &ecs.RunTaskInput{
		Cluster:    aws.String(s.opts.Cluster),
		LaunchType: ecstypes.LaunchTypeFargate,
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: s.opts.Subnets, SecurityGroups: s.opts.SecurityGroups,
			AssignPublicIp: ecstypes.AssignPublicIp(cmpOr(s.opts.AssignPublicIP, "DISABLED")),
		}},
		ClientToken: aws.String(clientToken(s.opts.Cluster, spec.App, spec.Token)),
		StartedBy:   aws.String(startedBy(spec.App)),
		Tags: []ecstypes.Tag{
			{Key: aws.String(tagApp), Value: aws.String(spec.App)},
			{Key: aws.String(tagProcess), Value: aws.String(p.Name)},
			{Key: aws.String(tagRelease), Value: aws.String(spec.Release)},
			{Key: aws.String(tagToken), Value: aws.String(spec.Token)},
		},
	}
	if len(spec.Command) > 0 {
		in.Overrides = &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{Name: aws.String(p.Name), Command: spec.Command}}}
		b, err := json.Marshal(map[string]any{"containerOverrides": []map[string]any{{"name": p.Name, "command": spec.Command}}})
		if err != nil {
			return providers.Task{}, err
		}
		if len(b) > maxOverrides {
			return providers.Task{}, providers.Invalidf("run of %s/%s: the command is %d characters as ECS overrides; ECS takes at most %d", spec.App, p.Name, len(b), maxOverrides)
		}
	}
	if err := s.ensureCluster(ctx); err != nil {
		return providers.Task{}, err
	}
	td, err := s.runTaskDefinition(ctx, spec)
	if err != nil {
		return providers.Task{}, err
	}
	in.TaskDefinition = aws.String(td)
	out, err := s.ecs.RunTask(ctx, in)
	if err != nil {
		if awserr.Code(err) == "ConflictException" {
			return providers.Task{}, awserr.As(fmt.Sprintf("run task of %s/%s: token %q started another one-off", spec.App, p.Name, spec.Token), providers.ErrConflict, err)
		}
		return providers.Task{}, awserr.Wrap(fmt.Sprintf("run task of %s/%s", spec.App, p.Name), err)
	}
	if len(out.Tasks) == 0 {
		reason := "no task started"
		if len(out.Failures) > 0 {
			reason = strings.TrimSpace(aws.ToString(out.Failures[0].Reason) + " " + aws.ToString(out.Failures[0].Detail))
		}
		return providers.Task{}, fmt.Errorf("run task of %s/%s: %w: %s", spec.App, p.Name, providers.ErrUnavailable, reason)
	}
	t := ecstask.FromECS(out.Tasks[0])
	t.App, t.Process, t.Release = spec.App, p.Name, spec.Release
	return t, nil
}

// clientToken is RunTask's client token of a run: at most 64 characters,
// distinct per cluster, app and token.
func clientToken(cluster, app, token string) string {
	sum := sha256.Sum256([]byte(cluster + "\n" + app + "\n" + token))
	return hex.EncodeToString(sum[:])
}

// runTaskDefinition returns the ARN of the task definition spec runs:
// the stack's when it holds it, else one registered outside the stack.
func (s *Stack) runTaskDefinition(ctx context.Context, spec providers.RunSpec) (string, error) {
	inStack, external, err := s.runStack(ctx, spec.App)
	if err != nil {
		return "", err
	}
	env := environment(spec.Env)
	props := s.taskDefinition(spec.App, spec.Process, spec.Image, env, external)
	id, err := taskDefinitionID(spec.Process.Name, props)
	if err != nil {
		return "", err
	}
	stack := s.StackName(spec.App)
	if inStack {
		out, err := s.cfn.DescribeStackResource(ctx, &cloudformation.DescribeStackResourceInput{StackName: aws.String(stack), LogicalResourceId: aws.String(id)})
		switch {
		case err == nil && out.StackResourceDetail != nil:
			d := out.StackResourceDetail
			if arn := aws.ToString(d.PhysicalResourceId); arn != "" && usableResource(d.ResourceStatus) {
				return arn, nil
			}
		case err != nil && !missing(err):
			return "", awserr.Wrap(fmt.Sprintf("describe resource %s of stack %s", id, stack), err)
		}
	}
	// Outside the stack: the same definition in a family of its own,
	// logging to the log group by name.
	sum := strings.TrimPrefix(id, "TaskOf"+logicalName(spec.Process.Name)+"V")
	family := s.runFamilyPrefix(spec.App) + spec.Process.Name + "_" + sum
	got, err := s.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(family)})
	switch {
	case err == nil && got.TaskDefinition != nil && got.TaskDefinition.Status == ecstypes.TaskDefinitionStatusActive:
		return aws.ToString(got.TaskDefinition.TaskDefinitionArn), nil
	case err != nil && !missingTaskDefinition(err):
		return "", awserr.Wrap("describe task definition "+family, err)
	}
	c := props.ContainerDefinitions[0]
	logs := map[string]string{"awslogs-group": s.opts.LogGroup(spec.App), "awslogs-region": s.opts.Region, "awslogs-stream-prefix": c.Name}
	if external != "" {
		logs["awslogs-group"], logs[awslogsCreateGroup] = external, "true"
	}
	reg := &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family), Cpu: aws.String(props.Cpu), Memory: aws.String(props.Memory),
		NetworkMode: ecstypes.NetworkModeAwsvpc, RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate},
		ContainerDefinitions: []ecstypes.ContainerDefinition{{
			Name: aws.String(c.Name), Image: aws.String(c.Image), Essential: aws.Bool(true), Command: c.Command,
			LogConfiguration: &ecstypes.LogConfiguration{LogDriver: ecstypes.LogDriverAwslogs, Options: logs},
		}},
	}
	if props.ExecutionRoleArn != "" {
		reg.ExecutionRoleArn = aws.String(props.ExecutionRoleArn)
	}
	if props.TaskRoleArn != "" {
		reg.TaskRoleArn = aws.String(props.TaskRoleArn)
	}
	for _, v := range c.Environment {
		reg.ContainerDefinitions[0].Environment = append(reg.ContainerDefinitions[0].Environment, ecstypes.KeyValuePair{Name: aws.String(v.Name), Value: aws.String(v.Value)})
	}
	for _, pm := range c.PortMappings {
		reg.ContainerDefinitions[0].PortMappings = append(reg.ContainerDefinitions[0].PortMappings, ecstypes.PortMapping{ContainerPort: aws.Int32(int32(pm.ContainerPort)), Protocol: ecstypes.TransportProtocolTcp})
	}
	out, err := s.ecs.RegisterTaskDefinition(ctx, reg)
	if err != nil {
		return "", awserr.Wrap("register task definition "+family, err)
	}
	return aws.ToString(out.TaskDefinition.TaskDefinitionArn), nil
}

// usableResource reports whether a stack resource in status st exists
// and is not being replaced away or deleted.
func usableResource(st cfntypes.ResourceStatus) bool {
	s := string(st)
	return !strings.HasPrefix(s, "DELETE_") && !strings.HasPrefix(s, "CREATE_") || st == cfntypes.ResourceStatusCreateComplete
}

// missingTaskDefinition reports ECS's answer for a family with no active
// revision: a ClientException "Unable to describe task definition".
func missingTaskDefinition(err error) bool {
	return awserr.Code(err) == "ClientException" && strings.Contains(err.Error(), "Unable to describe task definition")
}

// runStack returns where a one-off of app finds its task definition and
// logs: inStack reports whether the app's stack exists (and may hold the
// run's task definition), external is the name of the log group when the
// Logs provider owns it (empty when the stack declares it). A stack's own
// choice (its template's) is kept; an app without a stack takes the
// option's. Without a stack, a stack-owned log group needs a stack: the
// app gets one holding only its log group, as a first EnsureRoute does,
// so that the task has a group to log to and no group made outside the
// stack makes its creation fail later. An external group needs none: the
// Logs provider made it, or the task's log driver makes it.
func (s *Stack) runStack(ctx context.Context, app string) (inStack bool, external string, err error) {
	st, err := s.describe(ctx, app)
	if err != nil && !errors.Is(err, providers.ErrNotFound) {
		return false, "", err
	}
	found := err == nil
	if found && !holdsResources(st.Status) || !found && !s.opts.ExternalLogGroup {
		// An operation in flight, a failed creation, or a log group to
		// make: under the app's lock, wait for the stack (clearing a
		// failed creation away) and make it when still missing.
		unlock, err := s.lock(ctx, app)
		if err != nil {
			return false, "", err
		}
		defer unlock()
		_, err = s.usable(ctx, app)
		if err != nil && !errors.Is(err, providers.ErrNotFound) {
			return false, "", err
		}
		found = err == nil
		if !found && !s.opts.ExternalLogGroup {
			if _, err := s.change(ctx, app, s.newTemplate(app), false, ""); err != nil {
				return false, "", err
			}
			return false, "", nil // the new stack holds no task definition
		}
	}
	if !found {
		return false, s.opts.LogGroup(app), nil
	}
	t, err := s.template(ctx, app)
	if err != nil {
		return false, "", err
	}
	return true, t.Metadata.Convox.ExternalLogGroup, nil
}

// holdsResources reports whether a stack in status st holds its resources:
// it is neither being created, nor a failed creation, nor being deleted.
func holdsResources(st cfntypes.StackStatus) bool {
	s := string(st)
	return !strings.HasPrefix(s, "CREATE_") && !strings.HasPrefix(s, "ROLLBACK_") && !strings.HasPrefix(s, "DELETE_") || st == cfntypes.StackStatusCreateComplete
}

// GetTask returns a one-off task of the app (RunTask's). A task of
// another app, or none, returns ErrNotFound.
func (s *Stack) GetTask(ctx context.Context, app, id string) (providers.Task, error) {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return providers.Task{}, err
	}
	if id == "" || len(id) > maxTaskID {
		return providers.Task{}, providers.Invalidf("task ID %q is empty or longer than %d characters", id, maxTaskID)
	}
	out, err := s.ecs.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(s.opts.Cluster), Tasks: []string{id}, Include: []ecstypes.TaskField{ecstypes.TaskFieldTags}})
	if err != nil {
		if awserr.Code(err) == "ClusterNotFoundException" {
			return providers.Task{}, awserr.As(fmt.Sprintf("task %q of app %q", id, app), providers.ErrNotFound, err)
		}
		return providers.Task{}, awserr.Wrap(fmt.Sprintf("describe task %q", id), err)
	}
	for _, t := range out.Tasks {
		if aws.ToString(t.TaskArn) != id && ecstask.ID(aws.ToString(t.TaskArn)) != id {
			continue
		}
		tags := map[string]string{}
		for _, tg := range t.Tags {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		if tags[tagApp] != app {
			break
		}
		tk := ecstask.FromECS(t)
		tk.App, tk.Process, tk.Release = app, tags[tagProcess], tags[tagRelease]
		return tk, nil
	}
	return providers.Task{}, fmt.Errorf("task %q of app %q: %w", id, app, providers.ErrNotFound)
}

// StopTask stops a one-off task of the app; a stopped or unknown task is
// left alone.
func (s *Stack) StopTask(ctx context.Context, app, id string) error {
	return ecstask.Stop(ctx, s.ecs, s.opts.Cluster, id, func() (providers.Task, error) { return s.GetTask(ctx, app, id) })
}

// maxCleanup bounds the pages and revisions Delete's clean-up of one-off
// tasks and task definitions goes through.
const maxCleanup = 100

// deleteOneOffs stops the app's running one-off tasks and deregisters
// the task definitions RunTask registered outside the stack.
func (s *Stack) deleteOneOffs(ctx context.Context, app string) error {
	var next *string
	for range maxCleanup {
		out, err := s.ecs.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(s.opts.Cluster), StartedBy: aws.String(startedBy(app)), NextToken: next})
		if err != nil {
			if awserr.Code(err) == "ClusterNotFoundException" {
				break
			}
			return awserr.Wrap("list one-off tasks of "+app, err)
		}
		for _, arn := range out.TaskArns {
			if _, err := s.ecs.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(s.opts.Cluster), Task: aws.String(arn), Reason: aws.String("App deleted")}); err != nil {
				return awserr.Wrap("stop one-off task "+arn, err)
			}
		}
		if next = out.NextToken; next == nil {
			break
		}
	}
	prefix := s.runFamilyPrefix(app)
	next = nil
	for range maxCleanup {
		out, err := s.ecs.ListTaskDefinitionFamilies(ctx, &ecs.ListTaskDefinitionFamiliesInput{FamilyPrefix: aws.String(prefix), Status: ecstypes.TaskDefinitionFamilyStatusActive, NextToken: next})
		if err != nil {
			return awserr.Wrap("list one-off task definitions of "+app, err)
		}
		for _, family := range out.Families {
			if !strings.HasPrefix(family, prefix) {
				continue
			}
			if err := s.deregister(ctx, family); err != nil {
				return err
			}
		}
		if next = out.NextToken; next == nil {
			break
		}
	}
	return nil
}

// deregister deregisters the active revisions of family.
func (s *Stack) deregister(ctx context.Context, family string) error {
	for range maxCleanup {
		out, err := s.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(family)})
		if missingTaskDefinition(err) || err == nil && (out.TaskDefinition == nil || out.TaskDefinition.Status != ecstypes.TaskDefinitionStatusActive) {
			return nil
		}
		if err != nil {
			return awserr.Wrap("describe task definition "+family, err)
		}
		if _, err := s.ecs.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: out.TaskDefinition.TaskDefinitionArn}); err != nil {
			return awserr.Wrap("deregister task definition "+aws.ToString(out.TaskDefinition.TaskDefinitionArn), err)
		}
	}
	return nil
}
