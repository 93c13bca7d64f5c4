package cfnstack

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/awshealth"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// CloudFormationAPI is the part of the CloudFormation client the provider
// calls; *cloudformation.Client implements it.
type CloudFormationAPI interface {
	CreateStack(ctx context.Context, in *cloudformation.CreateStackInput, opts ...func(*cloudformation.Options)) (*cloudformation.CreateStackOutput, error)
	UpdateStack(ctx context.Context, in *cloudformation.UpdateStackInput, opts ...func(*cloudformation.Options)) (*cloudformation.UpdateStackOutput, error)
	DeleteStack(ctx context.Context, in *cloudformation.DeleteStackInput, opts ...func(*cloudformation.Options)) (*cloudformation.DeleteStackOutput, error)
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
	DescribeStackEvents(ctx context.Context, in *cloudformation.DescribeStackEventsInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStackEventsOutput, error)
	GetTemplate(ctx context.Context, in *cloudformation.GetTemplateInput, opts ...func(*cloudformation.Options)) (*cloudformation.GetTemplateOutput, error)
	CancelUpdateStack(ctx context.Context, in *cloudformation.CancelUpdateStackInput, opts ...func(*cloudformation.Options)) (*cloudformation.CancelUpdateStackOutput, error)
	ContinueUpdateRollback(ctx context.Context, in *cloudformation.ContinueUpdateRollbackInput, opts ...func(*cloudformation.Options)) (*cloudformation.ContinueUpdateRollbackOutput, error)
	CreateChangeSet(ctx context.Context, in *cloudformation.CreateChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.CreateChangeSetOutput, error)
	DescribeChangeSet(ctx context.Context, in *cloudformation.DescribeChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeChangeSetOutput, error)
	DeleteChangeSet(ctx context.Context, in *cloudformation.DeleteChangeSetInput, opts ...func(*cloudformation.Options)) (*cloudformation.DeleteChangeSetOutput, error)
	DetectStackDrift(ctx context.Context, in *cloudformation.DetectStackDriftInput, opts ...func(*cloudformation.Options)) (*cloudformation.DetectStackDriftOutput, error)
	DescribeStackDriftDetectionStatus(ctx context.Context, in *cloudformation.DescribeStackDriftDetectionStatusInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStackDriftDetectionStatusOutput, error)
	DescribeStackResourceDrifts(ctx context.Context, in *cloudformation.DescribeStackResourceDriftsInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStackResourceDriftsOutput, error)
	DescribeStackResource(ctx context.Context, in *cloudformation.DescribeStackResourceInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStackResourceOutput, error)
}

