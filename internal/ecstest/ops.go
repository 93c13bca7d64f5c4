package ecstest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

type cluster struct {
	c        types.Cluster
	services map[string]*service // ACTIVE services by name
	draining map[string]*service // DRAINING services by name: deleted, tasks still stopping
	tasks    []*task             // in creation order
	tokens   map[string][]string // RunTask client token -> task ARNs
	creates  map[string]string   // CreateService client token -> service name
}

type service struct {
	svc         types.Service
	deployments []*types.Deployment // primary first
	lastGood    string              // task definition of the last completed deployment
}

type task struct {
	t          types.Task
	service    string // service name, "" for one-off tasks
	deployment string // deployment ID for service tasks
	exit       *int32 // scripted exit code
	runSteps   int    // running steps before the scripted exit
	ran        int    // running steps so far
}

func (s *Server) cluster(name string) (*cluster, error) {
	if name == "" {
		name = "default"
	}
	c := s.clusters[lastSegment(name)]
	if c == nil {
		return nil, &apiError{"ClusterNotFoundException", "Cluster not found."}
	}
	return c, nil
}

func (s *Server) createCluster(body []byte) (any, error) {
	in, err := decode[ecs.CreateClusterInput](body)
	if err != nil {
		return nil, err
	}
	name := aws.ToString(in.ClusterName)
	if name == "" {
		name = "default"
	}
	c := s.clusters[name]
	if c == nil {
		c = &cluster{
			c:        types.Cluster{ClusterArn: aws.String(arn("cluster", name)), ClusterName: aws.String(name), Status: aws.String("ACTIVE")},
			services: map[string]*service{},
			draining: map[string]*service{},
			tokens:   map[string][]string{},
			creates:  map[string]string{},
		}
		s.clusters[name] = c
		s.tags[*c.c.ClusterArn] = in.Tags
	}
	return &ecs.CreateClusterOutput{Cluster: s.clusterView(c)}, nil
}

func (s *Server) clusterView(c *cluster) *types.Cluster {
	v := c.c
	v.ActiveServicesCount = int32(len(c.services))
	for _, t := range c.tasks {
		switch aws.ToString(t.t.LastStatus) {
		case "RUNNING":
			v.RunningTasksCount++
		case "PENDING":
			v.PendingTasksCount++
		}
	}
	return &v
}

