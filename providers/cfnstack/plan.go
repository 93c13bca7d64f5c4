package cfnstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// Change is one resource change CloudFormation would make.
type Change struct {
	// Action is CloudFormation's: "Add", "Modify", "Remove", ...
	Action string
	// Resource is the logical ID and Type the CloudFormation type.
	Resource string
	Type     string
	// Replacement says whether a Modify replaces the resource: "True",
	// "False" or "Conditional"; empty for other actions.
	Replacement string
	// Scopes lists what of the resource changes ("Properties", "Tags",
	// ...), sorted.
	Scopes []string
}

// cleanupTimeout bounds the deletion of a plan's change set after the
// caller's context ended.
const cleanupTimeout = 30 * time.Second

// Changes returns what deploying d would change in the app's stack, as
// CloudFormation computes it: it creates a change set of the template a
// deploy would leave (CreateChangeSet), reads it (DescribeChangeSet) and
// deletes it (DeleteChangeSet), changing nothing. That template is the
// one Apply would send plus the routes the deploy would make first: a
// process with a port, no binding in d and no route in the stack gets its
// target group and listener rule, from d's port and health check and, for
// what d does not carry, the defaults HTTP and host
// "<app>-<process>.<Domain>" (path "/" without a Domain): the resources
// and actions are the deploy's, a rule's conditions may differ. For
// an app without a stack every resource of the template is an Add, and no
// change set is made. The changes are ordered by resource.
func (s *Stack) Changes(ctx context.Context, d providers.Desired) ([]Change, error) {
	if err := s.validate(d); err != nil {
		return nil, err
	}
	st, err := s.describe(ctx, d.App)
	if errors.Is(err, providers.ErrNotFound) {
		t := s.newTemplate(d.App)
		d, outputs, err := s.planRoutes(ctx, t, d, nil)
		if err != nil {
			return nil, err
		}
		if err := s.setProcesses(t, d, outputs); err != nil {
			return nil, err
		}
		// The template CreateStack would take: within its size, with
		// the placeholder of an otherwise empty one.
		if _, err := t.body(); err != nil {
			return nil, err
		}
		var out []Change
		for _, id := range slices.Sorted(maps.Keys(t.Resources)) {
			out = append(out, Change{Action: "Add", Resource: id, Type: t.Resources[id].(resource).Type})
		}
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := s.template(ctx, d.App)
	if err != nil {
		return nil, err
	}
	d, outputs, err := s.planRoutes(ctx, t, d, st.Outputs)
	if err != nil {
		return nil, err
	}
	if err := s.setProcesses(t, d, outputs); err != nil {
		return nil, err
	}
	body, err := t.body()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(body))
	name := "convox-plan-" + hex.EncodeToString(sum[:8])
	stack := s.StackName(d.App)
	if _, err := s.cfn.CreateChangeSet(ctx, &cloudformation.CreateChangeSetInput{
		StackName: aws.String(stack), ChangeSetName: aws.String(name), TemplateBody: aws.String(body),
		ChangeSetType: cfntypes.ChangeSetTypeUpdate,
	}); err != nil {
		return nil, wrapChange("create change set of stack "+stack, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		s.cfn.DeleteChangeSet(cctx, &cloudformation.DeleteChangeSetInput{StackName: aws.String(stack), ChangeSetName: aws.String(name)})
	}()
	b := poll.Backoff{Initial: s.opts.PollInterval, Max: s.opts.MaxPollInterval}
	var out []Change
	in := &cloudformation.DescribeChangeSetInput{StackName: aws.String(stack), ChangeSetName: aws.String(name)}
	for page := 0; page < maxEventPages; {
		cs, err := s.cfn.DescribeChangeSet(ctx, in)
		if err != nil {
			return nil, awserr.Wrap("describe change set of stack "+stack, err)
		}
		switch cs.Status {
		case cfntypes.ChangeSetStatusCreatePending, cfntypes.ChangeSetStatusCreateInProgress:
			if err := b.Wait(ctx); err != nil {
				return nil, err
			}
			continue
		case cfntypes.ChangeSetStatusFailed:
			reason := aws.ToString(cs.StatusReason)
			if strings.Contains(reason, "didn't contain changes") || strings.Contains(reason, "No updates are to be performed") {
				return nil, nil
			}
			return nil, fmt.Errorf("change set of stack %s: %w: %s", stack, providers.ErrInvalid, reason)
		}
		for _, c := range cs.Changes {
			rc := c.ResourceChange
			if rc == nil {
				continue
			}
			ch := Change{Action: string(rc.Action), Resource: aws.ToString(rc.LogicalResourceId), Type: aws.ToString(rc.ResourceType)}
			if rc.Action == cfntypes.ChangeActionModify {
				ch.Replacement = string(rc.Replacement)
			}
			for _, sc := range rc.Scope {
				ch.Scopes = append(ch.Scopes, string(sc))
			}
			slices.Sort(ch.Scopes)
			out = append(out, ch)
		}
		if cs.NextToken == nil {
			break
		}
		in.NextToken = cs.NextToken
		page++
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Resource, b.Resource) })
	return out, nil
}

// plannedTarget stands for the ARN of a planned route's target group,
// which exists only once the route is made.
const plannedTarget = "planned:"