// ECSAPI is the part of the ECS client the provider calls (the cluster on
// first use, service counts for Status, and one-off tasks);
// *ecs.Client implements it.
type ECSAPI interface {
	CreateCluster(ctx context.Context, in *ecs.CreateClusterInput, opts ...func(*ecs.Options)) (*ecs.CreateClusterOutput, error)
	DescribeServices(ctx context.Context, in *ecs.DescribeServicesInput, opts ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	RunTask(ctx context.Context, in *ecs.RunTaskInput, opts ...func(*ecs.Options)) (*ecs.RunTaskOutput, error)
	DescribeTasks(ctx context.Context, in *ecs.DescribeTasksInput, opts ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
	StopTask(ctx context.Context, in *ecs.StopTaskInput, opts ...func(*ecs.Options)) (*ecs.StopTaskOutput, error)
	ListTasks(ctx context.Context, in *ecs.ListTasksInput, opts ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
	RegisterTaskDefinition(ctx context.Context, in *ecs.RegisterTaskDefinitionInput, opts ...func(*ecs.Options)) (*ecs.RegisterTaskDefinitionOutput, error)
	DescribeTaskDefinition(ctx context.Context, in *ecs.DescribeTaskDefinitionInput, opts ...func(*ecs.Options)) (*ecs.DescribeTaskDefinitionOutput, error)
	DeregisterTaskDefinition(ctx context.Context, in *ecs.DeregisterTaskDefinitionInput, opts ...func(*ecs.Options)) (*ecs.DeregisterTaskDefinitionOutput, error)
	ListTaskDefinitionFamilies(ctx context.Context, in *ecs.ListTaskDefinitionFamiliesInput, opts ...func(*ecs.Options)) (*ecs.ListTaskDefinitionFamiliesOutput, error)
}

// ELBAPI is the part of the ELBv2 client the provider calls (target health
// and free rule priorities); *elasticloadbalancingv2.Client implements it.
type ELBAPI interface {
	DescribeTargetHealth(ctx context.Context, in *elbv2.DescribeTargetHealthInput, opts ...func(*elbv2.Options)) (*elbv2.DescribeTargetHealthOutput, error)
	DescribeRules(ctx context.Context, in *elbv2.DescribeRulesInput, opts ...func(*elbv2.Options)) (*elbv2.DescribeRulesOutput, error)
}

// Options configure a Stack. Cluster, Region, Subnets and HTTPListener
// are required (New panics without them: they are programming errors);
// routes need VPC too.
type Options struct {
	// Cluster is the ECS cluster the services run in; the first Apply
	// creates it when missing (CreateCluster is idempotent).
	Cluster string
	// StackPrefix prefixes stack names: "<StackPrefix>-<app>". The default
	// is Cluster.
	StackPrefix string
	// Region is written into the tasks' awslogs configuration.
	Region string
	// Subnets, SecurityGroups and AssignPublicIP ("ENABLED" or "DISABLED",
	// the default) are the tasks' awsvpc network configuration.
	Subnets        []string
	SecurityGroups []string
	AssignPublicIP string
	// ExecutionRoleARN and TaskRoleARN are the task definitions' roles.
	ExecutionRoleARN string
	TaskRoleARN      string
	// VPC is the VPC of the target groups (required by AWS for ip targets).
	VPC string
	// HTTPListener and HTTPSListener are the ARNs of the shared load
	// balancer's listeners the routes' rules are added to; HTTPS and HTTP2
	// routes need HTTPSListener (whose certificates cover their hosts).
	HTTPListener  string
	HTTPSListener string
	// Domain gives routes without host and path the host
	// "<app>-<process>.<Domain>"; without it such routes are invalid.
	Domain string
	// LogGroup names an app's log group; the default is "/convox/<app>",
	// the group the rack's CloudWatch Logs provider reads.
	LogGroup func(app string) string
	// ExternalLogGroup leaves the app's log group to the rack's Logs
	// provider, for racks whose Logs provider writes the same group (such
	// as cwlogs, which creates a missing group on its first write, and the
	// root writes a deploy's lines before the deploy creates the app's
	// stack). A stack created with it does not declare the log group (a
	// stack declaring a group that exists fails to create:
	// "ResourceAlreadyExistsException"): its containers log to the group
	// by name with the awslogs option awslogs-create-group, so the
	// execution role needs logs:CreateLogGroup (ExecutionRoleActions),
	// and the group outlives the stack: the Logs provider deletes it with
	// the app (the root's DeleteApp calls Logs.Delete). Without it each
	// stack declares its app's log group and deletes it with the stack.
	// The choice is recorded in a stack's template when the stack is
	// created and kept for its life: changing the option changes new
	// stacks only.
	ExternalLogGroup bool
	// LogRetentionDays is the retention of the log groups the stacks
	// declare; zero keeps logs. It cannot be set with ExternalLogGroup
	// (the Logs provider's group is not the stack's to configure).
	LogRetentionDays int
	// Limits bound Apply's input (providers.DefaultLimits when zero).
	Limits providers.Limits
	// PollInterval is the first pause of the waits EnsureRoute,
	// DeleteRoute and Delete make for their stack operation (1s by
	// default, growing to MaxPollInterval, 15s by default).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
}

// Stack is a providers.Scheduler and providers.Balancer keeping each app
// as one CloudFormation stack. See the package documentation.
type Stack struct {
	cfn  CloudFormationAPI
	ecs  ECSAPI
	elb  ELBAPI
	opts Options

	mu      sync.Mutex
	locks   map[string]chan struct{}
	cluster bool
}

var (
	_ providers.Scheduler       = (*Stack)(nil)
	_ providers.Balancer        = (*Stack)(nil)
	_ providers.Canceler        = (*Stack)(nil)
	_ providers.BindingAcceptor = (*Stack)(nil)
)

// New returns a Stack. It panics when opts lacks Cluster, Region,
// Subnets or HTTPListener, or sets both ExternalLogGroup and
// LogRetentionDays.
func New(cfn CloudFormationAPI, ecsAPI ECSAPI, elbAPI ELBAPI, opts *Options) *Stack {
	if opts == nil || opts.Cluster == "" || opts.Region == "" || len(opts.Subnets) == 0 || opts.HTTPListener == "" {
		panic("cfnstack.New: Options.Cluster, Options.Region, Options.Subnets and Options.HTTPListener are required")
	}
	if opts.ExternalLogGroup && opts.LogRetentionDays != 0 {
		panic("cfnstack.New: Options.LogRetentionDays applies to log groups the stacks declare, and Options.ExternalLogGroup leaves them to the Logs provider: set the retention there")
	}
	s := &Stack{cfn: cfn, ecs: ecsAPI, elb: elbAPI, opts: *opts, locks: map[string]chan struct{}{}}
	s.opts.StackPrefix = cmpOr(s.opts.StackPrefix, s.opts.Cluster)
	if s.opts.LogGroup == nil {
		s.opts.LogGroup = func(app string) string { return "/convox/" + app }
	}
	s.opts.PollInterval = cmpOr(s.opts.PollInterval, time.Second)
	s.opts.MaxPollInterval = cmpOr(s.opts.MaxPollInterval, 15*time.Second)
	return s
}

// Limits returns the bounds Apply checks.
func (s *Stack) Limits() providers.Limits { return s.opts.Limits.WithDefaults() }

// StackName returns the name of app's stack.
func (s *Stack) StackName(app string) string { return s.opts.StackPrefix + "-" + app }

// AcceptsBinding accepts ELBv2 target groups: the stack's own, made by
// EnsureRoute, and any other target group ARN.
func (s *Stack) AcceptsBinding(kind string) bool { return kind == providers.BindingTargetGroup }

// lock serializes the changes of one app's stack through this Stack.
func (s *Stack) lock(ctx context.Context, app string) (func(), error) {
	s.mu.Lock()
	ch, ok := s.locks[app]
	if !ok {
		ch = make(chan struct{}, 1)
		s.locks[app] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ---------------------------------------------------------------------------
// Stack reads

// stackState is one DescribeStacks of an app's stack.
type stackState struct {
	ID      string
	Status  cfntypes.StackStatus
	Reason  string
	Outputs map[string]string
}

// describe returns the app's stack; a missing or deleted stack returns
// ErrNotFound.
func (s *Stack) describe(ctx context.Context, app string) (stackState, error) {
	out, err := s.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(s.StackName(app))})
	if err != nil {
		if missing(err) {
			return stackState{}, awserr.As("describe stack "+s.StackName(app), providers.ErrNotFound, err)
		}
		return stackState{}, awserr.Wrap("describe stack "+s.StackName(app), err)
	}
	if len(out.Stacks) == 0 || out.Stacks[0].StackStatus == cfntypes.StackStatusDeleteComplete {
		return stackState{}, fmt.Errorf("describe stack %s: %w", s.StackName(app), providers.ErrNotFound)
	}
	st := out.Stacks[0]
	o := map[string]string{}
	for _, v := range st.Outputs {
		o[aws.ToString(v.OutputKey)] = aws.ToString(v.OutputValue)
	}
	return stackState{ID: aws.ToString(st.StackId), Status: st.StackStatus, Reason: aws.ToString(st.StackStatusReason), Outputs: o}, nil
}

// missing reports whether err is CloudFormation's answer for a stack that
// does not exist (a ValidationError "Stack with id X does not exist").
func missing(err error) bool {
	return awserr.Code(err) == "ValidationError" && strings.Contains(err.Error(), "does not exist")
}

// noUpdates reports whether err is UpdateStack's answer for a template
// identical to the stack's: success, nothing to do.
func noUpdates(err error) bool {
	return awserr.Code(err) == "ValidationError" && strings.Contains(err.Error(), "No updates are to be performed")
}

// busy reports whether err says the stack is in a state that refuses the
// operation (an update in progress, a failed rollback).
func busy(err error) bool {
	return awserr.Code(err) == "ValidationError" && strings.Contains(err.Error(), "state and can not be")
}

// wrapChange maps the error of a stack change.
func wrapChange(op string, err error) error {
	if busy(err) {
		return awserr.As(op, providers.ErrConflict, err)
	}
	return awserr.Wrap(op, err)
}

// raced maps the error of a route change: another caller's operation on
// the stack (an update in flight, a stack created meanwhile) is
// temporary, as the same change succeeds once it ended.
func raced(op string, err error) error {
	if busy(err) || awserr.Code(err) == "AlreadyExistsException" {
		return awserr.As(op+" (another operation on the stack; retry)", providers.ErrUnavailable, err)
	}
	return awserr.Wrap(op, err)
}

// template returns the stack's current template.
func (s *Stack) template(ctx context.Context, app string) (*template, error) {
	out, err := s.cfn.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: aws.String(s.StackName(app))})
	if err != nil {
		return nil, awserr.Wrap("get template of stack "+s.StackName(app), err)
	}
	t, err := parseTemplate(aws.ToString(out.TemplateBody))
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w: %w", s.StackName(app), providers.ErrConflict, err)
	}
	return t, nil
}

