package ecsscheduler

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// API is the part of the ECS client the scheduler uses; *ecs.Client
// implements it.
type API interface {
	CreateCluster(context.Context, *ecs.CreateClusterInput, ...func(*ecs.Options)) (*ecs.CreateClusterOutput, error)
	RegisterTaskDefinition(context.Context, *ecs.RegisterTaskDefinitionInput, ...func(*ecs.Options)) (*ecs.RegisterTaskDefinitionOutput, error)
	DescribeTaskDefinition(context.Context, *ecs.DescribeTaskDefinitionInput, ...func(*ecs.Options)) (*ecs.DescribeTaskDefinitionOutput, error)
	ListTaskDefinitions(context.Context, *ecs.ListTaskDefinitionsInput, ...func(*ecs.Options)) (*ecs.ListTaskDefinitionsOutput, error)
	DeregisterTaskDefinition(context.Context, *ecs.DeregisterTaskDefinitionInput, ...func(*ecs.Options)) (*ecs.DeregisterTaskDefinitionOutput, error)
	CreateService(context.Context, *ecs.CreateServiceInput, ...func(*ecs.Options)) (*ecs.CreateServiceOutput, error)
	UpdateService(context.Context, *ecs.UpdateServiceInput, ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error)
	DeleteService(context.Context, *ecs.DeleteServiceInput, ...func(*ecs.Options)) (*ecs.DeleteServiceOutput, error)
	DescribeServices(context.Context, *ecs.DescribeServicesInput, ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	ListServices(context.Context, *ecs.ListServicesInput, ...func(*ecs.Options)) (*ecs.ListServicesOutput, error)
	TagResource(context.Context, *ecs.TagResourceInput, ...func(*ecs.Options)) (*ecs.TagResourceOutput, error)
	ListTasks(context.Context, *ecs.ListTasksInput, ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
	DescribeTasks(context.Context, *ecs.DescribeTasksInput, ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
	RunTask(context.Context, *ecs.RunTaskInput, ...func(*ecs.Options)) (*ecs.RunTaskOutput, error)
	StopTask(context.Context, *ecs.StopTaskInput, ...func(*ecs.Options)) (*ecs.StopTaskOutput, error)
}

// Options configure a Scheduler. Every zero field takes its default.
type Options struct {
	// Cluster is the ECS cluster of the rack ("convox" by default). Apply
	// creates it when missing.
	Cluster string
	// Subnets, SecurityGroups and AssignPublicIP are the awsvpc network
	// configuration of Fargate tasks. ECS requires at least one subnet.
	Subnets        []string
	SecurityGroups []string
	AssignPublicIP bool
	// ExecutionRoleARN is the role ECS uses to pull images and write logs;
	// Fargate tasks that pull from ECR or log with awslogs need it.
	ExecutionRoleARN string
	// TaskRoleARN is the role the app's containers assume, if any.
	TaskRoleARN string
	// LogGroup names the CloudWatch Logs group of an app; the default is
	// "/convox/<app>", matching the rack's CloudWatch Logs provider.
	LogGroup func(app string) string
	// Region is the awslogs region; the default is the ECS client's region.
	Region string
	// CPU (units) and Memory (MiB) of a process that sets none: 256 and 512.
	CPU    int
	Memory int
	// MinimumHealthyPercent and MaximumPercent of service deployments:
	// 100 and 200 by default.
	MinimumHealthyPercent int
	MaximumPercent        int
	// StoppedTasks bounds the stopped tasks reported per app (default 20).
	StoppedTasks int
	// Limits bound what the scheduler runs (see Limits); zero fields take
	// the ECS defaults of DefaultLimits.
	Limits providers.Limits
	// SSM is the Parameter Store client (an *ssm.Client) secrets are kept
	// with; see Secrets in the package documentation. Without it, secret
	// values are plain environment entries of the task definition.
	SSM SSMAPI
	// ParameterPrefix is the SSM path of the rack's secrets,
	// "/convox/<Cluster>" by default: an app's secrets are under
	// "<ParameterPrefix>/<app>/". It starts with a slash and does not end
	// with one.
	ParameterPrefix string
}

// Scheduler runs apps on ECS. It is safe for concurrent use.
type Scheduler struct {
	api  API
	opts Options

	mu      sync.Mutex
	cluster bool                   // the cluster is known to exist
	defs    map[string]tdInfo      // task definition ARN -> what it runs; revisions are immutable
	applies map[string]*sync.Mutex // app -> serializes this scheduler's Applies of the app
}

// tdInfo is what the scheduler needs to know of a task definition revision.
type tdInfo struct {
	spec    spec
	app     string
	release string
	process string
}

var (
	_ providers.Scheduler       = (*Scheduler)(nil)
	_ providers.BatchStatus     = (*Scheduler)(nil)
	_ providers.Canceler        = (*Scheduler)(nil)
	_ providers.TaskRunner      = (*Scheduler)(nil)
	_ providers.BindingAcceptor = (*Scheduler)(nil)
	_ providers.Stager          = (*Scheduler)(nil)
)

// New returns a Scheduler using api (usually an *ecs.Client). opts may be nil.
func New(api API, opts *Options) *Scheduler {
	s := &Scheduler{api: api, defs: map[string]tdInfo{}, applies: map[string]*sync.Mutex{}}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Cluster == "" {
		s.opts.Cluster = "convox"
	}
	if s.opts.LogGroup == nil {
		s.opts.LogGroup = func(app string) string { return "/convox/" + app }
	}
	if s.opts.Region == "" {
		if c, ok := api.(*ecs.Client); ok {
			s.opts.Region = c.Options().Region
		}
	}
	if s.opts.CPU == 0 {
		s.opts.CPU = 256
	}
	if s.opts.Memory == 0 {
		s.opts.Memory = 512
	}
	if s.opts.MinimumHealthyPercent == 0 {
		s.opts.MinimumHealthyPercent = 100
	}
	if s.opts.MaximumPercent == 0 {
		s.opts.MaximumPercent = 200
	}
	if s.opts.StoppedTasks == 0 {
		s.opts.StoppedTasks = 20
	}
	s.opts.Limits = withECSDefaults(s.opts.Limits)
	if s.opts.ParameterPrefix == "" {
		s.opts.ParameterPrefix = "/convox/" + s.opts.Cluster
	}
	return s
}

// AcceptsBinding reports whether kind is BindingTargetGroup or BindingClassicELB.
func (s *Scheduler) AcceptsBinding(kind string) bool {
	return kind == providers.BindingTargetGroup || kind == providers.BindingClassicELB
}

// Tags the scheduler keeps on services.
const (
	tagApp      = "convox:app"
	tagProcess  = "convox:process"
	tagRelease  = "convox:release"
	tagToken    = "convox:token"
	tagBase     = "convox:base"     // release completed when the rollout started
	tagStarted  = "convox:started"  // unix seconds the rollout started
	tagTaskDef  = "convox:taskdef"  // task definition the rollout deploys
	tagCanceled = "convox:canceled" // token of a canceled rollout

	// Blue/green: see Stage and PromoteStage.
	tagRole     = "convox:role"     // roleStaged or roleServing; absent means serving
	tagPromoted = "convox:promoted" // token of the staged rollout PromoteStage made serving
	tagReplaced = "convox:replaced" // the service that promotion replaced

	// The rollout before the current one, as it stood when it was replaced.
	tagPrevToken   = "convox:prev-token"
	tagPrevRelease = "convox:prev-release"
	tagPrevStarted = "convox:prev-started"
	tagPrevState   = "convox:prev-state"
	tagPrevReason  = "convox:prev-reason"
)

// Values of tagRole.
const (
	roleStaged  = "staged"
	roleServing = "serving"
	rolePaired  = "paired"
)

// Labels on task definitions.
const (
	labelApp     = "convox.app"
	labelProcess = "convox.process"
	labelRelease = "convox.release"
)

// family is the task-definition family of a process:
// "<cluster>_<app>_<process>", and "<cluster>_<app>_<process>__run" for
// its one-off tasks. Family names are unique per account and region, so
// they hold the cluster, the rack's namespace. App and process names hold
// no underscore, so read from the right a family names one cluster, app
// and process ("a-b"+"c" and "a"+"b-c" differ), and a serving family,
// which ends with a process name, never ends with "__run". At most 255
// characters: a cluster name of at most 219 with the 36 of the rest.
func (s *Scheduler) family(app, process string) string {
	return s.opts.Cluster + "_" + app + "_" + process
}

// serviceName is the name of the serving service a process's first Apply
// creates: "<app>_<process>". App and process names hold no underscore,
// so the name is one app's and process's ("a-b"+"c" and "a"+"b-c"
// differ); at most 33 characters. Services created by earlier versions,
// "<app>-<process>", keep their names: services are found by their tags.
func serviceName(app, process string) string {
	return app + "_" + process
}

// legacyFamily is the family name earlier versions used,
// "<cluster>-<app>-<process>" (ambiguous: "a-b"+"c" and "a"+"b-c"
// share it); Delete still deregisters the app's revisions there.
func (s *Scheduler) legacyFamily(app, process string) string {
	return s.opts.Cluster + "-" + providers.ResourceName(app, process, "")
}

func runGroup(app string) string { return "convox-run:" + app }

// ---------------------------------------------------------------------------
// Apply

// validate checks d with the shared rules and lim
// (providers.Desired.Validate), then what ECS requires beyond them: an
// image pinned by digest and bindings ECS can attach.
func validate(d providers.Desired, lim providers.Limits, accepts func(string) bool) error {
	if err := d.Validate(lim); err != nil {
		return err
	}
	if d.Image.Repository == "" || d.Image.Digest == "" {
		return providers.Invalidf("image %q is not pinned by digest", d.Image.Ref())
	}
	for name, bs := range d.Bindings {
		i := slices.IndexFunc(d.Processes, func(p providers.Process) bool { return p.Name == name })
		classic, groups := 0, 0
		for _, b := range bs {
			if !accepts(b.Kind) {
				return providers.Invalidf("process %q: binding kind %q is not supported by the ECS scheduler", name, b.Kind)
			}
			if b.Target == "" {
				return providers.Invalidf("process %q: binding without a target", name)
			}
			if b.Port == 0 && d.Processes[i].Port == 0 {
				return providers.Invalidf("process %q: bound to a balancer but has no port", name)
			}
			if b.Kind == providers.BindingClassicELB {
				classic++
			} else {
				groups++
			}
		}
		if classic > 1 || groups > 5 {
			return providers.Invalidf("process %q: ECS attaches at most one classic load balancer and up to five target groups, got %d and %d", name, classic, groups)
		}
	}
	return nil
}

// Apply converges the app to d; see the package documentation.
func (s *Scheduler) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return s.apply(ctx, d, false)
}

// apply is the one path of Apply and Stage, of the staged services when
// staged is true, else of the serving ones: it validates d (a staged
// release attaches to one kind of load balancer), checks its secrets,
// ensures the cluster of a serving release, and reads the app's services
// under the app's lock; applyServing or applyStaged then converges the
// side to d, each returning the rollout of a known token unchanged.
func (s *Scheduler) apply(ctx context.Context, d providers.Desired, staged bool) (providers.Rollout, error) {
	if err := validate(d, s.opts.Limits, s.AcceptsBinding); err != nil {
		return providers.Rollout{}, err
	}
	if staged {
		for name, bs := range d.Bindings {
			if _, other := splitBindings(bs, nil); other != nil {
				return providers.Rollout{}, providers.Invalidf("process %q: a staged release attaches to one kind of load balancer, not a classic load balancer and target groups", name)
			}
		}
	}
	if err := s.checkSecrets(d.App, d.Env, d.Secret, d.SecretRefs); err != nil {
		return providers.Rollout{}, err
	}
	token := cmp.Or(d.Token, d.Release)
	if !staged {
		if err := s.ensureCluster(ctx); err != nil {
			return providers.Rollout{}, err
		}
	}
	unlock := s.lockApp(d.App)
	defer unlock()
	apps, err := s.describeApps(ctx, []string{d.App})
	if err != nil {
		return providers.Rollout{}, err
	}
	if staged {
		return s.applyStaged(ctx, d, token, apps[d.App])
	}
	return s.applyServing(ctx, d, token, apps[d.App])
}

// applyServing converges the serving services of the app, whose services
// are current (nil for a new app), to d under token; the app is locked.
func (s *Scheduler) applyServing(ctx context.Context, d providers.Desired, token string, current *appView) (providers.Rollout, error) {
	if current != nil && sameToken(current.services, d, token) && pairsApplied(current, d, token) {
		r := current.rollout()
		r.ID, r.Token = token, token
		return r, nil
	}
	env, refs, err := s.environment(ctx, d.App, d.Release, d.Env, d.Secret, d.SecretRefs)
	if err != nil {
		return providers.Rollout{}, err
	}
	base := ""
	var prev []types.Tag
	if current != nil {
		// A stage is discarded: the new release replaces what serves.
		if err := s.retire(ctx, append(slices.Collect(maps.Values(current.staged)), current.stale...)); err != nil {
			return providers.Rollout{}, err
		}
		if len(current.services) > 0 {
			base = current.completedRelease()
			prev = previousTags(current.rollout())
		}
	}
	started := time.Now().UTC().Truncate(time.Second)
	var retired []*types.Service
	for _, p := range d.Processes {
		var svc, paired *types.Service
		if current != nil {
			svc, paired = current.services[p.Name], current.paired[p.Name]
		}
		own, other := splitBindings(d.Bindings[p.Name], svc)
		name := serviceName(d.App, p.Name)
		var role []types.Tag
		if svc != nil && other == nil && paired != nil && svc.LaunchType != s.launchType(classicBinding(own)) && paired.LaunchType == s.launchType(classicBinding(own)) {
			// The move between kinds of load balancer is finished: the
			// paired service, on the bindings' kind, becomes the serving
			// one, and the one it replaces is retired.
			role = []types.Tag{tag(tagRole, roleServing), tag(tagReplaced, aws.ToString(svc.ServiceName))}
			retired = append(retired, svc)
			svc, paired = paired, nil
		}
		tags, err := s.applyProcess(ctx, d, p, env, refs, own, svc, name, token, role, func(td string) []types.Tag {
			return append([]types.Tag{
				tag(tagApp, d.App), tag(tagProcess, p.Name), tag(tagRelease, d.Release), tag(tagToken, tagValue(token)),
				tag(tagBase, base), tag(tagStarted, strconv.FormatInt(started.Unix(), 10)), tag(tagTaskDef, td),
			}, prev...)
		})
		if err != nil {
			return providers.Rollout{}, err
		}
		switch {
		case other != nil:
			// While the app moves between a classic load balancer and
			// target groups, a paired service runs the release on the
			// other kind.
			pairTags := func(td string) []types.Tag {
				return append(slices.DeleteFunc(slices.Clone(tags), func(t types.Tag) bool {
					k := aws.ToString(t.Key)
					return k == tagTaskDef || k == tagRole || k == tagReplaced
				}), tag(tagTaskDef, td), tag(tagRole, rolePaired))
			}
			if _, err := s.applyProcess(ctx, d, p, env, refs, other, paired, pairedName(d.App, p.Name, token), token, nil, pairTags); err != nil {
				return providers.Rollout{}, err
			}
		case paired != nil:
			retired = append(retired, paired)
		}
	}
	if current != nil {
		for name, svc := range current.services {
			if !slices.ContainsFunc(d.Processes, func(p providers.Process) bool { return p.Name == name }) {
				if err := s.deleteService(ctx, *svc.ServiceName); err != nil {
					return providers.Rollout{}, err
				}
			}
		}
		for name, svc := range current.paired {
			if !slices.ContainsFunc(d.Processes, func(p providers.Process) bool { return p.Name == name }) {
				retired = append(retired, svc)
			}
		}
	}
	if err := s.retire(ctx, retired); err != nil {
		return providers.Rollout{}, err
	}
	return providers.Rollout{ID: token, Release: d.Release, Token: token, State: providers.RolloutInProgress, Started: started}, nil
}

// applyProcess registers (or reuses) the task definition of process p
// attached to bindings and creates the service name, or updates svc,
// with the tags tagsFor returns for that task definition plus extra. It
// returns the tags applied.
func (s *Scheduler) applyProcess(ctx context.Context, d providers.Desired, p providers.Process, env, refs map[string]string, bindings []providers.Binding, svc *types.Service, name, token string, extra []types.Tag, tagsFor func(td string) []types.Tag) ([]types.Tag, error) {
	var candidates []string
	if svc != nil {
		for _, dep := range svc.Deployments {
			candidates = append(candidates, aws.ToString(dep.TaskDefinition))
		}
	}
	td, err := s.ensureTaskDefinition(ctx, d.App, p, d.Release, d.Image, env, refs, bindings, false, candidates...)
	if err != nil {
		return nil, err
	}
	tags := append(tagsFor(td), extra...)
	if err := s.applyService(ctx, name, p, td, bindings, svc, token, tags); err != nil {
		return nil, err
	}
	return tags, nil
}

// splitBindings separates a process's bindings when they mix a classic
// load balancer and target groups, which one ECS service cannot attach
// together: own are those of the kind the serving service svc runs for
// (its launch type: EC2 for a classic load balancer, Fargate for target
// groups; the first binding's kind without a service), other the rest,
// for a paired service. Bindings of one kind are all own.
func splitBindings(bs []providers.Binding, svc *types.Service) (own, other []providers.Binding) {
	isClassic := func(b providers.Binding) bool { return b.Kind == providers.BindingClassicELB }
	if !slices.ContainsFunc(bs, isClassic) || !slices.ContainsFunc(bs, func(b providers.Binding) bool { return !isClassic(b) }) {
		return bs, nil
	}
	ownClassic := isClassic(bs[0])
	if svc != nil && svc.LaunchType != "" {
		ownClassic = svc.LaunchType == types.LaunchTypeEc2
	}
	for _, b := range bs {
		if isClassic(b) == ownClassic {
			own = append(own, b)
		} else {
			other = append(other, b)
		}
	}
	return own, other
}

// pairedName is the name of the paired service of a process under a
// rollout token: the process's service name, "--p" and seven hexadecimal
// digits of a hash of the token (at most 38 characters, like stagedName;
// never a staged name, whose suffix is hexadecimal only).
func pairedName(app, process, token string) string {
	return serviceName(app, process) + "--p" + hashed(app + "/" + token)[:7]
}

// pairsApplied reports whether the app's paired services are those d
// needs: one carrying token for each process whose bindings mix kinds,
// none for the others.
func pairsApplied(v *appView, d providers.Desired, token string) bool {
	for _, p := range d.Processes {
		_, other := splitBindings(d.Bindings[p.Name], v.services[p.Name])
		paired := v.paired[p.Name]
		if (other != nil) != (paired != nil) || paired != nil && tagOf(paired.Tags, tagToken) != tagValue(token) {
			return false
		}
	}
	for name := range v.paired {
		if !slices.ContainsFunc(d.Processes, func(p providers.Process) bool { return p.Name == name }) {
			return false
		}
	}
	return true
}

// lockApp serializes the Applies of one app within this scheduler, so
// that concurrent Applies of one token create one rollout.
func (s *Scheduler) lockApp(app string) (unlock func()) {
	s.mu.Lock()
	m := s.applies[app]
	if m == nil {
		m = &sync.Mutex{}
		s.applies[app] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// previousTags records the rollout being replaced. One still in progress
// is recorded as canceled: the new rollout supersedes it.
func previousTags(r providers.Rollout) []types.Tag {
	state, reason := r.State, r.Reason
	if state == providers.RolloutInProgress {
		state, reason = providers.RolloutCanceled, "superseded by a newer rollout"
	}
	return []types.Tag{
		tag(tagPrevToken, r.ID), tag(tagPrevRelease, r.Release), tag(tagPrevStarted, strconv.FormatInt(r.Started.Unix(), 10)),
		tag(tagPrevState, string(state)), tag(tagPrevReason, tagValue(reason)),
	}
}

func tag(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }

// tagValue fits a value in the 256 characters of an ECS tag value.
func tagValue(v string) string {
	if len(v) <= 256 {
		return v
	}
	return hashed(v)
}

func hashed(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// sameToken reports whether every process of d already runs under token
// in svcs (an app's serving or staged services).
func sameToken(svcs map[string]*types.Service, d providers.Desired, token string) bool {
	if len(svcs) != len(d.Processes) || len(d.Processes) == 0 {
		return false
	}
	for _, p := range d.Processes {
		svc := svcs[p.Name]
		if svc == nil || tagOf(svc.Tags, tagToken) != tagValue(token) {
			return false
		}
	}
	return true
}

func (s *Scheduler) ensureCluster(ctx context.Context) error {
	s.mu.Lock()
	ok := s.cluster
	s.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := s.api.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String(s.opts.Cluster)}); err != nil {
		return awserr.Wrap(fmt.Sprintf("create cluster %q", s.opts.Cluster), err)
	}
	s.mu.Lock()
	s.cluster = true
	s.mu.Unlock()
	return nil
}

func classicBinding(bs []providers.Binding) bool {
	return slices.ContainsFunc(bs, func(b providers.Binding) bool { return b.Kind == providers.BindingClassicELB })
}

// taskDefinitionInput builds the task definition of a process.
func (s *Scheduler) taskDefinitionInput(app string, p providers.Process, release string, img providers.Image, env, refs map[string]string, bindings []providers.Binding, oneOff bool) *ecs.RegisterTaskDefinitionInput {
	cpu, mem := p.CPU, p.Memory
	if cpu == 0 {
		cpu = s.opts.CPU
	}
	if mem == 0 {
		mem = s.opts.Memory
	}
	family := s.family(app, p.Name)
	if oneOff {
		family += "__run"
	}
	vars := maps.Clone(env)
	if vars == nil {
		vars = map[string]string{}
	}
	if _, ok := vars["PORT"]; !ok && p.Port > 0 {
		vars["PORT"] = strconv.Itoa(p.Port)
	}
	var kv []types.KeyValuePair
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		kv = append(kv, types.KeyValuePair{Name: aws.String(k), Value: aws.String(vars[k])})
	}
	var secrets []types.Secret
	for _, k := range slices.Sorted(maps.Keys(refs)) {
		secrets = append(secrets, types.Secret{Name: aws.String(k), ValueFrom: aws.String(refs[k])})
	}
	c := types.ContainerDefinition{
		Name:        aws.String(p.Name),
		Image:       aws.String(img.Ref()),
		Essential:   aws.Bool(true),
		Environment: kv,
		Secrets:     secrets,
		DockerLabels: map[string]string{
			labelApp: app, labelProcess: p.Name, labelRelease: release,
		},
		LogConfiguration: &types.LogConfiguration{
			LogDriver: types.LogDriverAwslogs,
			Options: map[string]string{
				"awslogs-group":         s.opts.LogGroup(app),
				"awslogs-region":        s.opts.Region,
				"awslogs-stream-prefix": p.Name,
				"awslogs-create-group":  "true",
			},
		},
	}
	if len(p.Command) > 0 {
		c.Command = slices.Clone(p.Command)
	}
	ports := map[int32]bool{}
	if p.Port > 0 {
		ports[int32(p.Port)] = true
	}
	for _, b := range bindings {
		if b.Port > 0 {
			ports[int32(b.Port)] = true
		}
	}
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		c.PortMappings = append(c.PortMappings, types.PortMapping{ContainerPort: aws.Int32(port), HostPort: aws.Int32(port), Protocol: types.TransportProtocolTcp})
	}
	in := &ecs.RegisterTaskDefinitionInput{
		Family:               aws.String(family),
		ContainerDefinitions: []types.ContainerDefinition{c},
	}
	if s.opts.ExecutionRoleARN != "" {
		in.ExecutionRoleArn = aws.String(s.opts.ExecutionRoleARN)
	}
	if s.opts.TaskRoleARN != "" {
		in.TaskRoleArn = aws.String(s.opts.TaskRoleARN)
	}
	if classicBinding(bindings) {
		in.NetworkMode = types.NetworkModeBridge
		in.RequiresCompatibilities = []types.Compatibility{types.CompatibilityEc2}
		in.ContainerDefinitions[0].Cpu = int32(cpu)
		in.ContainerDefinitions[0].Memory = aws.Int32(int32(mem))
	} else {
		in.NetworkMode = types.NetworkModeAwsvpc
		in.RequiresCompatibilities = []types.Compatibility{types.CompatibilityFargate}
		in.Cpu = aws.String(strconv.Itoa(cpu))
		in.Memory = aws.String(strconv.Itoa(mem))
	}
	return in
}

// spec is the part of a task definition the scheduler sets, in a form
// that compares equal whether built from a request or read back.
type spec struct {
	Family, CPU, Memory, NetworkMode, ExecutionRole, TaskRole string
	Compat                                                    []string
	Containers                                                []containerSpec
}

type containerSpec struct {
	Name, Image string
	Command     []string
	CPU, Memory int32
	Env         []string
	Secrets     []string
	Ports       []string
	LogDriver   string
	LogOptions  map[string]string
	Labels      map[string]string
}

func specOf(family string, cpu, mem *string, mode types.NetworkMode, compat []types.Compatibility, exec, task *string, cds []types.ContainerDefinition) spec {
	sp := spec{Family: family, CPU: aws.ToString(cpu), Memory: aws.ToString(mem), NetworkMode: string(mode),
		ExecutionRole: aws.ToString(exec), TaskRole: aws.ToString(task)}
	for _, c := range compat {
		sp.Compat = append(sp.Compat, string(c))
	}
	slices.Sort(sp.Compat)
	for _, cd := range cds {
		cs := containerSpec{Name: aws.ToString(cd.Name), Image: aws.ToString(cd.Image), Command: cd.Command,
			CPU: cd.Cpu, Memory: aws.ToInt32(cd.Memory), Labels: cd.DockerLabels}
		for _, kv := range cd.Environment {
			cs.Env = append(cs.Env, aws.ToString(kv.Name)+"="+aws.ToString(kv.Value))
		}
		slices.Sort(cs.Env)
		for _, sec := range cd.Secrets {
			cs.Secrets = append(cs.Secrets, aws.ToString(sec.Name)+"="+aws.ToString(sec.ValueFrom))
		}
		slices.Sort(cs.Secrets)
		for _, pm := range cd.PortMappings {
			cs.Ports = append(cs.Ports, fmt.Sprintf("%d:%d", aws.ToInt32(pm.ContainerPort), aws.ToInt32(pm.HostPort)))
		}
		slices.Sort(cs.Ports)
		if cd.LogConfiguration != nil {
			cs.LogDriver = string(cd.LogConfiguration.LogDriver)
			cs.LogOptions = cd.LogConfiguration.Options
		}
		sp.Containers = append(sp.Containers, cs)
	}
	return sp
}

func (a spec) equal(b spec) bool {
	if a.Family != b.Family || a.CPU != b.CPU || a.Memory != b.Memory || a.NetworkMode != b.NetworkMode ||
		a.ExecutionRole != b.ExecutionRole || a.TaskRole != b.TaskRole || !slices.Equal(a.Compat, b.Compat) ||
		len(a.Containers) != len(b.Containers) {
		return false
	}
	for i, x := range a.Containers {
		y := b.Containers[i]
		if x.Name != y.Name || x.Image != y.Image || !slices.Equal(x.Command, y.Command) || x.CPU != y.CPU ||
			x.Memory != y.Memory || !slices.Equal(x.Env, y.Env) || !slices.Equal(x.Secrets, y.Secrets) || !slices.Equal(x.Ports, y.Ports) ||
			x.LogDriver != y.LogDriver || !maps.Equal(x.LogOptions, y.LogOptions) || !maps.Equal(x.Labels, y.Labels) {
			return false
		}
	}
	return true
}

// ensureTaskDefinition returns the ARN of a revision equal to what the
// process needs: one of the candidates (the revisions the service runs,
// so that a rollback reuses its revision), else the family's latest
// revision, else a newly registered one.
func (s *Scheduler) ensureTaskDefinition(ctx context.Context, app string, p providers.Process, release string, img providers.Image, env, refs map[string]string, bindings []providers.Binding, oneOff bool, candidates ...string) (string, error) {
	in := s.taskDefinitionInput(app, p, release, img, env, refs, bindings, oneOff)
	want := specOf(*in.Family, in.Cpu, in.Memory, in.NetworkMode, in.RequiresCompatibilities, in.ExecutionRoleArn, in.TaskRoleArn, in.ContainerDefinitions)
	for _, arn := range candidates {
		info, err := s.describe(ctx, arn)
		if err != nil {
			return "", err
		}
		if info.spec.equal(want) {
			return arn, nil
		}
	}
	out, err := s.api.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: in.Family})
	switch {
	case err == nil && out.TaskDefinition != nil:
		arn := aws.ToString(out.TaskDefinition.TaskDefinitionArn)
		if s.cache(arn, out.TaskDefinition).spec.equal(want) {
			return arn, nil
		}
	case err != nil && !missingTaskDefinition(err):
		return "", awserr.Wrap(fmt.Sprintf("describe task definition %q", *in.Family), err)
	}
	reg, err := s.api.RegisterTaskDefinition(ctx, in)
	if err != nil {
		return "", awserr.Wrap(fmt.Sprintf("register task definition %q", *in.Family), err)
	}
	arn := aws.ToString(reg.TaskDefinition.TaskDefinitionArn)
	s.cache(arn, reg.TaskDefinition)
	return arn, nil
}