// planRoutes adds to t the routes a deploy of d would make first: the
// root ensures a route for each process with a port before it applies,
// and d binds only the processes whose routes exist. A process with a
// port, no binding and no route in the stack gets its target group and
// listener rule, rendered from what d carries (its port and health check)
// and the stack's defaults for the rest (HTTP; the host
// "<app>-<process>.<Domain>", or the path "/" without a Domain), and is
// bound to them. It returns d with those bindings and the outputs that
// name them.
func (s *Stack) planRoutes(ctx context.Context, t *template, d providers.Desired, outputs map[string]string) (providers.Desired, map[string]string, error) {
	var planned []providers.Process
	for _, p := range d.Processes {
		if _, routed := t.Metadata.Convox.Routes[p.Name]; p.Port > 0 && len(d.Bindings[p.Name]) == 0 && !routed {
			planned = append(planned, p)
		}
	}
	if len(planned) == 0 {
		return d, outputs, nil
	}
	outputs = maps.Clone(outputs)
	if outputs == nil {
		outputs = map[string]string{}
	}
	d.Bindings = maps.Clone(d.Bindings)
	if d.Bindings == nil {
		d.Bindings = map[string][]providers.Binding{}
	}
	for _, p := range planned {
		spec := providers.RouteSpec{App: d.App, Process: p.Name, Port: p.Port, Protocol: providers.HTTP, Health: p.Health}
		if s.opts.Domain == "" {
			spec.Path = "/"
		}
		r, err := s.routeOf(spec)
		if err != nil {
			return d, nil, err
		}
		if r.Priority, err = s.freePriority(ctx, d.App, p.Name, r); err != nil {
			return d, nil, err
		}
		s.setRoute(t, d.App, p.Name, r)
		target := plannedTarget + p.Name
		outputs[targetGroupOut+logicalName(p.Name)] = target
		d.Bindings[p.Name] = []providers.Binding{{Kind: providers.BindingTargetGroup, Target: target, Port: p.Port}}
	}
	return d, outputs, nil
}

// Drift is one resource of an app's stack that differs from its template.
type Drift struct {
	// Resource is the logical ID and Type the CloudFormation type.
	Resource string
	Type     string
	// Status is "MODIFIED" or "DELETED".
	Status string
	// Properties lists the paths of the properties that differ, each with
	// how ("/DesiredCount NOT_EQUAL"); values are left out, as they may be
	// environment values.
	Properties []string
}

// Drift detects the drift of the app's stack (DetectStackDrift, waiting
// for DescribeStackDriftDetectionStatus) and returns its modified and
// deleted resources (DescribeStackResourceDrifts), ordered by resource. A
// detection that fails returns an error with CloudFormation's reason.
func (s *Stack) Drift(ctx context.Context, app string) ([]Drift, error) {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return nil, err
	}
	stack := s.StackName(app)
	det, err := s.cfn.DetectStackDrift(ctx, &cloudformation.DetectStackDriftInput{StackName: aws.String(stack)})
	if err != nil {
		if missing(err) {
			return nil, awserr.As("detect drift of stack "+stack, providers.ErrNotFound, err)
		}
		return nil, wrapChange("detect drift of stack "+stack, err)
	}
	b := poll.Backoff{Initial: s.opts.PollInterval, Max: s.opts.MaxPollInterval}
	for {
		st, err := s.cfn.DescribeStackDriftDetectionStatus(ctx, &cloudformation.DescribeStackDriftDetectionStatusInput{StackDriftDetectionId: det.StackDriftDetectionId})
		if err != nil {
			return nil, awserr.Wrap("drift detection status of stack "+stack, err)
		}
		if st.DetectionStatus == cfntypes.StackDriftDetectionStatusDetectionFailed {
			return nil, fmt.Errorf("drift detection of stack %s: %w: %s", stack, providers.ErrUnavailable, aws.ToString(st.DetectionStatusReason))
		}
		if st.DetectionStatus == cfntypes.StackDriftDetectionStatusDetectionComplete {
			break
		}
		if err := b.Wait(ctx); err != nil {
			return nil, err
		}
	}
	var out []Drift
	in := &cloudformation.DescribeStackResourceDriftsInput{
		StackName:                       aws.String(stack),
		StackResourceDriftStatusFilters: []cfntypes.StackResourceDriftStatus{cfntypes.StackResourceDriftStatusModified, cfntypes.StackResourceDriftStatusDeleted},
	}
	for range maxEventPages {
		res, err := s.cfn.DescribeStackResourceDrifts(ctx, in)
		if err != nil {
			return nil, awserr.Wrap("resource drifts of stack "+stack, err)
		}
		for _, r := range res.StackResourceDrifts {
			d := Drift{Resource: aws.ToString(r.LogicalResourceId), Type: aws.ToString(r.ResourceType), Status: string(r.StackResourceDriftStatus)}
			for _, p := range r.PropertyDifferences {
				d.Properties = append(d.Properties, aws.ToString(p.PropertyPath)+" "+string(p.DifferenceType))
			}
			slices.Sort(d.Properties)
			out = append(out, d)
		}
		if res.NextToken == nil {
			break
		}
		in.NextToken = res.NextToken
	}
	slices.SortFunc(out, func(a, b Drift) int { return strings.Compare(a.Resource, b.Resource) })
	return out, nil
}