// settled reports whether no operation is running on the stack.
func settled(st cfntypes.StackStatus) bool {
	return !strings.HasSuffix(string(st), "_IN_PROGRESS")
}

// wait polls the stack until no operation runs on it and returns its
// state; a stack that disappears (a finished delete) returns ErrNotFound.
func (s *Stack) wait(ctx context.Context, app string) (stackState, error) {
	b := poll.Backoff{Initial: s.opts.PollInterval, Max: s.opts.MaxPollInterval}
	for {
		st, err := s.describe(ctx, app)
		if err != nil || settled(st.Status) {
			return st, err
		}
		if err := b.Wait(ctx); err != nil {
			return st, err
		}
	}
}

// usable brings a stack a failed creation left behind (ROLLBACK_COMPLETE,
// which CloudFormation lets no one update) out of the way and returns the
// state of a stack that can be updated, or ErrNotFound when there is none.
func (s *Stack) usable(ctx context.Context, app string) (stackState, error) {
	st, err := s.wait(ctx, app)
	if err != nil {
		return st, err
	}
	switch st.Status {
	case cfntypes.StackStatusRollbackComplete, cfntypes.StackStatusRollbackFailed, cfntypes.StackStatusCreateFailed:
		if _, err := s.cfn.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(st.ID)}); err != nil {
			return st, awserr.Wrap("delete failed stack "+s.StackName(app), err)
		}
		if st, err = s.wait(ctx, app); err == nil {
			return st, fmt.Errorf("stack %s: %w: the failed stack could not be deleted: %s %s", s.StackName(app), providers.ErrConflict, st.Status, st.Reason)
		}
		return st, err
	case cfntypes.StackStatusUpdateRollbackFailed:
		return st, fmt.Errorf("stack %s: %w: UPDATE_ROLLBACK_FAILED: continue the rollback first (ContinueUpdateRollback)", s.StackName(app), providers.ErrConflict)
	}
	return st, nil
}