// missingTaskDefinition reports ECS's answer for a family with no active
// revision: a ClientException "Unable to describe task definition".
func missingTaskDefinition(err error) bool {
	return awserr.Code(err) == "ClientException" && strings.Contains(err.Error(), "Unable to describe task definition")
}

func (s *Scheduler) cache(arn string, td *types.TaskDefinition) tdInfo {
	info := tdInfo{spec: specOf(aws.ToString(td.Family), td.Cpu, td.Memory, td.NetworkMode, td.RequiresCompatibilities, td.ExecutionRoleArn, td.TaskRoleArn, td.ContainerDefinitions)}
	if len(td.ContainerDefinitions) > 0 {
		labels := td.ContainerDefinitions[0].DockerLabels
		info.app, info.release, info.process = labels[labelApp], labels[labelRelease], labels[labelProcess]
		if info.process == "" {
			info.process = aws.ToString(td.ContainerDefinitions[0].Name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defs[arn] = info
	return info
}

// describe returns what a task definition revision runs, describing it
// once per scheduler.
func (s *Scheduler) describe(ctx context.Context, arn string) (tdInfo, error) {
	s.mu.Lock()
	info, ok := s.defs[arn]
	s.mu.Unlock()
	if ok {
		return info, nil
	}
	out, err := s.api.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(arn)})
	if err != nil {
		return tdInfo{}, awserr.Wrap(fmt.Sprintf("describe task definition %q", arn), err)
	}
	return s.cache(arn, out.TaskDefinition), nil
}

func (s *Scheduler) loadBalancers(p providers.Process, bindings []providers.Binding) []types.LoadBalancer {
	lbs := []types.LoadBalancer{}
	for _, b := range bindings {
		port := b.Port
		if port == 0 {
			port = p.Port
		}
		lb := types.LoadBalancer{ContainerName: aws.String(p.Name), ContainerPort: aws.Int32(int32(port))}
		if b.Kind == providers.BindingClassicELB {
			lb.LoadBalancerName = aws.String(b.Target)
		} else {
			lb.TargetGroupArn = aws.String(b.Target)
		}
		lbs = append(lbs, lb)
	}
	return lbs
}

func (s *Scheduler) network(classic bool) *types.NetworkConfiguration {
	if classic {
		return nil
	}
	ip := types.AssignPublicIpDisabled
	if s.opts.AssignPublicIP {
		ip = types.AssignPublicIpEnabled
	}
	return &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
		Subnets: s.opts.Subnets, SecurityGroups: s.opts.SecurityGroups, AssignPublicIp: ip,
	}}
}

