package ecsscheduler

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/ecstask"
	"github.com/convox-go/convox/providers"
)

// CancelRollout stops the app's in-flight rollout rolloutID: each service
// goes back to the task definition of its previous deployment, and a
// service the rollout created is scaled to zero. Canceling the staged
// rollout while it starts discards the stage (see DiscardStage). A
// rollout made serving by PromoteStage is left alone: the services it
// replaced are already stopping, so going back means applying the
// previous release. A finished or unknown rollout is left alone.
func (s *Scheduler) CancelRollout(ctx context.Context, app, rolloutID string) error {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return err
	}
	unlock := s.lockApp(app)
	defer unlock()
	views, err := s.describeApps(ctx, []string{app})
	if err != nil {
		return err
	}
	v := views[app]
	if v == nil || len(v.services) == 0 {
		return nil
	}
	if sr, ok := v.stagedRollout(); ok && sr.ID == tagValue(rolloutID) && sr.State == providers.RolloutInProgress {
		return s.retire(ctx, slices.Collect(maps.Values(v.staged)))
	}
	r := v.rollout()
	if r.ID != tagValue(rolloutID) || r.State != providers.RolloutInProgress || v.promoted() {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(v.services)) {
		svc := v.services[name]
		in := &ecs.UpdateServiceInput{Cluster: aws.String(s.opts.Cluster), Service: svc.ServiceName}
		if prev := previousTaskDefinition(svc); prev != "" {
			in.TaskDefinition = aws.String(prev)
		} else {
			in.DesiredCount = aws.Int32(0)
		}
		if _, err := s.api.UpdateService(ctx, in); err != nil {
			return awserr.Wrap(fmt.Sprintf("update service %q", aws.ToString(svc.ServiceName)), err)
		}
		if _, err := s.api.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: svc.ServiceArn, Tags: []types.Tag{tag(tagCanceled, r.ID)}}); err != nil {
			return awserr.Wrap(fmt.Sprintf("tag service %q", aws.ToString(svc.ServiceName)), err)
		}
	}
	return nil
}

// previousTaskDefinition is the task definition the service ran before its
// primary deployment: its completed deployment, else any other one.
func previousTaskDefinition(svc *types.Service) string {
	if len(svc.Deployments) < 2 {
		return ""
	}
	primary := aws.ToString(svc.Deployments[0].TaskDefinition)
	prev := ""
	for _, d := range svc.Deployments[1:] {
		td := aws.ToString(d.TaskDefinition)
		if td == primary {
			continue
		}
		if d.RolloutState == types.DeploymentRolloutStateCompleted {
			return td
		}
		if prev == "" {
			prev = td
		}
	}
	return prev
}