// ---------------------------------------------------------------------------
// Client request tokens

// requestToken derives the ClientRequestToken of a rollout from its
// release and token, reversibly, so that the stack's events name the
// rollout they belong to and a retried Apply never starts a second update.
func requestToken(release, token string) string {
	return "x" + hex.EncodeToString([]byte(release+"\n"+token))
}

// maxRolloutID bounds release and token together: ClientRequestToken holds
// 128 characters.
const maxRolloutID = 63

// parseRequestToken recovers the release and token of a rollout's
// ClientRequestToken; ok is false for another caller's token.
func parseRequestToken(crt string) (release, token string, ok bool) {
	h, found := strings.CutPrefix(crt, "x")
	if !found {
		return "", "", false
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", "", false
	}
	release, token, ok = strings.Cut(string(b), "\n")
	return release, token, ok
}

// ---------------------------------------------------------------------------
// Balancer

// routeID is "<app>/<process>".
func routeID(app, process string) string { return app + "/" + process }

func parseRouteID(id string) (app, process string, err error) {
	app, process, ok := strings.Cut(id, "/")
	if !ok || providers.ValidateAppProcess(app, process) != nil {
		return "", "", providers.Invalidf("route ID %q is not <app>/<process>", id)
	}
	return app, process, nil
}

// routeOf checks spec and returns the route it renders (without priority).
func (s *Stack) routeOf(spec providers.RouteSpec) (route, error) {
	if err := providers.ValidateAppProcess(spec.App, spec.Process); err != nil {
		return route{}, err
	}
	if s.opts.VPC == "" {
		return route{}, providers.Invalidf("route of %s/%s: the provider has no VPC (Options.VPC) for its target group", spec.App, spec.Process)
	}
	if spec.Port < 1 || spec.Port > providers.MaxPort {
		return route{}, providers.Invalidf("route of %s/%s: port %d is not 1 to %d", spec.App, spec.Process, spec.Port, providers.MaxPort)
	}
	switch spec.Protocol {
	case "", providers.HTTP:
		spec.Protocol = providers.HTTP
	case providers.HTTPS, providers.HTTP2:
		if s.opts.HTTPSListener == "" {
			return route{}, providers.Invalidf("route of %s/%s: %s needs Options.HTTPSListener", spec.App, spec.Process, spec.Protocol)
		}
	default:
		return route{}, providers.Invalidf("route of %s/%s: unknown protocol %q", spec.App, spec.Process, spec.Protocol)
	}
	if spec.Certificate != "" {
		return route{}, providers.Invalidf("route of %s/%s: certificates belong to the HTTPS listener of the stack mode (Options.HTTPSListener), not to a route", spec.App, spec.Process)
	}
	if spec.Path != "" && !strings.HasPrefix(spec.Path, "/") {
		return route{}, providers.Invalidf("route of %s/%s: path %q does not start with /", spec.App, spec.Process, spec.Path)
	}
	if spec.Host == "" && spec.Path == "" {
		if s.opts.Domain == "" {
			return route{}, providers.Invalidf("route of %s/%s has no host or path and the provider has no Domain", spec.App, spec.Process)
		}
		spec.Host = providers.ResourceName(spec.App, spec.Process, "") + "." + s.opts.Domain
	}
	if len(spec.Host) > 128 || len(spec.Path) > 128 {
		return route{}, providers.Invalidf("route of %s/%s: host and path are limited to 128 characters", spec.App, spec.Process)
	}
	// The target group's health check takes the bounds and defaults of
	// albbalancer's, so that a route refused by AWS is refused here before
	// a stack update, and both modes check the same defaults.
	if _, err := awshealth.Check(routeID(spec.App, spec.Process), spec.Health, awshealth.TargetGroup); err != nil {
		return route{}, err
	}
	if spec.DeregistrationDelay < 0 || spec.DeregistrationDelay > providers.MaxDeregistrationDelay {
		return route{}, providers.Invalidf("route of %s/%s: deregistration delay %v is not between 0 and %v", spec.App, spec.Process, spec.DeregistrationDelay, providers.MaxDeregistrationDelay)
	}
	return route{
		Port: spec.Port, Protocol: spec.Protocol, Host: spec.Host, Path: spec.Path,
		Health: spec.Health.WithDefaults(providers.DefaultHealthCheck()), DeregistrationDelay: seconds(spec.DeregistrationDelay),
	}, nil
}

