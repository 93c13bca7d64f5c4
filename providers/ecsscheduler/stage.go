package ecsscheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// stagedName is the name of the service that stages a process of the app
// under a rollout token: the process's service name (serviceName), two
// hyphens and eight hexadecimal digits of a hash of the token. App and
// process names never hold two hyphens in a row, so it cannot be another
// process's name; a new token gives a new name, so a service still
// draining under an older name never blocks a stage. Names are at most 43
// characters (the 33 of "<app>_<process>" and ten), far below the 255 ECS
// allows.
func stagedName(app, process, token string) string {
	return serviceName(app, process) + "--" + hashed(app + "/" + token)[:8]
}

// Stage runs d beside the app's serving services: one more ECS service
// per process, named by stagedName and tagged convox:role=staged, running
// d's task definition attached to d.Bindings. The serving services are
// not touched. Staging with another token first retires the services of
// the previous stage; staging again with the same token returns the same
// rollout and changes nothing. An app without serving services returns
// providers.ErrNotFound.
func (s *Scheduler) Stage(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return s.apply(ctx, d, true)
}

// applyStaged converges the staged services of the app, whose services
// are v (nil for an app never applied), to d under token; the app is
// locked.
func (s *Scheduler) applyStaged(ctx context.Context, d providers.Desired, token string, v *appView) (providers.Rollout, error) {
	if v == nil || len(v.services) == 0 {
		return providers.Rollout{}, fmt.Errorf("stage %s of app %q: %w: the app was never applied", d.Release, d.App, providers.ErrNotFound)
	}
	for _, svcs := range []map[string]*types.Service{v.staged, v.services} {
		if sameToken(svcs, d, token) {
			r := rolloutOf(svcs)
			r.ID, r.Token = token, token
			return r, nil
		}
	}
	// Services of an older stage go; those of this token (a Stage cut
	// short) are kept and completed.
	var old []*types.Service
	started := time.Now().UTC().Truncate(time.Second)
	for _, svc := range v.staged {
		if tagOf(svc.Tags, tagToken) != tagValue(token) {
			old = append(old, svc)
		} else if at, err := strconv.ParseInt(tagOf(svc.Tags, tagStarted), 10, 64); err == nil {
			started = time.Unix(at, 0).UTC()
		}
	}
	if err := s.retire(ctx, append(old, v.stale...)); err != nil {
		return providers.Rollout{}, err
	}
	env, refs, err := s.environment(ctx, d.App, d.Release, d.Env, d.Secret, d.SecretRefs)
	if err != nil {
		return providers.Rollout{}, err
	}
	for _, p := range d.Processes {
		if svc := v.staged[p.Name]; svc != nil && tagOf(svc.Tags, tagToken) == tagValue(token) {
			continue
		}
		bindings := d.Bindings[p.Name]
		var candidates []string
		if svc := v.services[p.Name]; svc != nil {
			for _, dep := range svc.Deployments {
				candidates = append(candidates, aws.ToString(dep.TaskDefinition))
			}
		}
		td, err := s.ensureTaskDefinition(ctx, d.App, p, d.Release, d.Image, env, refs, bindings, false, candidates...)
		if err != nil {
			return providers.Rollout{}, err
		}
		tags := []types.Tag{
			tag(tagApp, d.App), tag(tagProcess, p.Name), tag(tagRelease, d.Release), tag(tagToken, tagValue(token)),
			tag(tagRole, roleStaged), tag(tagStarted, strconv.FormatInt(started.Unix(), 10)), tag(tagTaskDef, td),
		}
		if err := s.applyService(ctx, stagedName(d.App, p.Name, token), p, td, bindings, nil, token, tags); err != nil {
			return providers.Rollout{}, err
		}
	}
	return providers.Rollout{ID: token, Release: d.Release, Token: token, State: providers.RolloutInProgress, Started: started}, nil
}

