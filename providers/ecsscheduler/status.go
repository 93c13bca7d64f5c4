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
	"github.com/convox-go/convox/internal/ecstask"
	"github.com/convox-go/convox/providers"
)

// appView is one observation of an app's services.
type appView struct {
	app string
	// services are the serving services by process name.
	services map[string]*types.Service
	// staged are the staged services by process name (see Stage).
	staged map[string]*types.Service
	// paired are the paired services by process name: the serving
	// release attached to the other kind of load balancer while the app
	// moves between a classic load balancer and target groups (see
	// Apply).
	paired map[string]*types.Service
	// stale are other ACTIVE services of the app: a process's older serving
	// or staged service left by an interrupted PromoteStage or Stage. The
	// next call that changes the app retires them.
	stale []*types.Service
	// lingering is set by Status when a task of a service that the serving
	// rollout's promotion replaced still runs.
	lingering bool
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
			if ofApps(lastSegment(arn), want) {
				names = append(names, lastSegment(arn))
			}
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	slices.Sort(names)
	type candidates struct{ serving, staged, paired []*types.Service }
	found := map[string]map[string]*candidates{} // app -> process -> services
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
			if found[app] == nil {
				found[app] = map[string]*candidates{}
			}
			c := found[app][process]
			if c == nil {
				c = &candidates{}
				found[app][process] = c
			}
			switch tagOf(svc.Tags, tagRole) {
			case roleStaged:
				c.staged = append(c.staged, svc)
			case rolePaired:
				c.paired = append(c.paired, svc)
			default:
				c.serving = append(c.serving, svc)
			}
		}
	}
	views := map[string]*appView{}
	for app, procs := range found {
		v := &appView{app: app, services: map[string]*types.Service{}, staged: map[string]*types.Service{}, paired: map[string]*types.Service{}}
		for _, process := range slices.Sorted(maps.Keys(procs)) {
			c := procs[process]
			if len(c.serving) > 0 {
				slices.SortFunc(c.serving, compareServing)
				v.services[process] = c.serving[0]
				v.stale = append(v.stale, c.serving[1:]...)
			}
			if len(c.staged) > 0 {
				slices.SortFunc(c.staged, compareServing)
				v.staged[process] = c.staged[0]
				v.stale = append(v.stale, c.staged[1:]...)
			}
			if len(c.paired) > 0 {
				slices.SortFunc(c.paired, compareServing)
				v.paired[process] = c.paired[0]
				v.stale = append(v.stale, c.paired[1:]...)
			}
		}
		views[app] = v
	}
	return views, nil
}

// ofApps reports whether a service name can belong to one of apps: the
// services of an app are named "<app>_..." (earlier "<app>-..."). Several apps may match (an app
// "shop" and an app "shop-api"); tags or task definition labels decide.
func ofApps(name string, apps map[string]bool) bool {
	for a := range apps {
		if strings.HasPrefix(name, a+"_") || strings.HasPrefix(name, a+"-") {
			return true
		}
	}
	return false
}

// compareServing orders the services of one process and role, the one
// that serves first: a service made serving by PromoteStage before one it
// replaced but did not retire yet, then the newest rollout, then by name.
func compareServing(a, b *types.Service) int {
	pa, pb := isPromoted(a), isPromoted(b)
	if pa != pb {
		if pa {
			return -1
		}
		return 1
	}
	sa, _ := strconv.ParseInt(tagOf(a.Tags, tagStarted), 10, 64)
	sb, _ := strconv.ParseInt(tagOf(b.Tags, tagStarted), 10, 64)
	return cmp.Or(cmp.Compare(sb, sa), cmp.Compare(aws.ToString(a.ServiceName), aws.ToString(b.ServiceName)))
}

// isPromoted reports whether the service's current rollout was made
// serving by PromoteStage.
func isPromoted(svc *types.Service) bool {
	p := tagOf(svc.Tags, tagPromoted)
	return p != "" && p == tagOf(svc.Tags, tagToken)
}

// newest returns the service carrying the newest rollout's tags, nil for
// no services.
func newest(svcs map[string]*types.Service) *types.Service {
	var best *types.Service
	bestAt := int64(-1)
	for _, name := range slices.Sorted(maps.Keys(svcs)) {
		svc := svcs[name]
		at, _ := strconv.ParseInt(tagOf(svc.Tags, tagStarted), 10, 64)
		if at > bestAt {
			best, bestAt = svc, at
		}
	}
	return best
}