// endpoint is where clients reach a route.
func endpoint(r route) string {
	scheme := "http"
	if r.Protocol != providers.HTTP {
		scheme = "https"
	}
	host := cmpOr(r.Host, "*")
	return scheme + "://" + host + r.Path
}

// EnsureRoute puts the route's target group and listener rule in the app's
// stack (creating the stack, with its log group, when missing) and waits
// for the stack operation. A route already in the stack as spec describes
// it changes nothing and makes no CloudFormation change.
func (s *Stack) EnsureRoute(ctx context.Context, spec providers.RouteSpec) (providers.Route, error) {
	want, err := s.routeOf(spec)
	if err != nil {
		return providers.Route{}, err
	}
	unlock, err := s.lock(ctx, spec.App)
	if err != nil {
		return providers.Route{}, err
	}
	defer unlock()
	st, err := s.usable(ctx, spec.App)
	if err != nil && !errors.Is(err, providers.ErrNotFound) {
		return providers.Route{}, err
	}
	exists := err == nil
	t := s.newTemplate(spec.App)
	if exists {
		if t, err = s.template(ctx, spec.App); err != nil {
			return providers.Route{}, err
		}
	}
	if have, ok := t.Metadata.Convox.Routes[spec.Process]; ok {
		want.Priority = have.Priority
		if have == want && st.Outputs[targetGroupOut+logicalName(spec.Process)] != "" {
			return s.route(spec, want, st)
		}
	} else if want.Priority, err = s.freePriority(ctx, spec.App, spec.Process, want); err != nil {
		return providers.Route{}, err
	}
	s.setRoute(t, spec.App, spec.Process, want)
	if st, err = s.change(ctx, spec.App, t, exists, ""); err != nil {
		return providers.Route{}, err
	}
	return s.route(spec, want, st)
}

// route builds the Route of a stack that holds it.
func (s *Stack) route(spec providers.RouteSpec, r route, st stackState) (providers.Route, error) {
	arn := st.Outputs[targetGroupOut+logicalName(spec.Process)]
	if arn == "" {
		return providers.Route{}, fmt.Errorf("stack %s: %w: no target group output for %s after the update (%s)", s.StackName(spec.App), providers.ErrUnavailable, spec.Process, st.Status)
	}
	return providers.Route{
		ID: routeID(spec.App, spec.Process), Endpoint: endpoint(r),
		Binding: providers.Binding{Kind: providers.BindingTargetGroup, Target: arn, Port: spec.Port},
	}, nil
}

