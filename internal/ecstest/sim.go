package ecstest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// launch creates a PENDING task of td.
func (s *Server) launch(c *cluster, td *types.TaskDefinition, launch types.LaunchType, group string, startedBy *string, ov *types.TaskOverride, svcName, deployment string) *task {
	s.seq++
	id := fmt.Sprintf("%032x", s.seq)
	t := &task{service: svcName, deployment: deployment}
	t.t = types.Task{
		TaskArn:           aws.String(arn("task", *c.c.ClusterName+"/"+id)),
		ClusterArn:        c.c.ClusterArn,
		TaskDefinitionArn: td.TaskDefinitionArn,
		Group:             aws.String(group),
		StartedBy:         startedBy,
		LaunchType:        launch,
		LastStatus:        aws.String("PENDING"),
		DesiredStatus:     aws.String("RUNNING"),
		Cpu:               td.Cpu,
		Memory:            td.Memory,
		Overrides:         ov,
		CreatedAt:         s.nowp(),
		Version:           1,
	}
	ip := fmt.Sprintf("10.0.%d.%d", (s.seq/250)%250, s.seq%250+1)
	for _, cd := range td.ContainerDefinitions {
		var bindings []types.NetworkBinding
		for _, pm := range cd.PortMappings {
			bindings = append(bindings, types.NetworkBinding{ContainerPort: pm.ContainerPort, HostPort: pm.ContainerPort, BindIP: aws.String("0.0.0.0"), Protocol: types.TransportProtocolTcp})
		}
		t.t.Containers = append(t.t.Containers, types.Container{
			Name:              cd.Name,
			Image:             cd.Image,
			TaskArn:           t.t.TaskArn,
			LastStatus:        aws.String("PENDING"),
			NetworkBindings:   bindings,
			NetworkInterfaces: []types.NetworkInterface{{PrivateIpv4Address: aws.String(ip)}},
		})
		env := map[string]string{}
		for _, kv := range cd.Environment {
			env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		}
		if ov != nil {
			for _, co := range ov.ContainerOverrides {
				if aws.ToString(co.Name) == aws.ToString(cd.Name) {
					for _, kv := range co.Environment {
						env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
					}
				}
			}
		}
		if code, ok := env["ECSTEST_EXIT_CODE"]; ok {
			if n, err := strconv.Atoi(code); err == nil {
				t.exit = aws.Int32(int32(n))
			}
		}
		for ref, code := range s.crashes {
			if strings.Contains(aws.ToString(cd.Image), ref) {
				t.exit = aws.Int32(code)
			}
		}
		t.runSteps = 1
		if n, err := strconv.Atoi(env["ECSTEST_RUN_STEPS"]); err == nil && n > 0 {
			t.runSteps = n
		}
	}
	if t.exit == nil && svcName == "" {
		t.exit = aws.Int32(0)
	}
	if td.NetworkMode == types.NetworkModeAwsvpc {
		t.t.Attachments = []types.Attachment{{Type: aws.String("ElasticNetworkInterface"), Status: aws.String("ATTACHED"),
			Details: []types.KeyValuePair{{Name: aws.String("privateIPv4Address"), Value: aws.String(ip)}}}}
	}
	c.tasks = append(c.tasks, t)
	return t
}

// stop stops a task now.
func (s *Server) stop(t *task, reason string, code types.TaskStopCode) {
	wasRunning := aws.ToString(t.t.LastStatus) == "RUNNING" || aws.ToString(t.t.LastStatus) == "DEACTIVATING"
	t.t.DesiredStatus = aws.String("STOPPED")
	t.t.LastStatus = aws.String("STOPPED")
	t.t.StoppedReason = aws.String(reason)
	t.t.StopCode = code
	t.t.StoppingAt = s.nowp()
	t.t.StoppedAt = s.nowp()
	t.t.Version++
	for i := range t.t.Containers {
		t.t.Containers[i].LastStatus = aws.String("STOPPED")
		if wasRunning {
			t.t.Containers[i].ExitCode = aws.Int32(143)
		}
	}
}

func live(t *task) bool { return aws.ToString(t.t.LastStatus) != "STOPPED" }