// PromoteStage makes the staged services the serving ones without
// touching their tasks: it tags them convox:role=serving, recording the
// rollout they replace (convox:base, convox:prev-*) and, per process, the
// service they replace (convox:replaced). Then it retires the previously
// serving services, including those of process types the staged release
// does not have: each is scaled to zero and deleted, so ECS drains its
// targets (the target group's deregistration delay), stops its tasks and
// removes it. AppStatus.Release stays the previous release until those
// tasks have stopped.
//
// With nothing staged it returns providers.ErrNotFound, except while a
// promotion left a replaced service ACTIVE (an earlier PromoteStage
// failed after tagging): then it retires that service and returns nil, so
// retrying a PromoteStage that failed half-way completes it. A staged
// rollout that failed or was canceled is refused with
// providers.ErrConflict.
func (s *Scheduler) PromoteStage(ctx context.Context, app string) error {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return err
	}
	unlock := s.lockApp(app)
	defer unlock()
	apps, err := s.describeApps(ctx, []string{app})
	if err != nil {
		return err
	}
	v := apps[app]
	if v == nil || len(v.services) == 0 {
		return fmt.Errorf("promote the staged release of app %q: %w: the app was never applied", app, providers.ErrNotFound)
	}
	staged, ok := v.stagedRollout()
	if !ok {
		if v.promoted() && len(v.stale) > 0 {
			return s.retire(ctx, v.stale)
		}
		return fmt.Errorf("promote the staged release of app %q: %w: nothing is staged", app, providers.ErrNotFound)
	}
	if staged.State == providers.RolloutFailed || staged.State == providers.RolloutCanceled {
		return fmt.Errorf("promote the staged release %s of app %q: %w: its rollout %s: %s", staged.Release, app, providers.ErrConflict, staged.State, staged.Reason)
	}
	common := append([]types.Tag{tag(tagRole, roleServing), tag(tagBase, v.completedRelease())}, previousTags(v.rollout())...)
	for _, svc := range v.services {
		if tagOf(svc.Tags, tagPromoted) == staged.Token {
			// A PromoteStage cut short promoted this process already: the
			// others replace the same rollout.
			common = []types.Tag{tag(tagRole, roleServing)}
			for _, k := range []string{tagBase, tagPrevToken, tagPrevRelease, tagPrevStarted, tagPrevState, tagPrevReason} {
				common = append(common, tag(k, tagOf(svc.Tags, k)))
			}
			break
		}
	}
	for _, name := range slices.Sorted(maps.Keys(v.staged)) {
		svc := v.staged[name]
		replaced := ""
		if old := v.services[name]; old != nil {
			replaced = aws.ToString(old.ServiceName)
		}
		tags := append(slices.Clone(common), tag(tagPromoted, tagOf(svc.Tags, tagToken)), tag(tagReplaced, replaced))
		if _, err := s.api.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: svc.ServiceArn, Tags: tags}); err != nil {
			return awserr.Wrap(fmt.Sprintf("tag service %q", aws.ToString(svc.ServiceName)), err)
		}
	}
	old := slices.Clone(v.stale)
	for _, svc := range v.services {
		if tagOf(svc.Tags, tagPromoted) != staged.Token {
			old = append(old, svc)
		}
	}
	return s.retire(ctx, old)
}

// DiscardStage retires the staged services: each is scaled to zero and
// deleted, so ECS drains its targets, stops its tasks and removes it.
// Status reports those tasks until they have stopped. With nothing staged
// it returns nil.
func (s *Scheduler) DiscardStage(ctx context.Context, app string) error {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return err
	}
	unlock := s.lockApp(app)
	defer unlock()
	apps, err := s.describeApps(ctx, []string{app})
	if err != nil {
		return err
	}
	v := apps[app]
	if v == nil {
		return nil
	}
	return s.retire(ctx, append(slices.Collect(maps.Values(v.staged)), v.stale...))
}

// retire scales each service to zero and deletes it without force: ECS
// keeps it DRAINING, out of ListServices, until its tasks have stopped
// after their targets drained. A service already gone is skipped.
func (s *Scheduler) retire(ctx context.Context, svcs []*types.Service) error {
	slices.SortFunc(svcs, func(a, b *types.Service) int {
		return cmp.Compare(aws.ToString(a.ServiceName), aws.ToString(b.ServiceName))
	})
	for _, svc := range svcs {
		name := aws.ToString(svc.ServiceName)
		if svc.DesiredCount > 0 {
			_, err := s.api.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(s.opts.Cluster), Service: aws.String(name), DesiredCount: aws.Int32(0)})
			if err != nil {
				if err = awserr.Wrap(fmt.Sprintf("scale service %q to zero", name), err); errors.Is(err, providers.ErrNotFound) {
					continue
				}
				return err
			}
		}
		_, err := s.api.DeleteService(ctx, &ecs.DeleteServiceInput{Cluster: aws.String(s.opts.Cluster), Service: aws.String(name)})
		if err != nil {
			if err = awserr.Wrap(fmt.Sprintf("delete service %q", name), err); !errors.Is(err, providers.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}
