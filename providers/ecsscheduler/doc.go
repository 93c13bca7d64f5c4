// Package ecsscheduler is a providers.Scheduler on Amazon ECS.
//
// Each process type of an app is one ECS service named
// providers.ResourceName(app, process, "") in the rack's cluster, running
// revisions of one task-definition family named "<cluster>-<app>-<process>"
// (one-off tasks use the family "<cluster>-<app>-<process>-run"). Services
// carry tags (convox:app, convox:process, convox:release, convox:token, ...)
// from which Status derives the app's rollouts, so the scheduler keeps no
// state of its own: any number of deployers can share a cluster.
//
//	sch := ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{
//		Cluster:          "production",
//		Subnets:          []string{"subnet-0abc"},
//		SecurityGroups:   []string{"sg-0abc"},
//		ExecutionRoleARN: "arn:aws:iam::123456789012:role/ecsTaskExecution",
//	})
//	rollout, err := sch.Apply(ctx, desired)
//
// # Apply
//
// Apply registers a task definition only when the one it would register
// differs from the family's latest revision, so re-applying an unchanged
// release registers nothing. It creates or updates the services (desired
// count, deployment configuration with the deployment circuit breaker and
// rollback enabled, load balancers) and deletes the services of process
// types no longer listed. It is idempotent by Desired.Token: when every
// service already carries the token, Apply changes nothing and returns the
// rollout. A new token re-applies; it starts a new ECS deployment only where
// the task definition changed or the last deployment of it failed.
// Task definitions are never deregistered, except by Delete, so every
// retained release can be rolled back to.
//
// Applies of one app through one Scheduler are serialized, so concurrent
// Applies of a token start one rollout; across processes the root's deploy
// lease keeps deployers apart. AppStatus.Rollouts lists the current
// rollout and the one it replaced (as it stood then; one replaced while in
// progress is reported canceled).
//
// Tasks run on Fargate with awsvpc networking (Options.Subnets and
// SecurityGroups) by default. A process bound to a classic load balancer
// runs with the EC2 launch type and bridge networking, with the host port
// equal to the container port, because classic load balancers support
// neither awsvpc nor dynamic ports.
//
// # Logs
//
// Containers log with the awslogs driver to the group
// Options.LogGroup(app), by default "/convox/<app>" — the group the
// rack's CloudWatch Logs provider reads — with the stream prefix set to the
// process name, so a task's stream is "<process>/<process>/<task-id>"
// (ECS names streams prefix/container/task-id and the container is named
// after the process). The driver creates the group when missing.
//
// # Bindings
//
// AcceptsBinding accepts providers.BindingTargetGroup (an ELBv2 target
// group ARN; up to five per process, for weighted target sets) and
// providers.BindingClassicELB (a classic load balancer name; one per
// process, not mixed with target groups). Any other kind makes Apply
// return providers.ErrInvalid before any change.
//
// # Status
//
// Status and StatusMany list the cluster's services (ListServices, 100 per
// page), describe the app's services ten at a time (DescribeServices with
// their tags: ceil(n/10) calls for n services, whatever the number of
// apps), and list and describe the cluster's running and recently stopped
// tasks (ListTasks twice, DescribeTasks per 100 tasks) for stopped reasons
// and exit codes. Task definitions are described once per revision and
// cached, revisions being immutable. At most Options.StoppedTasks stopped
// tasks are reported per app, most recent first.
//
// # Optional capabilities
//
// Scheduler implements providers.BatchStatus (StatusMany),
// providers.Canceler (CancelRollout: services go back to the task
// definition of their last completed deployment), providers.TaskRunner
// (RunTask with the spec's token as the ECS client token, so retries start
// one task; the exit code comes from the stopped task's container) and
// providers.BindingAcceptor. It does not implement providers.Stager.
//
// # Errors
//
// ECS errors are mapped by internal/awserr and wrap both the sentinel and
// the SDK error: ClusterNotFoundException, ServiceNotFoundException and
// MISSING failures are providers.ErrNotFound; ClientException,
// InvalidParameterException and validation errors are providers.ErrInvalid;
// AccessDeniedException is providers.ErrPermission; throttling is
// providers.ErrThrottled; ServerException and 5xx are
// providers.ErrUnavailable. A canceled context stays a context error.
// Environment values never appear in errors; note that they are stored in
// the task definition, readable by anyone allowed ecs:DescribeTaskDefinition.
//
// # Permissions
//
// The caller needs these IAM actions:
//
//	ecs:CreateCluster               (first Apply; the cluster may exist)
//	ecs:RegisterTaskDefinition
//	ecs:DescribeTaskDefinition
//	ecs:ListTaskDefinitions         (Delete)
//	ecs:DeregisterTaskDefinition    (Delete)
//	ecs:CreateService
//	ecs:UpdateService
//	ecs:DeleteService
//	ecs:DescribeServices
//	ecs:ListServices
//	ecs:TagResource
//	ecs:ListTasks
//	ecs:DescribeTasks
//	ecs:RunTask                     (TaskRunner)
//	ecs:StopTask                    (TaskRunner, Delete)
//	iam:PassRole                    (on ExecutionRoleARN and TaskRoleARN)
//
// The task execution role needs ecr:GetAuthorizationToken,
// ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, logs:CreateLogGroup,
// logs:CreateLogStream and logs:PutLogEvents.
package ecsscheduler