// freePriority picks the rule priority of a new route: a hash of its name
// in 1..50000, moved forward past priorities the listener already uses.
func (s *Stack) freePriority(ctx context.Context, app, process string, r route) (int, error) {
	listener := s.opts.HTTPListener
	if r.Protocol != providers.HTTP {
		listener = s.opts.HTTPSListener
	}
	used := map[int]bool{}
	in := &elbv2.DescribeRulesInput{ListenerArn: aws.String(listener)}
	for page := 0; page < 200; page++ {
		out, err := s.elb.DescribeRules(ctx, in)
		if err != nil {
			return 0, awserr.Wrap("describe rules of listener "+listener, err)
		}
		for _, rule := range out.Rules {
			if n, err := strconv.Atoi(aws.ToString(rule.Priority)); err == nil {
				used[n] = true
			}
		}
		if out.NextMarker == nil {
			break
		}
		in.Marker = out.NextMarker
	}
	h := fnv.New32a()
	h.Write([]byte(s.StackName(app) + "/" + process))
	p := int(h.Sum32()%50000) + 1
	for range 50000 {
		if !used[p] {
			return p, nil
		}
		p = p%50000 + 1
	}
	return 0, fmt.Errorf("listener %s: %w: every rule priority is in use", listener, providers.ErrConflict)
}

// change creates or updates the stack with t and waits for the operation.
// A failed operation returns an error with the failing resource's reason.
func (s *Stack) change(ctx context.Context, app string, t *template, exists bool, crt string) (stackState, error) {
	body, err := t.body()
	if err != nil {
		return stackState{}, err
	}
	var tok *string
	if crt != "" {
		tok = aws.String(crt)
	}
	name := s.StackName(app)
	if exists {
		_, err = s.cfn.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: aws.String(name), TemplateBody: aws.String(body), ClientRequestToken: tok})
		if noUpdates(err) {
			err = nil
		}
		if err != nil {
			return stackState{}, raced("update stack "+name, err)
		}
	} else {
		_, err = s.cfn.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String(name), TemplateBody: aws.String(body), ClientRequestToken: tok})
		if err != nil {
			return stackState{}, raced("create stack "+name, err)
		}
	}
	st, err := s.wait(ctx, app)
	if err != nil {
		return st, err
	}
	switch st.Status {
	case cfntypes.StackStatusCreateComplete, cfntypes.StackStatusUpdateComplete:
		return st, nil
	}
	op, _ := s.operation(ctx, app, st)
	return st, fmt.Errorf("stack %s: %w: %s: %s", name, providers.ErrConflict, st.Status, cmpOr(op.reason, st.Reason))
}

// Health returns the targets of the route's target group.
func (s *Stack) Health(ctx context.Context, id string) ([]providers.TargetHealth, error) {
	app, process, err := parseRouteID(id)
	if err != nil {
		return nil, err
	}
	st, err := s.describe(ctx, app)
	if err != nil {
		return nil, err
	}
	arn := st.Outputs[targetGroupOut+logicalName(process)]
	if arn == "" {
		return nil, fmt.Errorf("route %s: %w", id, providers.ErrNotFound)
	}
	out, err := s.elb.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(arn)})
	if err != nil {
		return nil, awserr.Wrap("describe target health of "+id, err)
	}
	hs := []providers.TargetHealth{}
	for _, d := range out.TargetHealthDescriptions {
		th := providers.TargetHealth{}
		if d.Target != nil {
			th.Target = aws.ToString(d.Target.Id)
			if d.Target.Port != nil {
				th.Target += ":" + strconv.Itoa(int(*d.Target.Port))
			}
		}
		if d.TargetHealth != nil {
			th.State = targetState(string(d.TargetHealth.State))
			th.Reason = aws.ToString(d.TargetHealth.Description)
		}
		hs = append(hs, th)
	}
	slices.SortFunc(hs, func(a, b providers.TargetHealth) int { return strings.Compare(a.Target, b.Target) })
	return hs, nil
}

func targetState(s string) providers.TargetState {
	switch s {
	case "healthy":
		return providers.TargetHealthy
	case "initial":
		return providers.TargetInitial
	case "draining":
		return providers.TargetDraining
	case "unused":
		return providers.TargetUnused
	}
	return providers.TargetUnhealthy
}

