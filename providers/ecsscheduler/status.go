package ecsscheduler

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// appView is one observation of an app's services.
type appView struct {
	app      string
	services map[string]*types.Service // by process name
}

func tagOf(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func lastSegment(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// describeApps observes the services of apps: one ListServices pass over
// the cluster, then DescribeServices with tags for the candidates, ten
// per call. Apps without services are absent from the result.
func (s *Scheduler) describeApps(ctx context.Context, apps []string) (map[string]*appView, error) {
	want := map[string]bool{}
	for _, a := range apps {
		want[a] = true
	}
	var names []string
	var token *string
	for {
		out, err := s.api.ListServices(ctx, &ecs.ListServicesInput{Cluster: aws.String(s.opts.Cluster), MaxResults: aws.Int32(100), NextToken: token})
		if err != nil {
			if awserr.Code(err) == "ClusterNotFoundException" {
				return map[string]*appView{}, nil
			}
			return nil, awserr.Wrap(fmt.Sprintf("list services of cluster %q", s.opts.Cluster), err)
		}
		for _, arn := range out.ServiceArns {
			name := lastSegment(arn)
			for a := range want {
				if strings.HasPrefix(name, a+"-") {
					names = append(names, name)
					break
				}
			}
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	slices.Sort(names)
	views := map[string]*appView{}
	for batch := range slices.Chunk(names, 10) {
		out, err := s.api.DescribeServices(ctx, &ecs.DescribeServicesInput{
			Cluster: aws.String(s.opts.Cluster), Services: batch, Include: []types.ServiceField{types.ServiceFieldTags},
		})
		if err != nil {
			return nil, awserr.Wrap(fmt.Sprintf("describe services of cluster %q", s.opts.Cluster), err)
		}
		for i := range out.Services {
			svc := &out.Services[i]
			app, process := tagOf(svc.Tags, tagApp), tagOf(svc.Tags, tagProcess)
			if aws.ToString(svc.Status) != "ACTIVE" || !want[app] || process == "" {
				continue
			}
			v := views[app]
			if v == nil {
				v = &appView{app: app, services: map[string]*types.Service{}}
				views[app] = v
			}
			v.services[process] = svc
		}
	}
	return views, nil
}

// newest returns the service carrying the newest rollout's tags.
func (a *appView) newest() *types.Service {
	var best *types.Service
	bestAt := int64(-1)
	for _, name := range slices.Sorted(maps.Keys(a.services)) {
		svc := a.services[name]
		at, _ := strconv.ParseInt(tagOf(svc.Tags, tagStarted), 10, 64)
		if at > bestAt {
			best, bestAt = svc, at
		}
	}
	return best
}

var stateRank = map[providers.RolloutState]int{
	providers.RolloutCompleted: 0, providers.RolloutInProgress: 1, providers.RolloutFailed: 2, providers.RolloutCanceled: 3,
}

// rollout derives the state of the app's newest rollout from its services.
func (a *appView) rollout() providers.Rollout {
	top := a.newest()
	token := tagOf(top.Tags, tagToken)
	at, _ := strconv.ParseInt(tagOf(top.Tags, tagStarted), 10, 64)
	r := providers.Rollout{ID: token, Token: token, Release: tagOf(top.Tags, tagRelease), State: providers.RolloutCompleted, Started: time.Unix(at, 0).UTC()}
	var reasons []string
	for _, name := range slices.Sorted(maps.Keys(a.services)) {
		svc := a.services[name]
		state, reason := providers.RolloutInProgress, ""
		if tagOf(svc.Tags, tagToken) == token {
			state, reason = serviceState(svc, token)
		}
		if stateRank[state] > stateRank[r.State] {
			r.State = state
		}
		if reason != "" {
			reasons = append(reasons, name+": "+reason)
		}
	}
	if r.State == providers.RolloutFailed || r.State == providers.RolloutCanceled {
		r.Reason = strings.Join(reasons, "; ")
	}
	return r
}

// rollouts lists the current rollout and, when recorded, the one before it.
func (a *appView) rollouts() []providers.Rollout {
	out := []providers.Rollout{a.rollout()}
	top := a.newest()
	if id := tagOf(top.Tags, tagPrevToken); id != "" {
		at, _ := strconv.ParseInt(tagOf(top.Tags, tagPrevStarted), 10, 64)
		out = append(out, providers.Rollout{
			ID: id, Token: id, Release: tagOf(top.Tags, tagPrevRelease), Started: time.Unix(at, 0).UTC(),
			State: providers.RolloutState(tagOf(top.Tags, tagPrevState)), Reason: tagOf(top.Tags, tagPrevReason),
		})
	}
	return out
}

// serviceState is the state of one service's part of the rollout token.
func serviceState(svc *types.Service, token string) (providers.RolloutState, string) {
	if tagOf(svc.Tags, tagCanceled) == token {
		return providers.RolloutCanceled, "rollout canceled"
	}
	if len(svc.Deployments) == 0 {
		return providers.RolloutInProgress, ""
	}
	primary := svc.Deployments[0]
	switch {
	case aws.ToString(primary.TaskDefinition) != tagOf(svc.Tags, tagTaskDef):
		return providers.RolloutFailed, failedReason(svc)
	case primary.RolloutState == types.DeploymentRolloutStateFailed:
		return providers.RolloutFailed, aws.ToString(primary.RolloutStateReason)
	case primary.RolloutState == types.DeploymentRolloutStateCompleted && len(svc.Deployments) == 1 &&
		primary.RunningCount == primary.DesiredCount && primary.PendingCount == 0:
		return providers.RolloutCompleted, ""
	}
	return providers.RolloutInProgress, ""
}

// failedReason explains why ECS moved a service off the rollout's task
// definition: the failed deployment's reason while ECS still lists it,
// else the newest failure among the service's events.
func failedReason(svc *types.Service) string {
	for _, d := range svc.Deployments {
		if d.RolloutState == types.DeploymentRolloutStateFailed && aws.ToString(d.RolloutStateReason) != "" {
			return aws.ToString(d.RolloutStateReason)
		}
	}
	for _, e := range svc.Events {
		if m := aws.ToString(e.Message); strings.Contains(m, "failed") {
			return m
		}
	}
	return "ECS rolled the service back to its previous task definition"
}

// completedRelease is the release the app last finished rolling out.
func (a *appView) completedRelease() string {
	if r := a.rollout(); r.State == providers.RolloutCompleted {
		return r.Release
	}
	return tagOf(a.newest().Tags, tagBase)
}

// Status returns one observation of the app; an app without services
// returns ErrNotFound.
func (s *Scheduler) Status(ctx context.Context, app string) (providers.AppStatus, error) {
	m, err := s.StatusMany(ctx, []string{app})
	if err != nil {
		return providers.AppStatus{}, err
	}
	st, ok := m[app]
	if !ok {
		return providers.AppStatus{}, fmt.Errorf("app %q: %w: no ECS services in cluster %q", app, providers.ErrNotFound, s.opts.Cluster)
	}
	return st, nil
}

// StatusMany observes many apps with shared calls: DescribeServices is
// called once per ten services of all the apps together.
func (s *Scheduler) StatusMany(ctx context.Context, apps []string) (map[string]providers.AppStatus, error) {
	for _, a := range apps {
		if err := providers.ValidateName("app", a, providers.MaxAppName); err != nil {
			return nil, err
		}
	}
	views, err := s.describeApps(ctx, apps)
	if err != nil {
		return nil, err
	}
	out := map[string]providers.AppStatus{}
	if len(views) == 0 {
		return out, nil
	}
	groups := map[string]string{}
	for app, v := range views {
		st := providers.AppStatus{App: app, Release: v.completedRelease(), Rollouts: v.rollouts()}
		for _, name := range slices.Sorted(maps.Keys(v.services)) {
			svc := v.services[name]
			groups["service:"+aws.ToString(svc.ServiceName)] = app
			ps := providers.ProcessStatus{Name: name, Desired: int(svc.DesiredCount)}
			if len(svc.Deployments) > 0 {
				primary := svc.Deployments[0]
				info, err := s.describe(ctx, aws.ToString(primary.TaskDefinition))
				if err != nil {
					return nil, err
				}
				ps.Release, ps.Desired = info.release, int(primary.DesiredCount)
				ps.Running, ps.Pending = int(primary.RunningCount), int(primary.PendingCount)
			}
			st.Processes = append(st.Processes, ps)
		}
		out[app] = st
	}
	tasks, err := s.tasks(ctx, groups)
	if err != nil {
		return nil, err
	}
	for app, ts := range tasks {
		st := out[app]
		st.Tasks = ts
		out[app] = st
	}
	return out, nil
}

// tasks lists the cluster's running and recently stopped tasks whose
// group is one of groups, by app.
func (s *Scheduler) tasks(ctx context.Context, groups map[string]string) (map[string][]providers.Task, error) {
	var arns []string
	for _, status := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
		var token *string
		for {
			out, err := s.api.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(s.opts.Cluster), DesiredStatus: status, MaxResults: aws.Int32(100), NextToken: token})
			if err != nil {
				return nil, awserr.Wrap(fmt.Sprintf("list tasks of cluster %q", s.opts.Cluster), err)
			}
			arns = append(arns, out.TaskArns...)
			if out.NextToken == nil {
				break
			}
			token = out.NextToken
		}
	}
	byApp := map[string][]providers.Task{}
	for batch := range slices.Chunk(arns, 100) {
		out, err := s.api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(s.opts.Cluster), Tasks: batch})
		if err != nil {
			return nil, awserr.Wrap(fmt.Sprintf("describe tasks of cluster %q", s.opts.Cluster), err)
		}
		for _, t := range out.Tasks {
			app, ok := groups[aws.ToString(t.Group)]
			if !ok {
				continue
			}
			task, err := s.task(ctx, app, t)
			if err != nil {
				return nil, err
			}
			byApp[app] = append(byApp[app], task)
		}
	}
	for app, ts := range byApp {
		slices.SortFunc(ts, compareTasks)
		live := slices.IndexFunc(ts, func(t providers.Task) bool { return t.State == providers.TaskStopped })
		if live >= 0 && len(ts)-live > s.opts.StoppedTasks {
			ts = ts[:live+s.opts.StoppedTasks]
		}
		byApp[app] = ts
	}
	return byApp, nil
}

// compareTasks orders live tasks (by process, start, ID) before stopped
// ones (most recently stopped first).
func compareTasks(a, b providers.Task) int {
	as, bs := a.State == providers.TaskStopped, b.State == providers.TaskStopped
	switch {
	case as != bs && as:
		return 1
	case as != bs:
		return -1
	case as:
		return cmp.Or(b.Stopped.Compare(a.Stopped), cmp.Compare(a.ID, b.ID))
	}
	return cmp.Or(cmp.Compare(a.Process, b.Process), a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID))
}

// task converts an ECS task.
func (s *Scheduler) task(ctx context.Context, app string, t types.Task) (providers.Task, error) {
	info, err := s.describe(ctx, aws.ToString(t.TaskDefinitionArn))
	if err != nil {
		return providers.Task{}, err
	}
	out := providers.Task{
		ID:      lastSegment(aws.ToString(t.TaskArn)),
		App:     app,
		Process: info.process,
		Release: info.release,
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
	if len(t.Containers) > 0 {
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
	}
	return out, nil
}