func (s *Server) describeClusters(body []byte) (any, error) {
	in, err := decode[ecs.DescribeClustersInput](body)
	if err != nil {
		return nil, err
	}
	names := in.Clusters
	if len(names) == 0 {
		names = []string{"default"}
	}
	out := &ecs.DescribeClustersOutput{}
	for _, n := range names {
		if c := s.clusters[lastSegment(n)]; c != nil {
			out.Clusters = append(out.Clusters, *s.clusterView(c))
		} else {
			out.Failures = append(out.Failures, types.Failure{Arn: aws.String(n), Reason: aws.String("MISSING")})
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Task definitions

func (s *Server) registerTaskDefinition(body []byte) (any, error) {
	in, err := decode[ecs.RegisterTaskDefinitionInput](body)
	if err != nil {
		return nil, err
	}
	family := aws.ToString(in.Family)
	if family == "" || len(in.ContainerDefinitions) == 0 {
		return nil, clientErr("Family and container definitions are required.")
	}
	if slices.Contains(in.RequiresCompatibilities, types.CompatibilityFargate) {
		if in.NetworkMode != types.NetworkModeAwsvpc {
			return nil, clientErr("Fargate only supports network mode 'awsvpc'.")
		}
		if in.Cpu == nil || in.Memory == nil {
			return nil, clientErr("Fargate requires task definition to have cpu and memory values.")
		}
	}
	rev := int32(len(s.families[family]) + 1)
	td := &types.TaskDefinition{
		TaskDefinitionArn:       aws.String(arn("task-definition", family+":"+strconv.Itoa(int(rev)))),
		Family:                  in.Family,
		Revision:                rev,
		Status:                  types.TaskDefinitionStatusActive,
		ContainerDefinitions:    in.ContainerDefinitions,
		Cpu:                     in.Cpu,
		Memory:                  in.Memory,
		NetworkMode:             in.NetworkMode,
		RequiresCompatibilities: in.RequiresCompatibilities,
		Compatibilities:         []types.Compatibility{types.CompatibilityEc2, types.CompatibilityFargate},
		ExecutionRoleArn:        in.ExecutionRoleArn,
		TaskRoleArn:             in.TaskRoleArn,
		Volumes:                 in.Volumes,
		RegisteredAt:            s.nowp(),
		RuntimePlatform:         in.RuntimePlatform,
	}
	s.families[family] = append(s.families[family], td)
	s.tags[*td.TaskDefinitionArn] = in.Tags
	return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: td, Tags: in.Tags}, nil
}

// taskDefinition finds "family", "family:revision" or an ARN; a bare
// family names its latest ACTIVE revision.
func (s *Server) taskDefinition(ref string) *types.TaskDefinition {
	name := ref
	if strings.HasPrefix(ref, "arn:") {
		name = lastSegment(ref)
	}
	family, revs, hasRev := strings.Cut(name, ":")
	tds := s.families[family]
	if hasRev {
		r, err := strconv.Atoi(revs)
		if err != nil || r < 1 || r > len(tds) {
			return nil
		}
		return tds[r-1]
	}
	for i := len(tds) - 1; i >= 0; i-- {
		if tds[i].Status == types.TaskDefinitionStatusActive {
			return tds[i]
		}
	}
	return nil
}

func (s *Server) describeTaskDefinition(body []byte) (any, error) {
	in, err := decode[ecs.DescribeTaskDefinitionInput](body)
	if err != nil {
		return nil, err
	}
	td := s.taskDefinition(aws.ToString(in.TaskDefinition))
	if td == nil {
		return nil, clientErr("Unable to describe task definition.")
	}
	out := &ecs.DescribeTaskDefinitionOutput{TaskDefinition: td}
	if slices.Contains(in.Include, types.TaskDefinitionFieldTags) {
		out.Tags = s.tags[*td.TaskDefinitionArn]
	}
	return out, nil
}

func (s *Server) listTaskDefinitions(body []byte) (any, error) {
	in, err := decode[ecs.ListTaskDefinitionsInput](body)
	if err != nil {
		return nil, err
	}
	status := in.Status
	if status == "" {
		status = types.TaskDefinitionStatusActive
	}
	var arns []string
	families := make([]string, 0, len(s.families))
	for f := range s.families {
		if in.FamilyPrefix == nil || f == *in.FamilyPrefix {
			families = append(families, f)
		}
	}
	slices.Sort(families)
	for _, f := range families {
		for _, td := range s.families[f] {
			if td.Status == status {
				arns = append(arns, *td.TaskDefinitionArn)
			}
		}
	}
	if in.Sort == types.SortOrderDesc {
		slices.Reverse(arns)
	}
	page, next, err := paginate(arns, in.NextToken, in.MaxResults, 100, 100)
	if err != nil {
		return nil, err
	}
	return &ecs.ListTaskDefinitionsOutput{TaskDefinitionArns: page, NextToken: next}, nil
}

func (s *Server) deregisterTaskDefinition(body []byte) (any, error) {
	in, err := decode[ecs.DeregisterTaskDefinitionInput](body)
	if err != nil {
		return nil, err
	}
	ref := aws.ToString(in.TaskDefinition)
	if !strings.Contains(lastSegment(ref), ":") {
		return nil, clientErr("A revision must be specified.")
	}
	td := s.taskDefinition(ref)
	if td == nil {
		return nil, clientErr("The specified task definition does not exist.")
	}
	td.Status = types.TaskDefinitionStatusInactive
	td.DeregisteredAt = s.nowp()
	return &ecs.DeregisterTaskDefinitionOutput{TaskDefinition: td}, nil
}

// paginate pages items with an index token.
func paginate(items []string, token *string, max *int32, def, limit int) ([]string, *string, error) {
	n := def
	if max != nil {
		n = int(*max)
		if n < 1 || n > limit {
			return nil, nil, invalidErr("maxResults must be between 1 and %d.", limit)
		}
	}
	start := 0
	if token != nil && *token != "" {
		i, err := strconv.Atoi(*token)
		if err != nil || i < 0 || i > len(items) {
			return nil, nil, invalidErr("Invalid nextToken.")
		}
		start = i
	}
	end := min(start+n, len(items))
	var next *string
	if end < len(items) {
		next = aws.String(strconv.Itoa(end))
	}
	return items[start:end], next, nil
}

// ---------------------------------------------------------------------------
// Services

func (s *Server) createService(body []byte) (any, error) {
	in, err := decode[ecs.CreateServiceInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	name := aws.ToString(in.ServiceName)
	if name == "" {
		return nil, invalidErr("Service name is required.")
	}
	if tok := aws.ToString(in.ClientToken); tok != "" && c.creates[tok] == name && c.services[name] != nil {
		return &ecs.CreateServiceOutput{Service: s.serviceView(c.services[name], false)}, nil
	}
	if c.services[name] != nil {
		return nil, invalidErr("Creation of service was not idempotent.")
	}
	if c.draining[name] != nil {
		return nil, invalidErr("Unable to Start a service that is still Draining.")
	}
	td := s.taskDefinition(aws.ToString(in.TaskDefinition))
	if td == nil {
		return nil, clientErr("TaskDefinition not found.")
	}
	if err := checkPlacement(td, in.LaunchType, in.NetworkConfiguration, in.LoadBalancers); err != nil {
		return nil, err
	}
	svc := &service{svc: types.Service{
		ServiceArn:                    aws.String(arn("service", *c.c.ClusterName+"/"+name)),
		ServiceName:                   aws.String(name),
		ClusterArn:                    c.c.ClusterArn,
		Status:                        aws.String("ACTIVE"),
		TaskDefinition:                td.TaskDefinitionArn,
		DesiredCount:                  aws.ToInt32(in.DesiredCount),
		LaunchType:                    in.LaunchType,
		LoadBalancers:                 in.LoadBalancers,
		NetworkConfiguration:          in.NetworkConfiguration,
		DeploymentConfiguration:       in.DeploymentConfiguration,
		HealthCheckGracePeriodSeconds: in.HealthCheckGracePeriodSeconds,
		PropagateTags:                 in.PropagateTags,
		EnableECSManagedTags:          in.EnableECSManagedTags,
		SchedulingStrategy:            types.SchedulingStrategyReplica,
		CreatedAt:                     s.nowp(),
	}}
	if svc.svc.DeploymentConfiguration == nil {
		svc.svc.DeploymentConfiguration = &types.DeploymentConfiguration{MaximumPercent: aws.Int32(200), MinimumHealthyPercent: aws.Int32(100)}
	}
	s.newDeployment(svc, *td.TaskDefinitionArn)
	c.services[name] = svc
	s.tags[*svc.svc.ServiceArn] = in.Tags
	if tok := aws.ToString(in.ClientToken); tok != "" {
		c.creates[tok] = name
	}
	return &ecs.CreateServiceOutput{Service: s.serviceView(svc, false)}, nil
}

func checkPlacement(td *types.TaskDefinition, launch types.LaunchType, net *types.NetworkConfiguration, lbs []types.LoadBalancer) error {
	if launch == types.LaunchTypeFargate && td.NetworkMode != types.NetworkModeAwsvpc {
		return invalidErr("Task definition does not support launch_type FARGATE.")
	}
	if td.NetworkMode == types.NetworkModeAwsvpc && (net == nil || net.AwsvpcConfiguration == nil || len(net.AwsvpcConfiguration.Subnets) == 0) {
		return invalidErr("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
	}
	for _, lb := range lbs {
		if lb.LoadBalancerName != nil && td.NetworkMode == types.NetworkModeAwsvpc {
			return invalidErr("Classic Load Balancers are not supported with network mode 'awsvpc'.")
		}
		if (lb.LoadBalancerName == nil) == (lb.TargetGroupArn == nil) {
			return invalidErr("A load balancer needs exactly one of loadBalancerName and targetGroupArn.")
		}
		if lb.ContainerName == nil || lb.ContainerPort == nil {
			return invalidErr("A load balancer needs containerName and containerPort.")
		}
	}
	return nil
}

func (s *Server) newDeployment(svc *service, taskDef string) *types.Deployment {
	s.seq++
	d := &types.Deployment{
		Id:                   aws.String(fmt.Sprintf("ecs-svc/%019d", s.seq)),
		Status:               aws.String("PRIMARY"),
		TaskDefinition:       aws.String(taskDef),
		DesiredCount:         svc.svc.DesiredCount,
		LaunchType:           svc.svc.LaunchType,
		RolloutState:         types.DeploymentRolloutStateInProgress,
		RolloutStateReason:   aws.String("ECS deployment " + fmt.Sprintf("ecs-svc/%019d", s.seq) + " in progress."),
		NetworkConfiguration: svc.svc.NetworkConfiguration,
		CreatedAt:            s.nowp(),
		UpdatedAt:            s.nowp(),
	}
	for _, old := range svc.deployments {
		old.Status = aws.String("ACTIVE")
		if old.RolloutState == types.DeploymentRolloutStateInProgress {
			old.RolloutState = types.DeploymentRolloutStateFailed
			old.RolloutStateReason = aws.String("ECS deployment " + *old.Id + " replaced by " + *d.Id + ".")
		}
	}
	svc.deployments = append([]*types.Deployment{d}, svc.deployments...)
	svc.svc.TaskDefinition = aws.String(taskDef)
	return d
}

func (s *Server) event(svc *service, msg string) {
	s.seq++
	e := types.ServiceEvent{Id: aws.String(strconv.Itoa(s.seq)), CreatedAt: s.nowp(), Message: aws.String("(service " + *svc.svc.ServiceName + ") " + msg)}
	svc.svc.Events = append([]types.ServiceEvent{e}, svc.svc.Events...)
	if len(svc.svc.Events) > 100 {
		svc.svc.Events = svc.svc.Events[:100]
	}
}

func (s *Server) serviceView(svc *service, withTags bool) *types.Service {
	v := svc.svc
	v.Deployments = make([]types.Deployment, len(svc.deployments))
	for i, d := range svc.deployments {
		v.Deployments[i] = *d
	}
	v.Events = slices.Clone(svc.svc.Events)
	if withTags {
		v.Tags = slices.Clone(s.tags[*svc.svc.ServiceArn])
	}
	return &v
}

func (s *Server) updateService(body []byte) (any, error) {
	in, err := decode[ecs.UpdateServiceInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	svc := c.services[lastSegment(aws.ToString(in.Service))]
	if svc == nil && c.draining[lastSegment(aws.ToString(in.Service))] != nil {
		return nil, &apiError{"ServiceNotActiveException", "Service was not ACTIVE."}
	}
	if svc == nil {
		return nil, &apiError{"ServiceNotFoundException", "Service not found."}
	}
	td := s.taskDefinition(*svc.svc.TaskDefinition)
	if in.TaskDefinition != nil {
		if td = s.taskDefinition(*in.TaskDefinition); td == nil {
			return nil, clientErr("TaskDefinition not found.")
		}
	}
	net := svc.svc.NetworkConfiguration
	if in.NetworkConfiguration != nil {
		net = in.NetworkConfiguration
	}
	lbs := svc.svc.LoadBalancers
	if in.LoadBalancers != nil {
		lbs = in.LoadBalancers
	}
	if err := checkPlacement(td, svc.svc.LaunchType, net, lbs); err != nil {
		return nil, err
	}
	svc.svc.NetworkConfiguration = net
	svc.svc.LoadBalancers = lbs
	if in.DeploymentConfiguration != nil {
		svc.svc.DeploymentConfiguration = in.DeploymentConfiguration
	}
	if in.HealthCheckGracePeriodSeconds != nil {
		svc.svc.HealthCheckGracePeriodSeconds = in.HealthCheckGracePeriodSeconds
	}
	if in.DesiredCount != nil {
		svc.svc.DesiredCount = *in.DesiredCount
		svc.deployments[0].DesiredCount = *in.DesiredCount
	}
	if *td.TaskDefinitionArn != *svc.svc.TaskDefinition || in.ForceNewDeployment {
		s.newDeployment(svc, *td.TaskDefinitionArn)
	}
	return &ecs.UpdateServiceOutput{Service: s.serviceView(svc, false)}, nil
}

func (s *Server) describeServices(body []byte) (any, error) {
	in, err := decode[ecs.DescribeServicesInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	if len(in.Services) == 0 || len(in.Services) > 10 {
		return nil, invalidErr("services can have between 1 and 10 items, got %d.", len(in.Services))
	}
	out := &ecs.DescribeServicesOutput{}
	withTags := slices.Contains(in.Include, types.ServiceFieldTags)
	for _, name := range in.Services {
		if svc := c.services[lastSegment(name)]; svc != nil {
			out.Services = append(out.Services, *s.serviceView(svc, withTags))
		} else if svc := c.draining[lastSegment(name)]; svc != nil {
			out.Services = append(out.Services, *s.serviceView(svc, withTags))
		} else {
			out.Failures = append(out.Failures, types.Failure{Arn: aws.String(arn("service", *c.c.ClusterName+"/"+lastSegment(name))), Reason: aws.String("MISSING")})
		}
	}
	return out, nil
}

func (s *Server) deleteService(body []byte) (any, error) {
	in, err := decode[ecs.DeleteServiceInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	name := lastSegment(aws.ToString(in.Service))
	svc := c.services[name]
	if svc == nil && c.draining[name] != nil {
		return nil, &apiError{"ServiceNotActiveException", "Service was not ACTIVE."}
	}
	if svc == nil {
		return nil, &apiError{"ServiceNotFoundException", "Service not found."}
	}
	if svc.svc.DesiredCount > 0 && !aws.ToBool(in.Force) {
		return nil, invalidErr("The service cannot be stopped while it is scaled above 0.")
	}
	delete(c.services, name)
	if !aws.ToBool(in.Force) && slices.ContainsFunc(c.tasks, func(t *task) bool { return t.service == name && live(t) }) {
		// Scaled to zero but with tasks still stopping: the service drains.
		svc.svc.Status = aws.String("DRAINING")
		c.draining[name] = svc
		return &ecs.DeleteServiceOutput{Service: s.serviceView(svc, false)}, nil
	}
	for _, t := range c.tasks {
		if t.service == name {
			s.stop(t, "Scaling activity initiated by (service "+name+" deleted)", types.TaskStopCodeServiceSchedulerInitiated)
		}
	}
	v := s.serviceView(svc, false)
	v.Status = aws.String("INACTIVE")
	return &ecs.DeleteServiceOutput{Service: v}, nil
}

func (s *Server) listServices(body []byte) (any, error) {
	in, err := decode[ecs.ListServicesInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	var arns []string
	for _, svc := range c.services {
		arns = append(arns, *svc.svc.ServiceArn)
	}
	slices.Sort(arns)
	page, next, err := paginate(arns, in.NextToken, in.MaxResults, 10, 100)
	if err != nil {
		return nil, err
	}
	return &ecs.ListServicesOutput{ServiceArns: page, NextToken: next}, nil
}

// ---------------------------------------------------------------------------
// Tasks

func (s *Server) listTasks(body []byte) (any, error) {
	in, err := decode[ecs.ListTasksInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	desired := in.DesiredStatus
	if desired == "" {
		desired = types.DesiredStatusRunning
	}
	var arns []string
	for _, t := range c.tasks {
		switch {
		case aws.ToString(t.t.DesiredStatus) != string(desired):
		case in.ServiceName != nil && t.service != lastSegment(*in.ServiceName):
		case in.StartedBy != nil && aws.ToString(t.t.StartedBy) != *in.StartedBy:
		case in.Family != nil && !strings.HasPrefix(lastSegment(*t.t.TaskDefinitionArn), *in.Family+":"):
		default:
			arns = append(arns, *t.t.TaskArn)
		}
	}
	page, next, err := paginate(arns, in.NextToken, in.MaxResults, 100, 100)
	if err != nil {
		return nil, err
	}
	return &ecs.ListTasksOutput{TaskArns: page, NextToken: next}, nil
}

func (c *cluster) task(ref string) *task {
	id := lastSegment(ref)
	for _, t := range c.tasks {
		if lastSegment(*t.t.TaskArn) == id {
			return t
		}
	}
	return nil
}

func (s *Server) describeTasks(body []byte) (any, error) {
	in, err := decode[ecs.DescribeTasksInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	if len(in.Tasks) == 0 || len(in.Tasks) > 100 {
		return nil, invalidErr("tasks can have between 1 and 100 items, got %d.", len(in.Tasks))
	}
	out := &ecs.DescribeTasksOutput{}
	withTags := slices.Contains(in.Include, types.TaskFieldTags)
	for _, ref := range in.Tasks {
		t := c.task(ref)
		if t == nil {
			out.Failures = append(out.Failures, types.Failure{Arn: aws.String(ref), Reason: aws.String("MISSING")})
			continue
		}
		v := t.t
		v.Containers = slices.Clone(t.t.Containers)
		v.Tags = nil
		if withTags {
			v.Tags = slices.Clone(s.tags[*t.t.TaskArn])
		}
		out.Tasks = append(out.Tasks, v)
	}
	return out, nil
}

func (s *Server) runTask(body []byte) (any, error) {
	in, err := decode[ecs.RunTaskInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	if tok := aws.ToString(in.ClientToken); tok != "" {
		if len(tok) > 64 {
			return nil, invalidErr("clientToken is longer than 64 characters.")
		}
		if arns, ok := c.tokens[tok]; ok {
			out := &ecs.RunTaskOutput{}
			for _, a := range arns {
				out.Tasks = append(out.Tasks, c.task(a).t)
			}
			return out, nil
		}
	}
	td := s.taskDefinition(aws.ToString(in.TaskDefinition))
	if td == nil {
		return nil, clientErr("TaskDefinition not found.")
	}
	if err := checkPlacement(td, in.LaunchType, in.NetworkConfiguration, nil); err != nil {
		return nil, err
	}
	if len(aws.ToString(in.StartedBy)) > 36 {
		return nil, invalidErr("startedBy is longer than 36 characters.")
	}
	count := int(aws.ToInt32(in.Count))
	if count == 0 {
		count = 1
	}
	group := aws.ToString(in.Group)
	if group == "" {
		group = "family:" + *td.Family
	}
	out := &ecs.RunTaskOutput{}
	var arns []string
	for range count {
		t := s.launch(c, td, in.LaunchType, group, in.StartedBy, in.Overrides, "", "")
		s.tags[*t.t.TaskArn] = in.Tags
		arns = append(arns, *t.t.TaskArn)
		out.Tasks = append(out.Tasks, t.t)
	}
	if tok := aws.ToString(in.ClientToken); tok != "" {
		c.tokens[tok] = arns
	}
	return out, nil
}

func (s *Server) stopTask(body []byte) (any, error) {
	in, err := decode[ecs.StopTaskInput](body)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(aws.ToString(in.Cluster))
	if err != nil {
		return nil, err
	}
	t := c.task(aws.ToString(in.Task))
	if t == nil {
		return nil, invalidErr("The referenced task was not found.")
	}
	reason := aws.ToString(in.Reason)
	if reason == "" {
		reason = "Task stopped by user"
	}
	if aws.ToString(t.t.LastStatus) != "STOPPED" {
		s.stop(t, reason, types.TaskStopCodeUserInitiated)
	}
	return &ecs.StopTaskOutput{Task: &t.t}, nil
}

// ---------------------------------------------------------------------------
// Tags

func (s *Server) tagResource(body []byte) (any, error) {
	in, err := decode[ecs.TagResourceInput](body)
	if err != nil {
		return nil, err
	}
	a := aws.ToString(in.ResourceArn)
	if !s.exists(a) {
		return nil, &apiError{"ResourceNotFoundException", "The specified resource could not be found."}
	}
	tags := s.tags[a]
	for _, t := range in.Tags {
		tags = slices.DeleteFunc(tags, func(o types.Tag) bool { return aws.ToString(o.Key) == aws.ToString(t.Key) })
		tags = append(tags, t)
	}
	s.tags[a] = tags
	return &ecs.TagResourceOutput{}, nil
}

func (s *Server) untagResource(body []byte) (any, error) {
	in, err := decode[ecs.UntagResourceInput](body)
	if err != nil {
		return nil, err
	}
	a := aws.ToString(in.ResourceArn)
	if !s.exists(a) {
		return nil, &apiError{"ResourceNotFoundException", "The specified resource could not be found."}
	}
	s.tags[a] = slices.DeleteFunc(s.tags[a], func(o types.Tag) bool { return slices.Contains(in.TagKeys, aws.ToString(o.Key)) })
	return &ecs.UntagResourceOutput{}, nil
}

func (s *Server) listTagsForResource(body []byte) (any, error) {
	in, err := decode[ecs.ListTagsForResourceInput](body)
	if err != nil {
		return nil, err
	}
	a := aws.ToString(in.ResourceArn)
	if !s.exists(a) {
		return nil, &apiError{"ResourceNotFoundException", "The specified resource could not be found."}
	}
	return &ecs.ListTagsForResourceOutput{Tags: s.tags[a]}, nil
}

// exists reports whether an ARN names a live cluster, service, task or
// task definition.
func (s *Server) exists(a string) bool {
	for _, c := range s.clusters {
		if *c.c.ClusterArn == a || c.task(a) != nil && *c.task(a).t.TaskArn == a {
			return true
		}
		for _, svc := range c.services {
			if *svc.svc.ServiceArn == a {
				return true
			}
		}
	}
	return strings.Contains(a, ":task-definition/") && s.taskDefinition(a) != nil
}
