// Package ecsscheduler is a providers.Scheduler on Amazon ECS.
//
// Each process type of an app is one serving ECS service in the rack's
// cluster, first named "<app>_<process>" (see Names), running
// revisions of one task-definition family named "<cluster>_<app>_<process>"
// (one-off tasks use the family "<cluster>_<app>_<process>__run"; see Names).
// While a
// blue/green or canary deploy runs, a second, staged service per process
// runs beside it (see Stage). Services carry tags (convox:app,
// convox:process, convox:release, convox:token, convox:role, ...) from
// which Status derives the app's rollouts and which service serves, so the
// scheduler keeps no state of its own: any number of deployers can share a
// cluster.
//
//	sch := ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{
//		Cluster:          "production",
//		Subnets:          []string{"subnet-0abc"},
//		SecurityGroups:   []string{"sg-0abc"},
//		ExecutionRoleARN: "arn:aws:iam::123456789012:role/ecsTaskExecution",
//	})
//	rollout, err := sch.Apply(ctx, desired)
//
// # Bounds
//
// Apply, Stage and RunTask first check their input with
// providers.Desired.Validate and providers.RunSpec.Validate against
// Scheduler.Limits, and refuse what is out of range with ErrInvalid before
// any ECS call: counts up to 5,000 per process (the ECS tasks-per-service
// quota; Options.Limits raises or lowers it, never beyond what the int32
// desired count holds), and an environment of at most 32 KiB, half of the
// 64 KiB a task definition may hold.
//
// # Secrets
//
// With Options.SSM, secrets are SSM Parameter Store SecureStrings and the
// task definition names them in its container's secrets (valueFrom): ECS
// reads them with the task execution role when a task starts, and no
// secret value rests in ECS. The Scheduler is a providers.SecretKeeper:
// KeepSecret stores each value, once, as a new parameter
// "<ParameterPrefix>/<app>/<NAME>/<16 random hex digits>"
// (ParameterPrefix is "/convox/<Cluster>" by default) and returns its
// name, the reference the root stores instead of the value and hands back
// in Desired.SecretRefs. A secret still given by value in Desired.Env is
// stored by Apply, Stage or RunTask under
// "<ParameterPrefix>/<app>/<NAME>/r<hash of the release>" (overwritten
// with the same value when the release is applied again). References
// outside the app's path are refused with ErrInvalid. Delete deletes every
// parameter under "<ParameterPrefix>/<app>/". Values are limited to the
// 4 KB of a standard-tier parameter (MaxSecretValue) and encrypted with
// the AWS managed key aws/ssm.
//
// Parameter Store rather than Secrets Manager: its hierarchical names let
// one IAM resource ("parameter/convox/<cluster>/*") cover exactly the
// rack's secrets and one path listing find an app's secrets to delete;
// standard parameters cost nothing while a Secrets Manager secret is
// billed monthly; a deleted parameter is gone at once, while Secrets
// Manager keeps a deleted secret's name for a recovery window; and the
// rotation and cross-account sharing Secrets Manager adds are not used.
// The deployer may write and delete parameters but not read them
// (DescribeParameters returns names only).
//
// ExecutionRolePolicy returns the execution role's policy: the actions
// below on every resource and ssm:GetParameters on the rack's parameters
// only. Without Options.SSM, secret values are plain environment entries
// of the task definition, readable by anyone allowed
// ecs:DescribeTaskDefinition.
//
// # Names
//
// The cluster is the rack's namespace on ECS. Service names
// ("<app>_<process>", at most 33 characters; staged and paired ones at
// most 43, of the 255 ECS allows) are unique per cluster, so racks in
// their own clusters never share one; app and process names hold no
// underscore, so two apps of one cluster never share one either
// (services created by earlier versions as "<app>-<process>" keep their
// names: services are found by their tags). Task-definition families and SSM
// parameters are unique per account and region, so their names hold the
// cluster with separators app and process names never contain: families
// "<cluster>_<app>_<process>" (app and process names hold no underscore:
// read from the right, a family names one cluster, app and process; at
// most 255 characters, so a cluster name of at most 219), parameters
// "<ParameterPrefix>/<app>/<NAME>/..." (at most 2,048). Families of
// earlier versions, "<cluster>-<app>-<process>", were ambiguous ("a-b"
// with app "c" and "a" with app "b-c" shared one): the first Apply after
// an upgrade registers the process's revision in its new family and
// starts a deployment, and Delete deregisters the app's revisions of the
// old family too, only those labeled with the app.
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
// retained release can be rolled back to. Apply while a release is staged
// discards the stage first (as DiscardStage does): the applied release
// replaces what serves. Apply updates the serving services whatever their
// names, so after a promotion it updates the promoted services in place.
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
// process). Any other kind makes Apply return providers.ErrInvalid before
// any change.
//
// One ECS service attaches a classic load balancer or target groups,
// never both, so a process whose bindings mix the kinds — while the root
// moves an app between a classic load balancer and an ALB
// (StartBalancerMigration) — runs as two services: the serving one,
// attached to the kind its launch type serves (EC2 for the classic load
// balancer, Fargate for target groups), and a paired service beside it,
// named "<app>_<process>--p<7 hexadecimal digits of a hash of the token>"
// and tagged convox:role=paired, running the same task definition family
// attached to the other kind, as a staged service runs beside the serving
// one. Both serve; the rollout completes when both have. When the
// bindings are of one kind again, Apply keeps the service of that kind:
// after a move (FinishBalancerMigration) the paired service becomes the
// serving one and the other is retired (scaled to zero and deleted, so it
// drains); after an abort (AbortBalancerMigration) the paired service is
// retired. Stage refuses mixed bindings with ErrInvalid before any change
// (the root runs no blue/green or canary deploy during a balancer
// migration).
//
// # Status
//
// Status and StatusMany list the cluster's services (ListServices, 100 per
// page), describe the app's services ten at a time (DescribeServices with
// their tags: ceil(n/10) calls for n services, whatever the number of
// apps), and list and describe the cluster's running and recently stopped
// tasks (ListTasks twice, DescribeTasks per 100 tasks) for stopped reasons
// and exit codes. Staged services are described in the same batches. The
// tasks of a deleted service still draining (DRAINING services are not
// listed) are reported under their release until they stop, found by
// their task group and task definition labels. Task definitions are
// described once per revision and cached, revisions being immutable. At
// most Options.StoppedTasks stopped tasks are reported per app, most
// recent first.
//
// # Blue/green and canary deploys
//
// Scheduler implements providers.Stager the way ECS runs blue/green with
// two services:
//
//   - Stage creates, per process of the staged release, a service named
//     "<app>_<process>--<hash>" (eight hexadecimal digits of a hash of the
//     rollout token, at most 43 characters) tagged convox:role=staged,
//     running the staged release's task definition attached to the staged
//     bindings (the target group of the route's other target set). The
//     serving services are not touched. The same token again changes
//     nothing; another token first retires the previous stage's services.
//     Two hyphens never occur in app or process names, so a staged name
//     cannot be another process's; a new name per token means a service
//     still draining under an older name never blocks a stage (ECS refuses
//     to create a service with the name of a DRAINING one).
//   - Status reports staged processes in AppStatus.Processes after the
//     serving ones of the same name, their tasks in AppStatus.Tasks under
//     their release, and the staged rollout first in AppStatus.Rollouts;
//     AppStatus.Release stays the serving release.
//   - PromoteStage tags the staged services convox:role=serving,
//     convox:promoted (their token), convox:replaced (the service each
//     replaces), convox:base and the previous rollout, without touching
//     their tasks; then it retires the previously serving services: each
//     is scaled to zero and deleted, so ECS drains its targets (the target
//     group's deregistration delay), stops its tasks and removes the
//     service once they stopped. The promoted rollout stays in progress,
//     and AppStatus.Release the previous release, until the tasks of the
//     replaced services have stopped. Which service serves is recorded
//     only by these tags: the serving service of a process is its ACTIVE
//     service not tagged staged (after a PromoteStage cut short, the
//     promoted one). Calling PromoteStage again after it failed half-way
//     completes the promotion.
//   - DiscardStage retires the staged services the same way; Status keeps
//     reporting their tasks until they stopped, while the release stays
//     the serving one. CancelRollout of the staged rollout while it starts
//     discards it too; CancelRollout of a promoted rollout does nothing
//     (go back by applying the previous release).
//
// Staging and promoting never deregister a task definition: a staged
// release registers its revisions in the process's family like Apply does.
//
// # Optional capabilities
//
// Scheduler implements providers.BatchStatus (StatusMany),
// providers.Canceler (CancelRollout: services go back to the task
// definition of their last completed deployment), providers.TaskRunner
// (RunTask with the spec's token as the ECS client token, so retries start
// one task; the exit code comes from the stopped task's container),
// providers.BindingAcceptor and providers.Stager (Stage, PromoteStage,
// DiscardStage; see above), so an ALB balancer's weighted target sets
// give blue/green and canary deploys.
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
// Environment values never appear in errors; note that plain ones are
// stored in the task definition, readable by anyone allowed
// ecs:DescribeTaskDefinition (see Secrets).
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
//	ssm:PutParameter                (Options.SSM: KeepSecret, Apply)
//	ssm:DescribeParameters          (Options.SSM: Delete)
//	ssm:DeleteParameters            (Options.SSM: Delete)
//
// Stage, PromoteStage and DiscardStage use only actions of this list
// (services are created, tagged, scaled to zero and deleted).
//
// # Task execution role
//
// The task execution role needs these actions on every resource
// (ExecutionRoleActions), and ssm:GetParameters on
// "arn:aws:ssm:<region>:<account>:parameter<ParameterPrefix>/*" with
// Options.SSM (ExecutionRolePolicy returns both):
//
//	ecr:GetAuthorizationToken
//	ecr:BatchGetImage
//	ecr:GetDownloadUrlForLayer
//	logs:CreateLogGroup
//	logs:CreateLogStream
//	logs:PutLogEvents
package ecsscheduler