// step advances every cluster by one step and reports whether anything
// changed.
func (s *Server) step() bool {
	changed := false
	s.steps++
	names := make([]string, 0, len(s.clusters))
	for n := range s.clusters {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := s.clusters[n]
		// Tasks move on.
		for _, t := range c.tasks {
			switch aws.ToString(t.t.LastStatus) {
			case "PENDING":
				t.t.LastStatus = aws.String("RUNNING")
				t.t.StartedAt = s.nowp()
				t.t.Version++
				for i := range t.t.Containers {
					t.t.Containers[i].LastStatus = aws.String("RUNNING")
				}
				changed = true
			case "RUNNING":
				t.ran++
				if t.ran <= StableSteps || t.exit != nil {
					changed = true // becoming steady, or counting down to its exit
				}
				if t.exit == nil || t.ran < t.runSteps {
					continue
				}
				s.stop(t, "Essential container in task exited", types.TaskStopCodeEssentialContainerExited)
				for i := range t.t.Containers {
					t.t.Containers[i].ExitCode = aws.Int32(*t.exit)
					t.t.Containers[i].Reason = nil
				}
				if *t.exit != 0 && t.service != "" {
					if svc := c.services[t.service]; svc != nil {
						for _, d := range svc.deployments {
							if *d.Id == t.deployment && d.RolloutState == types.DeploymentRolloutStateInProgress {
								d.FailedTasks++
							}
						}
					}
				}
				changed = true
			}
		}
		svcNames := make([]string, 0, len(c.services))
		for n := range c.services {
			svcNames = append(svcNames, n)
		}
		slices.Sort(svcNames)
		for _, n := range svcNames {
			if s.stepService(c, c.services[n]) {
				changed = true
			}
		}
		if s.stepDraining(c) {
			changed = true
		}
		// Forget stopped tasks beyond the newest 200.
		stopped := 0
		for i := len(c.tasks) - 1; i >= 0; i-- {
			if !live(c.tasks[i]) {
				stopped++
				if stopped > 200 {
					c.tasks = slices.Delete(c.tasks, i, i+1)
				}
			}
		}
	}
	return changed
}

// StableSteps is how many steps a service task must run before it counts
// towards completing its deployment; a task scripted to exit sooner (the
// default of ECSTEST_RUN_STEPS is 1) never does.
const StableSteps = 2

func threshold(desired int32) int32 {
	return min(200, max(3, (desired+1)/2))
}