func (s *Scheduler) launchType(classic bool) types.LaunchType {
	if classic {
		return types.LaunchTypeEc2
	}
	return types.LaunchTypeFargate
}

func (s *Scheduler) deploymentConfiguration() *types.DeploymentConfiguration {
	return &types.DeploymentConfiguration{
		DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true},
		MinimumHealthyPercent:    aws.Int32(int32(s.opts.MinimumHealthyPercent)),
		MaximumPercent:           aws.Int32(int32(s.opts.MaximumPercent)),
	}
}

// applyService creates the service name, or updates svc when it exists.
func (s *Scheduler) applyService(ctx context.Context, name string, p providers.Process, td string, bindings []providers.Binding, svc *types.Service, token string, tags []types.Tag) error {
	if svc != nil {
		name = aws.ToString(svc.ServiceName)
	}
	classic := classicBinding(bindings)
	count, err := desiredCount(p, s.opts.Limits)
	if err != nil {
		return err
	}
	var grace *int32
	if len(bindings) > 0 && p.Health.Grace > 0 {
		grace = aws.Int32(int32(p.Health.Grace / time.Second))
	}
	if svc == nil {
		_, err := s.api.CreateService(ctx, &ecs.CreateServiceInput{
			Cluster:                       aws.String(s.opts.Cluster),
			ServiceName:                   aws.String(name),
			TaskDefinition:                aws.String(td),
			DesiredCount:                  aws.Int32(count),
			LaunchType:                    s.launchType(classic),
			NetworkConfiguration:          s.network(classic),
			LoadBalancers:                 s.loadBalancers(p, bindings),
			HealthCheckGracePeriodSeconds: grace,
			DeploymentConfiguration:       s.deploymentConfiguration(),
			PropagateTags:                 types.PropagateTagsService,
			EnableECSManagedTags:          true,
			ClientToken:                   aws.String(hashed(s.opts.Cluster + "/" + name + "/" + token)[:32]),
			Tags:                          tags,
		})
		if err != nil {
			return awserr.Wrap(fmt.Sprintf("create service %q", name), err)
		}
		return nil
	}
	if svc.LaunchType != "" && svc.LaunchType != s.launchType(classic) {
		return providers.Invalidf("process %q: service %q runs with launch type %s; its bindings need %s (delete the app's process to change it)", p.Name, name, svc.LaunchType, s.launchType(classic))
	}
	// A new token re-deploys an unchanged task definition only when its
	// last deployment failed; otherwise counts and settings change in place.
	force := false
	if len(svc.Deployments) > 0 {
		primary := svc.Deployments[0]
		force = aws.ToString(primary.TaskDefinition) == td && primary.RolloutState == types.DeploymentRolloutStateFailed
	}
	_, err = s.api.UpdateService(ctx, &ecs.UpdateServiceInput{
		Cluster:                       aws.String(s.opts.Cluster),
		Service:                       aws.String(name),
		TaskDefinition:                aws.String(td),
		DesiredCount:                  aws.Int32(count),
		NetworkConfiguration:          s.network(classic),
		LoadBalancers:                 s.loadBalancers(p, bindings),
		HealthCheckGracePeriodSeconds: grace,
		DeploymentConfiguration:       s.deploymentConfiguration(),
		ForceNewDeployment:            force,
	})
	if err != nil {
		return awserr.Wrap(fmt.Sprintf("update service %q", name), err)
	}
	if _, err := s.api.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: svc.ServiceArn, Tags: tags}); err != nil {
		return awserr.Wrap(fmt.Sprintf("tag service %q", name), err)
	}
	return nil
}