// RunTask starts a one-off task of spec.Process's settings with
// spec.Command, idempotent by spec.Token (the ECS client token).
func (s *Scheduler) RunTask(ctx context.Context, spec providers.RunSpec) (providers.Task, error) {
	if err := spec.Validate(s.opts.Limits); err != nil {
		return providers.Task{}, err
	}
	if spec.Image.Repository == "" || spec.Image.Digest == "" {
		return providers.Task{}, providers.Invalidf("image %q is not pinned by digest", spec.Image.Ref())
	}
	if spec.Token == "" {
		return providers.Task{}, providers.Invalidf("run token is empty")
	}
	if err := s.checkSecrets(spec.App, spec.Env, spec.Secret, spec.SecretRefs); err != nil {
		return providers.Task{}, err
	}
	if err := s.ensureCluster(ctx); err != nil {
		return providers.Task{}, err
	}
	env, refs, err := s.environment(ctx, spec.App, spec.Release, spec.Env, spec.Secret, spec.SecretRefs)
	if err != nil {
		return providers.Task{}, err
	}
	p := spec.Process
	p.Port = 0 // a one-off task serves no traffic
	td, err := s.ensureTaskDefinition(ctx, spec.App, p, spec.Release, spec.Image, env, refs, nil, true)
	if err != nil {
		return providers.Task{}, err
	}
	in := &ecs.RunTaskInput{
		Cluster:              aws.String(s.opts.Cluster),
		TaskDefinition:       aws.String(td),
		LaunchType:           types.LaunchTypeFargate,
		NetworkConfiguration: s.network(false),
		ClientToken:          aws.String(hashed(s.opts.Cluster + "/" + spec.App + "/" + spec.Token)[:64]),
		Group:                aws.String(runGroup(spec.App)),
		StartedBy:            aws.String(startedBy(spec.App)),
		EnableECSManagedTags: true,
		Tags:                 []types.Tag{tag(tagApp, spec.App), tag(tagProcess, p.Name), tag(tagRelease, spec.Release), tag(tagToken, tagValue(spec.Token))},
	}
	if len(spec.Command) > 0 {
		in.Overrides = &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{Name: aws.String(p.Name), Command: spec.Command}}}
	}
	out, err := s.api.RunTask(ctx, in)
	if err != nil {
		return providers.Task{}, awserr.Wrap(fmt.Sprintf("run task of %s/%s", spec.App, p.Name), err)
	}
	if len(out.Tasks) == 0 {
		reason := "no task started"
		if len(out.Failures) > 0 {
			reason = aws.ToString(out.Failures[0].Reason) + " " + aws.ToString(out.Failures[0].Detail)
		}
		return providers.Task{}, fmt.Errorf("run task of %s/%s: %w: %s", spec.App, p.Name, providers.ErrUnavailable, reason)
	}
	return s.task(ctx, spec.App, out.Tasks[0])
}

// startedBy marks an app's one-off tasks (ECS allows 36 characters).
func startedBy(app string) string { return "convox:" + app }

// stopOneOffs stops the app's running one-off tasks.
func (s *Scheduler) stopOneOffs(ctx context.Context, app string) error {
	var token *string
	var arns []string
	for {
		out, err := s.api.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(s.opts.Cluster), StartedBy: aws.String(startedBy(app)), NextToken: token})
		if err != nil {
			if awserr.Code(err) == "ClusterNotFoundException" {
				return nil
			}
			return awserr.Wrap(fmt.Sprintf("list one-off tasks of %q", app), err)
		}
		arns = append(arns, out.TaskArns...)
		if token = out.NextToken; token == nil {
			break
		}
	}
	for _, arn := range arns {
		_, err := s.api.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(s.opts.Cluster), Task: aws.String(arn), Reason: aws.String("App deleted")})
		if err != nil && awserr.Code(err) != "InvalidParameterException" {
			return awserr.Wrap(fmt.Sprintf("stop task %q", arn), err)
		}
	}
	return nil
}

// GetTask returns a task of the app (one-off or of a service).
func (s *Scheduler) GetTask(ctx context.Context, app, id string) (providers.Task, error) {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return providers.Task{}, err
	}
	if id == "" {
		return providers.Task{}, providers.Invalidf("task id is empty")
	}
	out, err := s.api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(s.opts.Cluster), Tasks: []string{id}, Include: []types.TaskField{types.TaskFieldTags}})
	if err != nil {
		if awserr.Code(err) == "ClusterNotFoundException" {
			return providers.Task{}, fmt.Errorf("task %q of app %q: %w: %w", id, app, providers.ErrNotFound, err)
		}
		return providers.Task{}, awserr.Wrap(fmt.Sprintf("describe task %q", id), err)
	}
	if len(out.Tasks) == 0 || tagOf(out.Tasks[0].Tags, tagApp) != app {
		return providers.Task{}, fmt.Errorf("task %q of app %q: %w", id, app, providers.ErrNotFound)
	}
	return s.task(ctx, app, out.Tasks[0])
}

// StopTask stops a task of the app; a stopped or unknown task is left alone.
func (s *Scheduler) StopTask(ctx context.Context, app, id string) error {
	return ecstask.Stop(ctx, s.api, s.opts.Cluster, id, func() (providers.Task, error) { return s.GetTask(ctx, app, id) })
}