func (s *Server) stepService(c *cluster, svc *service) bool {
	changed := false
	name := *svc.svc.ServiceName
	// tasksOf counts a deployment's live tasks; steady ones have been
	// running for StableSteps steps.
	tasksOf := func(d *types.Deployment) (liveTasks []*task, running, pending, steady int32) {
		for _, t := range c.tasks {
			if t.service == name && t.deployment == *d.Id && live(t) {
				liveTasks = append(liveTasks, t)
				if aws.ToString(t.t.LastStatus) == "RUNNING" {
					running++
					if t.ran >= StableSteps {
						steady++
					}
				} else {
					pending++
				}
			}
		}
		return
	}
	primary := svc.deployments[0]
	cb := svc.svc.DeploymentConfiguration != nil && svc.svc.DeploymentConfiguration.DeploymentCircuitBreaker != nil && svc.svc.DeploymentConfiguration.DeploymentCircuitBreaker.Enable
	if primary.RolloutState == types.DeploymentRolloutStateInProgress && cb && primary.FailedTasks >= threshold(primary.DesiredCount) {
		primary.RolloutState = types.DeploymentRolloutStateFailed
		primary.RolloutStateReason = aws.String("ECS deployment circuit breaker: tasks failed to start.")
		primary.UpdatedAt = s.nowp()
		s.event(svc, "deployment "+*primary.Id+" deployment failed: tasks failed to start.")
		if svc.svc.DeploymentConfiguration.DeploymentCircuitBreaker.Rollback && svc.lastGood != "" && svc.lastGood != *primary.TaskDefinition {
			failed := primary
			primary = s.newDeployment(svc, svc.lastGood)
			// newDeployment marked the failed one as replaced; keep the breaker's reason.
			failed.RolloutState = types.DeploymentRolloutStateFailed
			failed.RolloutStateReason = aws.String("ECS deployment circuit breaker: tasks failed to start.")
			s.event(svc, "rolling back to deployment "+*primary.Id+".")
		}
		changed = true
	}
	// The primary deployment launches or stops tasks to reach its count.
	if primary.RolloutState != types.DeploymentRolloutStateFailed {
		liveTasks, _, _, _ := tasksOf(primary)
		td := s.taskDefinition(*primary.TaskDefinition)
		for n := int32(len(liveTasks)); n < primary.DesiredCount; n++ {
			t := s.launch(c, td, svc.svc.LaunchType, "service:"+name, primary.Id, nil, name, *primary.Id)
			if svc.svc.PropagateTags == types.PropagateTagsService {
				s.tags[*t.t.TaskArn] = slices.Clone(s.tags[*svc.svc.ServiceArn])
			}
			changed = true
		}
		for i := len(liveTasks) - 1; i >= int(primary.DesiredCount); i-- {
			s.stop(liveTasks[i], "Scaling activity initiated by (deployment "+*primary.Id+")", types.TaskStopCodeServiceSchedulerInitiated)
			changed = true
		}
	}
	// Older deployments drain once the primary's tasks are steady.
	_, _, _, steady := tasksOf(primary)
	if steady >= primary.DesiredCount {
		for _, d := range svc.deployments[1:] {
			lt, _, _, _ := tasksOf(d)
			for _, t := range lt {
				s.stop(t, "Scaling activity initiated by (deployment "+*primary.Id+")", types.TaskStopCodeServiceSchedulerInitiated)
				changed = true
			}
		}
	}
	kept := svc.deployments[:1]
	for _, d := range svc.deployments[1:] {
		if lt, _, _, _ := tasksOf(d); len(lt) > 0 {
			kept = append(kept, d)
		} else {
			changed = true
		}
	}
	svc.deployments = kept
	// Completion.
	_, running, pending, steady := tasksOf(primary)
	if primary.RolloutState == types.DeploymentRolloutStateInProgress && steady == primary.DesiredCount && running == steady && pending == 0 && len(svc.deployments) == 1 {
		primary.RolloutState = types.DeploymentRolloutStateCompleted
		primary.RolloutStateReason = aws.String("ECS deployment " + *primary.Id + " completed.")
		primary.UpdatedAt = s.nowp()
		svc.lastGood = *primary.TaskDefinition
		s.event(svc, "deployment "+*primary.Id+" deployment completed.")
		s.event(svc, "has reached a steady state.")
		changed = true
	}
	// Counts.
	svc.svc.RunningCount, svc.svc.PendingCount = 0, 0
	for _, d := range svc.deployments {
		_, r, p, _ := tasksOf(d)
		d.RunningCount, d.PendingCount = r, p
		svc.svc.RunningCount += r
		svc.svc.PendingCount += p
	}
	return changed
}

// stepDraining moves the tasks of deleted services towards STOPPED, one
// status per step as their load balancer targets drain: RUNNING tasks
// become DEACTIVATING, then STOPPED; PENDING ones stop at once. A DRAINING
// service whose tasks all stopped becomes INACTIVE and is forgotten.
func (s *Server) stepDraining(c *cluster) bool {
	changed := false
	names := make([]string, 0, len(c.draining))
	for n := range c.draining {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		svc := c.draining[n]
		svc.svc.RunningCount, svc.svc.PendingCount = 0, 0
		for _, t := range c.tasks {
			if t.service != n || !live(t) {
				continue
			}
			reason := "Scaling activity initiated by (service " + n + " deleted)"
			switch aws.ToString(t.t.LastStatus) {
			case "RUNNING":
				t.t.LastStatus = aws.String("DEACTIVATING")
				t.t.DesiredStatus = aws.String("STOPPED")
				t.t.StoppedReason = aws.String(reason)
				t.t.StopCode = types.TaskStopCodeServiceSchedulerInitiated
				t.t.StoppingAt = s.nowp()
				t.t.Version++
				svc.svc.RunningCount++
			default:
				s.stop(t, reason, types.TaskStopCodeServiceSchedulerInitiated)
			}
			changed = true
		}
		for _, d := range svc.deployments {
			d.RunningCount, d.PendingCount = 0, 0
		}
		if !slices.ContainsFunc(c.tasks, func(t *task) bool { return t.service == n && live(t) }) {
			svc.svc.Status = aws.String("INACTIVE")
			delete(c.draining, n)
			changed = true
		}
	}
	return changed
}
