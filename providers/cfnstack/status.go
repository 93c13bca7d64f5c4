package cfnstack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// maxEventPages bounds the DescribeStackEvents pages read to find the
// start of the stack's latest operation (100 events a page).
const maxEventPages = 10

// Event is one CloudFormation stack event of an app's stack.
type Event struct {
	Time time.Time
	// Resource is the logical ID of the resource (the stack's name for the
	// stack itself) and Type its CloudFormation type.
	Resource string
	Type     string
	// Status is the resource status (UPDATE_IN_PROGRESS, UPDATE_FAILED,
	// ...) and Reason CloudFormation's explanation, when it gives one.
	Status string
	Reason string
	// Release and Token are those of the rollout the event belongs to,
	// when it belongs to one (recovered from its ClientRequestToken).
	Release string
	Token   string
}

// Events returns the events of the app's stack at or after since, oldest
// first, at most 1,000 (the newest). A missing stack returns ErrNotFound.
func (s *Stack) Events(ctx context.Context, app string, since time.Time) ([]Event, error) {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return nil, err
	}
	var out []Event
	err := s.events(ctx, app, func(e cfntypes.StackEvent) bool {
		t := aws.ToTime(e.Timestamp)
		if t.Before(since) {
			return false
		}
		ev := Event{Time: t, Resource: aws.ToString(e.LogicalResourceId), Type: aws.ToString(e.ResourceType),
			Status: string(e.ResourceStatus), Reason: aws.ToString(e.ResourceStatusReason)}
		ev.Release, ev.Token, _ = parseRequestToken(aws.ToString(e.ClientRequestToken))
		out = append(out, ev)
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// events calls f with the stack's events, newest first, until f returns
// false or maxEventPages pages were read.
func (s *Stack) events(ctx context.Context, app string, f func(cfntypes.StackEvent) bool) error {
	in := &cloudformation.DescribeStackEventsInput{StackName: aws.String(s.StackName(app))}
	for range maxEventPages {
		out, err := s.cfn.DescribeStackEvents(ctx, in)
		if err != nil {
			if missing(err) {
				return awserr.As("describe events of stack "+s.StackName(app), providers.ErrNotFound, err)
			}
			return awserr.Wrap("describe events of stack "+s.StackName(app), err)
		}
		for _, e := range out.StackEvents {
			if !f(e) {
				return nil
			}
		}
		if out.NextToken == nil {
			return nil
		}
		in.NextToken = out.NextToken
	}
	return nil
}

// operation is what the events tell of the stack's latest operation.
type operation struct {
	// crt is the operation's ClientRequestToken.
	crt string
	// reason is the first failure of a resource in the operation
	// ("ServiceOfweb: <reason>"), or the stack's own reason.
	reason string
	// canceled is true when the operation was rolled back because
	// CancelUpdateStack canceled it.
	canceled bool
	// skip lists the resources whose rollback failed (the resources to
	// skip with ContinueUpdateRollback), sorted.
	skip []string
	// started is the time of the operation's first event.
	started time.Time
}

// operation reads the events of the stack's latest operation, back to
// the event that started it.
func (s *Stack) operation(ctx context.Context, app string, st stackState) (operation, error) {
	var op operation
	name := s.StackName(app)
	latest := map[string]string{} // newest status per resource
	err := s.events(ctx, app, func(e cfntypes.StackEvent) bool {
		id, status, reason := aws.ToString(e.LogicalResourceId), string(e.ResourceStatus), aws.ToString(e.ResourceStatusReason)
		if op.crt == "" {
			op.crt = aws.ToString(e.ClientRequestToken)
		}
		if id == name && aws.ToString(e.ResourceType) == "AWS::CloudFormation::Stack" {
			switch status {
			case "UPDATE_ROLLBACK_IN_PROGRESS", "ROLLBACK_IN_PROGRESS":
				if strings.Contains(strings.ToLower(reason), "cancel") {
					op.canceled = true
				}
			case "CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS":
				if reason == "User Initiated" || reason == "" {
					if c := aws.ToString(e.ClientRequestToken); c != "" {
						op.crt = c
					}
					op.started = aws.ToTime(e.Timestamp)
					return false // the operation's start
				}
			}
			return true
		}
		if _, seen := latest[id]; !seen {
			latest[id] = status
		}
		if strings.HasSuffix(status, "_FAILED") && reason != "" {
			// Events run newest first: the last failure seen is the
			// operation's first, its cause.
			op.reason = id + ": " + reason
			if strings.Contains(strings.ToLower(reason), "cancel") {
				op.canceled = true
			}
		}
		return true
	})
	if err != nil {
		return op, err
	}
	if st.Status == cfntypes.StackStatusUpdateRollbackFailed {
		for id, status := range latest {
			if strings.HasSuffix(status, "_FAILED") {
				op.skip = append(op.skip, id)
			}
		}
		slices.Sort(op.skip)
	}
	op.reason = cmpOr(op.reason, st.Reason)
	return op, nil
}

// rolledBack reports whether status ends an update CloudFormation rolled
// back (or is rolling back).
func rolledBack(status cfntypes.StackStatus) bool {
	return strings.Contains(string(status), "ROLLBACK")
}

// Status reads the app's stack (DescribeStacks), the events of its latest
// operation when it is in flight or was rolled back
// (DescribeStackEvents), and its services' task counts (DescribeServices,
// ten at a time).
func (s *Stack) Status(ctx context.Context, app string) (providers.AppStatus, error) {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return providers.AppStatus{}, err
	}
	st, err := s.describe(ctx, app)
	if err != nil {
		return providers.AppStatus{}, err
	}
	return s.status(ctx, app, st)
}

func (s *Stack) status(ctx context.Context, app string, st stackState) (providers.AppStatus, error) {
	out := providers.AppStatus{App: app}
	var last *providers.Rollout
	if rel, tok := st.Outputs[outputRelease], st.Outputs[outputToken]; rel != "" && tok != "" {
		last = &providers.Rollout{ID: requestToken(rel, tok), Release: rel, Token: tok, State: providers.RolloutCompleted}
	}
	current := func(state providers.RolloutState) error {
		op, err := s.operation(ctx, app, st)
		if err != nil {
			return err
		}
		rel, tok, ok := parseRequestToken(op.crt)
		if !ok {
			return nil // an operation of no rollout (a route change)
		}
		r := providers.Rollout{ID: op.crt, Release: rel, Token: tok, State: state, Started: op.started}
		switch {
		case state == providers.RolloutFailed && op.canceled:
			r.State, r.Reason = providers.RolloutCanceled, "the stack update was canceled (CancelUpdateStack) and rolled back"
		case state == providers.RolloutFailed:
			r.Reason = fmt.Sprintf("CloudFormation %s: %s", st.Status, op.reason)
			if len(op.skip) > 0 {
				r.Reason += "; resources to skip with ContinueUpdateRollback: " + strings.Join(op.skip, ", ")
			}
		}
		if last != nil && last.ID == r.ID {
			last = nil
		}
		out.Rollouts = append(out.Rollouts, r)
		return nil
	}
	// The stack's outputs are those of its last completed template: that
	// release is the app's (CloudFormation completes an ECS service only
	// once it reached a steady state), except while a failed rollback
	// leaves resources between two releases.
	out.Release = st.Outputs[outputRelease]
	var err error
	switch st.Status {
	case cfntypes.StackStatusCreateComplete, cfntypes.StackStatusUpdateComplete, cfntypes.StackStatusUpdateCompleteCleanupInProgress:
	case cfntypes.StackStatusCreateInProgress, cfntypes.StackStatusUpdateInProgress:
		err = current(providers.RolloutInProgress)
	case cfntypes.StackStatusDeleteInProgress:
		return out, fmt.Errorf("stack %s: %w: it is being deleted", s.StackName(app), providers.ErrNotFound)
	case cfntypes.StackStatusUpdateRollbackFailed:
		out.Release = ""
		err = current(providers.RolloutFailed)
	default: // rolling back, rolled back, create failed, delete failed
		err = current(providers.RolloutFailed)
	}
	if err != nil {
		return out, err
	}
	if last != nil {
		out.Rollouts = append(out.Rollouts, *last)
	}
	if err := s.processes(ctx, app, st, &out); err != nil {
		return out, err
	}
	return out, nil
}

// processes fills the process statuses of the stack's formation.
func (s *Stack) processes(ctx context.Context, app string, st stackState, out *providers.AppStatus) error {
	formation := st.Outputs[outputFormat]
	if formation == "" || formation == "-" {
		return nil
	}
	rel := st.Outputs[outputRelease]
	byName := map[string]int{}
	for _, f := range strings.Split(formation, ",") {
		name, count, _ := strings.Cut(f, "=")
		n, err := strconv.Atoi(count)
		if err != nil {
			return fmt.Errorf("stack %s: %w: bad formation output %q", s.StackName(app), providers.ErrConflict, formation)
		}
		byName[providers.ResourceName(app, name, "")] = len(out.Processes)
		out.Processes = append(out.Processes, providers.ProcessStatus{Name: name, Release: rel, Desired: n})
	}
	names := make([]string, 0, len(byName))
	for _, p := range out.Processes {
		names = append(names, providers.ResourceName(app, p.Name, ""))
	}
	for chunk := range slices.Chunk(names, 10) {
		res, err := s.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(s.opts.Cluster), Services: chunk})
		if err != nil {
			if errors.Is(awserr.Sentinel(err), providers.ErrNotFound) {
				continue
			}
			return awserr.Wrap("describe services of "+app, err)
		}
		for _, svc := range res.Services {
			i, ok := byName[aws.ToString(svc.ServiceName)]
			if !ok || aws.ToString(svc.Status) != "ACTIVE" {
				continue
			}
			out.Processes[i].Running = int(svc.RunningCount)
			out.Processes[i].Pending = int(svc.PendingCount)
		}
	}
	slices.SortFunc(out.Processes, func(a, b providers.ProcessStatus) int { return strings.Compare(a.Name, b.Name) })
	return nil
}
