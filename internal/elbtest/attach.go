package elbtest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// Attacher stands in, in tests, for what ECS does for a service with load
// balancers: Sync registers the running tasks of every service of a
// cluster with the load balancers the service names, and deregisters the
// targets that no longer run. Tasks bound to a target group are registered
// by IP address and container port (awsvpc tasks); tasks bound to a
// classic load balancer are registered as the instance InstanceID(task).
//
// A test calls Sync before reading target health, for example from a
// Balancer wrapper whose Health syncs first, so that a deploy through an
// ECS test endpoint finds its tasks behind the load balancer.
type Attacher struct {
	// ECS reads the cluster's services and tasks.
	ECS *ecs.Client
	// Cluster is the cluster's name.
	Cluster string
	// ELB registers instances with classic load balancers; nil when the
	// test has none.
	ELB *elb.Client
	// ELBv2 registers targets with target groups; nil when the test has none.
	ELBv2 *elbv2.Client
}

// InstanceID is the instance a task is registered as with a classic load
// balancer: "i-" and the last 17 characters of the task ID.
func InstanceID(taskARN string) string {
	id := taskARN[strings.LastIndex(taskARN, "/")+1:]
	return "i-" + id[max(0, len(id)-17):]
}

// Sync brings the registrations of every load balancer named by the
// cluster's services to the services' running tasks.
func (a *Attacher) Sync(ctx context.Context) error {
	var arns []string
	p := ecs.NewListServicesPaginator(a.ECS, &ecs.ListServicesInput{Cluster: aws.String(a.Cluster)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list services: %w", err)
		}
		arns = append(arns, out.ServiceArns...)
	}
	for chunk := range slices.Chunk(arns, 10) {
		out, err := a.ECS.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(a.Cluster), Services: chunk})
		if err != nil {
			return fmt.Errorf("describe services: %w", err)
		}
		for _, svc := range out.Services {
			if len(svc.LoadBalancers) == 0 {
				continue
			}
			tasks, err := a.running(ctx, aws.ToString(svc.ServiceName))
			if err != nil {
				return err
			}
			for _, lb := range svc.LoadBalancers {
				switch {
				case lb.TargetGroupArn != nil && a.ELBv2 != nil:
					err = a.syncTargets(ctx, *lb.TargetGroupArn, tasks, aws.ToInt32(lb.ContainerPort))
				case lb.LoadBalancerName != nil && a.ELB != nil:
					err = a.syncInstances(ctx, *lb.LoadBalancerName, tasks)
				}
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// running returns the service's tasks whose last status is RUNNING.
func (a *Attacher) running(ctx context.Context, service string) ([]ecstypes.Task, error) {
	var arns []string
	p := ecs.NewListTasksPaginator(a.ECS, &ecs.ListTasksInput{Cluster: aws.String(a.Cluster), ServiceName: aws.String(service)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list tasks of %s: %w", service, err)
		}
		arns = append(arns, out.TaskArns...)
	}
	var tasks []ecstypes.Task
	for chunk := range slices.Chunk(arns, 100) {
		out, err := a.ECS.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(a.Cluster), Tasks: chunk})
		if err != nil {
			return nil, fmt.Errorf("describe tasks of %s: %w", service, err)
		}
		for _, t := range out.Tasks {
			if aws.ToString(t.LastStatus) == "RUNNING" {
				tasks = append(tasks, t)
			}
		}
	}
	return tasks, nil
}

// taskIP returns the private IP address of an awsvpc task.
func taskIP(t ecstypes.Task) string {
	for _, at := range t.Attachments {
		for _, d := range at.Details {
			if aws.ToString(d.Name) == "privateIPv4Address" {
				return aws.ToString(d.Value)
			}
		}
	}
	for _, c := range t.Containers {
		for _, ni := range c.NetworkInterfaces {
			if ip := aws.ToString(ni.PrivateIpv4Address); ip != "" {
				return ip
			}
		}
	}
	return ""
}

func (a *Attacher) syncTargets(ctx context.Context, tg string, tasks []ecstypes.Task, port int32) error {
	want := map[string]bool{}
	for _, t := range tasks {
		if ip := taskIP(t); ip != "" {
			want[ip+":"+strconv.Itoa(int(port))] = true
		}
	}
	out, err := a.ELBv2.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
	if err != nil {
		return fmt.Errorf("describe target health: %w", err)
	}
	var stale []elbv2types.TargetDescription
	for _, d := range out.TargetHealthDescriptions {
		key := aws.ToString(d.Target.Id) + ":" + strconv.Itoa(int(aws.ToInt32(d.Target.Port)))
		if want[key] {
			delete(want, key)
		} else {
			stale = append(stale, *d.Target)
		}
	}
	var add []elbv2types.TargetDescription
	for key := range want {
		ip, p, _ := strings.Cut(key, ":")
		n, _ := strconv.Atoi(p)
		add = append(add, elbv2types.TargetDescription{Id: aws.String(ip), Port: aws.Int32(int32(n))})
	}
	if len(add) > 0 {
		if _, err := a.ELBv2.RegisterTargets(ctx, &elbv2.RegisterTargetsInput{TargetGroupArn: aws.String(tg), Targets: add}); err != nil {
			return fmt.Errorf("register targets: %w", err)
		}
	}
	if len(stale) > 0 {
		if _, err := a.ELBv2.DeregisterTargets(ctx, &elbv2.DeregisterTargetsInput{TargetGroupArn: aws.String(tg), Targets: stale}); err != nil {
			return fmt.Errorf("deregister targets: %w", err)
		}
	}
	return nil
}

func (a *Attacher) syncInstances(ctx context.Context, name string, tasks []ecstypes.Task) error {
	want := map[string]bool{}
	for _, t := range tasks {
		want[InstanceID(aws.ToString(t.TaskArn))] = true
	}
	out, err := a.ELB.DescribeInstanceHealth(ctx, &elb.DescribeInstanceHealthInput{LoadBalancerName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("describe instance health: %w", err)
	}
	var stale []elbtypes.Instance
	for _, s := range out.InstanceStates {
		id := aws.ToString(s.InstanceId)
		if want[id] {
			delete(want, id)
		} else {
			stale = append(stale, elbtypes.Instance{InstanceId: aws.String(id)})
		}
	}
	var add []elbtypes.Instance
	for id := range want {
		add = append(add, elbtypes.Instance{InstanceId: aws.String(id)})
	}
	if len(add) > 0 {
		if _, err := a.ELB.RegisterInstancesWithLoadBalancer(ctx, &elb.RegisterInstancesWithLoadBalancerInput{LoadBalancerName: aws.String(name), Instances: add}); err != nil {
			return fmt.Errorf("register instances: %w", err)
		}
	}
	if len(stale) > 0 {
		if _, err := a.ELB.DeregisterInstancesFromLoadBalancer(ctx, &elb.DeregisterInstancesFromLoadBalancerInput{LoadBalancerName: aws.String(name), Instances: stale}); err != nil {
			return fmt.Errorf("deregister instances: %w", err)
		}
	}
	return nil
}