// promoted reports whether the serving rollout was made serving by
// PromoteStage.
func (a *appView) promoted() bool {
	top := newest(a.services)
	return top != nil && isPromoted(top)
}

var stateRank = map[providers.RolloutState]int{
	providers.RolloutCompleted: 0, providers.RolloutInProgress: 1, providers.RolloutFailed: 2, providers.RolloutCanceled: 3,
}

// rollout derives the state of the app's serving rollout from its
// services, paired services included. A rollout made serving by
// PromoteStage stays in progress while a task of a service it replaced
// still runs.
func (a *appView) rollout() providers.Rollout {
	svcs := a.services
	if len(a.paired) > 0 {
		svcs = maps.Clone(a.services)
		for name, svc := range a.paired {
			svcs[name+"--paired"] = svc
		}
	}
	r := rolloutOf(svcs)
	if r.State == providers.RolloutCompleted && a.lingering {
		r.State = providers.RolloutInProgress
	}
	return r
}

// stagedRollout derives the state of the staged rollout; ok is false when
// nothing is staged.
func (a *appView) stagedRollout() (r providers.Rollout, ok bool) {
	if len(a.staged) == 0 {
		return providers.Rollout{}, false
	}
	return rolloutOf(a.staged), true
}

// rolloutOf derives the state of the newest rollout of svcs: completed
// when every service completed its part of it, failed or canceled when
// one did, in progress otherwise.
func rolloutOf(svcs map[string]*types.Service) providers.Rollout {
	top := newest(svcs)
	if top == nil {
		return providers.Rollout{}
	}
	token := tagOf(top.Tags, tagToken)
	at, _ := strconv.ParseInt(tagOf(top.Tags, tagStarted), 10, 64)
	r := providers.Rollout{ID: token, Token: token, Release: tagOf(top.Tags, tagRelease), State: providers.RolloutCompleted, Started: time.Unix(at, 0).UTC()}
	var reasons []string
	for _, name := range slices.Sorted(maps.Keys(svcs)) {
		svc := svcs[name]
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

// rollouts lists the staged rollout, if any, the serving one and, when
// recorded, the one the serving one replaced.
func (a *appView) rollouts() []providers.Rollout {
	var out []providers.Rollout
	if r, ok := a.stagedRollout(); ok {
		out = append(out, r)
	}
	out = append(out, a.rollout())
	top := newest(a.services)
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
	return tagOf(newest(a.services).Tags, tagBase)
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
	want := map[string]bool{}
	for _, a := range apps {
		if err := providers.ValidateName("app", a, providers.MaxAppName); err != nil {
			return nil, err
		}
		want[a] = true
	}
	views, err := s.describeApps(ctx, apps)
	if err != nil {
		return nil, err
	}
	out := map[string]providers.AppStatus{}
	maps.DeleteFunc(views, func(_ string, v *appView) bool { return len(v.services) == 0 })
	if len(views) == 0 {
		return out, nil
	}
	groups := map[string]string{}
	for app, v := range views {
		for _, svc := range v.all() {
			groups[serviceGroup(aws.ToString(svc.ServiceName))] = app
		}
	}
	tasks, live, err := s.tasks(ctx, groups, want)
	if err != nil {
		return nil, err
	}
	for app, v := range views {
		if v.promoted() {
			for _, svc := range v.services {
				if r := tagOf(svc.Tags, tagReplaced); r != "" && live[serviceGroup(r)] {
					v.lingering = true
				}
			}
		}
		st := providers.AppStatus{App: app, Release: v.completedRelease(), Rollouts: v.rollouts(), Tasks: tasks[app]}
		names := slices.Collect(maps.Keys(v.services))
		for n := range v.staged {
			if v.services[n] == nil {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			for _, svc := range []*types.Service{v.services[name], v.staged[name]} {
				if svc == nil {
					continue
				}
				ps, err := s.processStatus(ctx, name, svc)
				if err != nil {
					return nil, err
				}
				st.Processes = append(st.Processes, ps)
			}
		}
		out[app] = st
	}
	return out, nil
}

// processStatus reports a process from one of its services.
func (s *Scheduler) processStatus(ctx context.Context, name string, svc *types.Service) (providers.ProcessStatus, error) {
	ps := providers.ProcessStatus{Name: name, Desired: int(svc.DesiredCount)}
	if len(svc.Deployments) > 0 {
		primary := svc.Deployments[0]
		info, err := s.describe(ctx, aws.ToString(primary.TaskDefinition))
		if err != nil {
			return ps, err
		}
		ps.Release, ps.Desired = info.release, int(primary.DesiredCount)
		ps.Running, ps.Pending = int(primary.RunningCount), int(primary.PendingCount)
	}
	return ps, nil
}

// all returns every ACTIVE service of the app.
func (a *appView) all() []*types.Service {
	out := slices.Collect(maps.Values(a.services))
	out = append(out, slices.Collect(maps.Values(a.staged))...)
	out = append(out, slices.Collect(maps.Values(a.paired))...)
	out = append(out, a.stale...)
	slices.SortFunc(out, func(x, y *types.Service) int {
		return strings.Compare(aws.ToString(x.ServiceName), aws.ToString(y.ServiceName))
	})
	return out
}

// serviceGroup is the task group ECS gives a service's tasks.
func serviceGroup(name string) string { return "service:" + name }

// tasks lists the cluster's running and recently stopped service tasks
// of the apps, by app: those of the services in groups (task group ->
// app), and those of the apps' deleted services still draining or
// recently stopped, found by service name and task definition labels. It
// also returns the groups that have a task not yet stopped.
func (s *Scheduler) tasks(ctx context.Context, groups map[string]string, apps map[string]bool) (map[string][]providers.Task, map[string]bool, error) {
	var arns []string
	for _, status := range []types.DesiredStatus{types.DesiredStatusRunning, types.DesiredStatusStopped} {
		var token *string
		for {
			out, err := s.api.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(s.opts.Cluster), DesiredStatus: status, MaxResults: aws.Int32(100), NextToken: token})
			if err != nil {
				return nil, nil, awserr.Wrap(fmt.Sprintf("list tasks of cluster %q", s.opts.Cluster), err)
			}
			arns = append(arns, out.TaskArns...)
			if out.NextToken == nil {
				break
			}
			token = out.NextToken
		}
	}
	byApp := map[string][]providers.Task{}
	live := map[string]bool{}
	for batch := range slices.Chunk(arns, 100) {
		out, err := s.api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(s.opts.Cluster), Tasks: batch})
		if err != nil {
			return nil, nil, awserr.Wrap(fmt.Sprintf("describe tasks of cluster %q", s.opts.Cluster), err)
		}
		for _, t := range out.Tasks {
			group := aws.ToString(t.Group)
			app, ok := groups[group]
			if !ok {
				if app, ok, err = s.deletedServiceApp(ctx, t, apps); err != nil {
					return nil, nil, err
				}
				if !ok {
					continue
				}
			}
			task, err := s.task(ctx, app, t)
			if err != nil {
				return nil, nil, err
			}
			if task.State != providers.TaskStopped {
				live[group] = true
			}
			byApp[app] = append(byApp[app], task)
		}
	}
	for app, ts := range byApp {
		slices.SortFunc(ts, compareTasks)
		stopped := slices.IndexFunc(ts, func(t providers.Task) bool { return t.State == providers.TaskStopped })
		if stopped >= 0 && len(ts)-stopped > s.opts.StoppedTasks {
			ts = ts[:stopped+s.opts.StoppedTasks]
		}
		byApp[app] = ts
	}
	return byApp, live, nil
}

// deletedServiceApp returns the app, among apps, of a task of a service
// that is no longer listed (DRAINING or gone): its group names a service
// of the app's name and its task definition is labeled with the app.
// Task definitions are described once per revision.
func (s *Scheduler) deletedServiceApp(ctx context.Context, t types.Task, apps map[string]bool) (string, bool, error) {
	name, ok := strings.CutPrefix(aws.ToString(t.Group), "service:")
	if !ok {
		return "", false, nil
	}
	if !ofApps(name, apps) {
		return "", false, nil
	}
	info, err := s.describe(ctx, aws.ToString(t.TaskDefinitionArn))
	if err != nil {
		return "", false, err
	}
	if !apps[info.app] || !strings.HasPrefix(name, info.app+"_") && !strings.HasPrefix(name, info.app+"-") {
		return "", false, nil
	}
	return info.app, true, nil
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
	out := ecstask.FromECS(t)
	out.App, out.Process, out.Release = app, info.process, info.release
	return out, nil
}