// DeleteRoute takes the route out of the app's stack and waits for the
// update; when nothing else is left in the stack (no route, no process),
// it deletes the stack instead.
func (s *Stack) DeleteRoute(ctx context.Context, id string) error {
	app, process, err := parseRouteID(id)
	if err != nil {
		return err
	}
	unlock, err := s.lock(ctx, app)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.wait(ctx, app)
	if errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := s.template(ctx, app)
	if err != nil {
		return err
	}
	if _, ok := t.Metadata.Convox.Routes[process]; !ok {
		return nil
	}
	removeRoute(t, process)
	if len(t.Metadata.Convox.Routes) == 0 && !slices.ContainsFunc(mapKeys(t.Resources), isService) {
		return s.deleteStack(ctx, app, st)
	}
	_, err = s.change(ctx, app, t, true, "")
	return err
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ---------------------------------------------------------------------------
// Scheduler

// Apply renders d, with the routes already in the stack, as the app's
// stack template and starts one CreateStack or UpdateStack whose
// ClientRequestToken is derived from d.Release and d.Token. It does not
// wait. Applying a token the stack already carries (or whose update is in
// flight or was rolled back) starts nothing and returns that rollout.
func (s *Stack) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	if err := s.validate(d); err != nil {
		return providers.Rollout{}, err
	}
	crt := requestToken(d.Release, d.Token)
	unlock, err := s.lock(ctx, d.App)
	if err != nil {
		return providers.Rollout{}, err
	}
	defer unlock()
	st, err := s.describe(ctx, d.App)
	if err != nil && !errors.Is(err, providers.ErrNotFound) {
		return providers.Rollout{}, err
	}
	exists := err == nil
	if exists {
		// The same token again: report its rollout, start nothing.
		if st.Outputs[outputToken] == d.Token && settled(st.Status) && !rolledBack(st.Status) {
			return s.rolloutOf(ctx, d.App, st, crt)
		}
		// A completed stack whose outputs carry another token has no
		// operation of this token; otherwise its events say.
		if st.Status != cfntypes.StackStatusCreateComplete && st.Status != cfntypes.StackStatusUpdateComplete {
			op, err := s.operation(ctx, d.App, st)
			if err != nil {
				return providers.Rollout{}, err
			}
			if op.crt == crt {
				return s.rolloutOf(ctx, d.App, st, crt)
			}
		}
		if !settled(st.Status) {
			return providers.Rollout{}, fmt.Errorf("stack %s: %w: %s (another update is in flight)", s.StackName(d.App), providers.ErrConflict, st.Status)
		}
		if st, err = s.usable(ctx, d.App); err != nil && !errors.Is(err, providers.ErrNotFound) {
			return providers.Rollout{}, err
		}
		exists = err == nil
	}
	t := s.newTemplate(d.App)
	if exists {
		if t, err = s.template(ctx, d.App); err != nil {
			return providers.Rollout{}, err
		}
	}
	if err := s.setProcesses(t, d, st.Outputs); err != nil {
		return providers.Rollout{}, err
	}
	body, err := t.body()
	if err != nil {
		return providers.Rollout{}, err
	}
	if err := s.ensureCluster(ctx); err != nil {
		return providers.Rollout{}, err
	}
	name := s.StackName(d.App)
	started := time.Now()
	if exists {
		_, err = s.cfn.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: aws.String(name), TemplateBody: aws.String(body), ClientRequestToken: aws.String(crt)})
		if noUpdates(err) {
			return providers.Rollout{ID: crt, Release: d.Release, Token: d.Token, State: providers.RolloutCompleted, Started: started}, nil
		}
		if err != nil {
			return providers.Rollout{}, wrapChange("update stack "+name, err)
		}
	} else {
		_, err = s.cfn.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String(name), TemplateBody: aws.String(body), ClientRequestToken: aws.String(crt)})
		if err != nil {
			return providers.Rollout{}, wrapChange("create stack "+name, err)
		}
	}
	return providers.Rollout{ID: crt, Release: d.Release, Token: d.Token, State: providers.RolloutInProgress, Started: started}, nil
}