func (s *Scheduler) deleteService(ctx context.Context, name string) error {
	_, err := s.api.DeleteService(ctx, &ecs.DeleteServiceInput{Cluster: aws.String(s.opts.Cluster), Service: aws.String(name), Force: aws.Bool(true)})
	if err != nil && !errors.Is(awserr.Wrap("", err), providers.ErrNotFound) {
		return awserr.Wrap(fmt.Sprintf("delete service %q", name), err)
	}
	return nil
}

// Delete stops the app's one-off tasks, removes its services,
// deregisters its task definitions and deletes its secret parameters
// (with Options.SSM). Deleting a missing app returns nil.
func (s *Scheduler) Delete(ctx context.Context, app string) error {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return err
	}
	apps, err := s.describeApps(ctx, []string{app})
	if err != nil {
		return err
	}
	if err := s.stopOneOffs(ctx, app); err != nil {
		return err
	}
	a := apps[app]
	if a == nil {
		// Secrets kept before the app's first Apply are deleted too.
		return s.deleteSecrets(ctx, app)
	}
	processes := map[string]bool{}
	for _, svc := range a.all() {
		if err := s.deleteService(ctx, aws.ToString(svc.ServiceName)); err != nil {
			return err
		}
		processes[tagOf(svc.Tags, tagProcess)] = true
	}
	for _, name := range slices.Sorted(maps.Keys(processes)) {
		for _, family := range []string{s.family(app, name), s.family(app, name) + "__run"} {
			if err := s.deregisterFamily(ctx, family); err != nil {
				return err
			}
		}
		for _, family := range []string{s.legacyFamily(app, name), s.legacyFamily(app, name) + "-run"} {
			if err := s.deregisterLegacy(ctx, family, app); err != nil {
				return err
			}
		}
	}
	// Last, once no service starts tasks that read them.
	return s.deleteSecrets(ctx, app)
}