// validate checks d before any call: the shared rules of Desired, what
// a ClientRequestToken holds, a pinned image, no secret references (the
// stack mode is no providers.SecretKeeper: a reference would be dropped)
// and target group bindings.
func (s *Stack) validate(d providers.Desired) error {
	if err := d.Validate(s.Limits()); err != nil {
		return err
	}
	if len(d.Release)+1+len(d.Token) > maxRolloutID {
		return providers.Invalidf("release %q and token %q together exceed %d characters (the ClientRequestToken limit)", d.Release, d.Token, maxRolloutID)
	}
	if d.Image.Repository == "" || d.Image.Digest == "" {
		return providers.Invalidf("app %s release %s: the image is not pinned to a digest", d.App, d.Release)
	}
	if len(d.SecretRefs) > 0 {
		return providers.Invalidf("app %s release %s: the stack mode keeps secret values in its task definitions and takes no secret references", d.App, d.Release)
	}
	for _, name := range slices.Sorted(maps.Keys(d.Bindings)) {
		bs := d.Bindings[name]
		if len(bs) > 5 {
			return providers.Invalidf("process %s has %d bindings; an ECS service takes at most 5 target groups", name, len(bs))
		}
		for _, b := range bs {
			if !s.AcceptsBinding(b.Kind) || b.Target == "" {
				return providers.Invalidf("process %s: binding kind %q is not an ELBv2 target group", name, b.Kind)
			}
		}
	}
	return nil
}

// rolloutOf returns the rollout crt as Status reports it.
func (s *Stack) rolloutOf(ctx context.Context, app string, st stackState, crt string) (providers.Rollout, error) {
	status, err := s.status(ctx, app, st)
	if err != nil {
		return providers.Rollout{}, err
	}
	for _, r := range status.Rollouts {
		if r.ID == crt {
			return r, nil
		}
	}
	release, token, _ := parseRequestToken(crt)
	return providers.Rollout{ID: crt, Release: release, Token: token, State: providers.RolloutCompleted}, nil
}

// ensureCluster creates the ECS cluster once per Stack.
func (s *Stack) ensureCluster(ctx context.Context) error {
	s.mu.Lock()
	done := s.cluster
	s.mu.Unlock()
	if done {
		return nil
	}
	if _, err := s.ecs.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String(s.opts.Cluster)}); err != nil {
		return awserr.Wrap("create cluster "+s.opts.Cluster, err)
	}
	s.mu.Lock()
	s.cluster = true
	s.mu.Unlock()
	return nil
}

// Delete stops the app's one-off tasks, deregisters the task definitions
// RunTask registered outside the stack, deletes the app's stack and waits
// until CloudFormation removed it. A missing stack returns nil.
func (s *Stack) Delete(ctx context.Context, app string) error {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return err
	}
	unlock, err := s.lock(ctx, app)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.deleteOneOffs(ctx, app); err != nil {
		return err
	}
	st, err := s.wait(ctx, app)
	if errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.deleteStack(ctx, app, st)
}

func (s *Stack) deleteStack(ctx context.Context, app string, st stackState) error {
	if _, err := s.cfn.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(st.ID)}); err != nil {
		return awserr.Wrap("delete stack "+s.StackName(app), err)
	}
	st, err := s.wait(ctx, app)
	if errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	op, _ := s.operation(ctx, app, st)
	return fmt.Errorf("delete stack %s: %w: %s: %s", s.StackName(app), providers.ErrConflict, st.Status, cmpOr(op.reason, st.Reason))
}

// CancelRollout cancels the stack update of the rollout when it is the one
// in flight (CancelUpdateStack): CloudFormation rolls the stack back to
// its previous template, and Status reports the rollout canceled. A
// finished or unknown rollout returns nil.
func (s *Stack) CancelRollout(ctx context.Context, app, id string) error {
	st, err := s.describe(ctx, app)
	if errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Status != cfntypes.StackStatusUpdateInProgress {
		return nil
	}
	op, err := s.operation(ctx, app, st)
	if err != nil || op.crt != id {
		return err
	}
	_, err = s.cfn.CancelUpdateStack(ctx, &cloudformation.CancelUpdateStackInput{StackName: aws.String(st.ID)})
	if err != nil && busy(err) {
		return nil // the update finished meanwhile
	}
	return awserr.Wrap("cancel update of stack "+s.StackName(app), err)
}

// ContinueUpdateRollback resumes the rollback of a stack in
// UPDATE_ROLLBACK_FAILED, skipping the named resources (the logical IDs
// Status lists as resources to skip), and returns without waiting.
func (s *Stack) ContinueUpdateRollback(ctx context.Context, app string, skip []string) error {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return err
	}
	_, err := s.cfn.ContinueUpdateRollback(ctx, &cloudformation.ContinueUpdateRollbackInput{StackName: aws.String(s.StackName(app)), ResourcesToSkip: skip})
	return wrapChange("continue update rollback of stack "+s.StackName(app), err)
}