// deregisterLegacy deregisters the revisions of a legacy family that are
// labeled with app: another rack's app may share the family name.
func (s *Scheduler) deregisterLegacy(ctx context.Context, family, app string) error {
	var arns []string
	var token *string
	for {
		out, err := s.api.ListTaskDefinitions(ctx, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String(family), Status: types.TaskDefinitionStatusActive, NextToken: token})
		if err != nil {
			return awserr.Wrap(fmt.Sprintf("list task definitions %q", family), err)
		}
		arns = append(arns, out.TaskDefinitionArns...)
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	for _, arn := range arns {
		info, err := s.describe(ctx, arn)
		if err != nil {
			return err
		}
		if info.app != app || info.spec.Family != family {
			continue
		}
		if _, err := s.api.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String(arn)}); err != nil {
			return awserr.Wrap(fmt.Sprintf("deregister task definition %q", arn), err)
		}
	}
	return nil
}

func (s *Scheduler) deregisterFamily(ctx context.Context, family string) error {
	// Deregistering shrinks the ACTIVE listing, so read its first page again
	// until it is empty.
	for {
		out, err := s.api.ListTaskDefinitions(ctx, &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String(family), Status: types.TaskDefinitionStatusActive})
		if err != nil {
			return awserr.Wrap(fmt.Sprintf("list task definitions %q", family), err)
		}
		if len(out.TaskDefinitionArns) == 0 {
			return nil
		}
		for _, arn := range out.TaskDefinitionArns {
			if _, err := s.api.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String(arn)}); err != nil {
				return awserr.Wrap(fmt.Sprintf("deregister task definition %q", arn), err)
			}
		}
	}
}
