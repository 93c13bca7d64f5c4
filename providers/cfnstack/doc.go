// Package cfnstack is a providers.Scheduler and providers.Balancer that
// keeps each app as one AWS CloudFormation stack, in place of
// ecsscheduler and albbalancer (see README.md beside this file for the
// comparison of the two modes).
//
// The stack of app "web" is named "<StackPrefix>-web" and holds the app's
// log group (unless the rack's Logs provider owns it, see Log groups), one
// task definition and one ECS service per process type, and one target
// group and listener rule (on a shared load balancer's listener) per
// routed process. Its template is rendered from typed Go structs and
// encoding/json, never from text templates.
//
//	st := cfnstack.New(cloudformation.NewFromConfig(cfg), ecs.NewFromConfig(cfg),
//		elasticloadbalancingv2.NewFromConfig(cfg), &cfnstack.Options{
//			Cluster: "production", Subnets: subnets, SecurityGroups: groups,
//			VPC: vpc, HTTPListener: listenerARN, Domain: "apps.example.com",
//			ExecutionRoleARN: role,
//		})
//	rack := convox.Rack{Scheduler: st, Balancer: st, ...}
//
// # Apply
//
// Apply renders the Desired state (with the routes already in the stack)
// and makes one CreateStack or UpdateStack call whose ClientRequestToken is
// derived, reversibly, from the release and the rollout token, so a
// retried Apply never starts a second update, and the stack's events name
// the rollout they belong to. Apply does not wait. Applying a token the
// stack already carries, or whose update is in flight or rolled back,
// starts nothing and returns that rollout. "No updates are to be
// performed" is success. A task definition is a resource named by a hash
// of its content, so a changed one is created beside the old one and the
// old one is deleted in the update's clean-up phase: a rollback finds it
// intact. Rolling back to a release is one UpdateStack with that release's
// template: image, environment, formation and, through the routes the
// stack keeps, the balancer configuration.
//
// # Routes
//
// EnsureRoute adds or changes the route's target group and listener rule
// in the app's stack (creating the stack when missing) and waits for that
// operation, because the scheduler needs the target group's ARN; a route
// already in the stack as described makes no change and no
// CloudFormation write. The rule's priority is chosen once, free on the
// listener, and kept in the template's metadata. DeleteRoute takes the
// route out of the stack, or deletes the stack when nothing else is in
// it. Routes are HTTP or HTTPS rules on Options.HTTPListener and
// Options.HTTPSListener; certificates belong to the HTTPS listener.
//
// # Log groups
//
// The containers log with the awslogs driver to the app's log group
// (Options.LogGroup, "/convox/<app>" by default), under their process's
// stream prefix. Who owns that group is chosen per stack:
//
//   - By default the stack declares it (an AWS::Logs::LogGroup resource
//     with Options.LogRetentionDays) and CloudFormation deletes it with
//     the stack. CloudFormation refuses to create a stack declaring a
//     group that exists ("ResourceAlreadyExistsException"), so nothing
//     else may create it first.
//   - With Options.ExternalLogGroup the rack's Logs provider owns it:
//     the stack does not declare it, the containers log to it by name
//     with the awslogs option awslogs-create-group "true" (so the group
//     exists even when nothing wrote to it before; the execution role
//     needs logs:CreateLogGroup, see Task execution role), and the Logs
//     provider deletes it with the app (the root's DeleteApp calls
//     Logs.Delete after Delete). This is the choice for a rack whose Logs
//     provider writes the same group: cwlogs creates a missing group on
//     its first write, and the root writes a deploy's platform lines
//     ("promoting R1") before the deploy creates the app's stack, which
//     would then fail to create.
//
// The choice is recorded in the template's metadata when the stack is
// created, and every later template of the stack (Apply, EnsureRoute,
// DeleteRoute, a rollback, Changes, RunTask's lookup) keeps the stack's
// choice, whatever the option says then: an update that dropped the
// LogGroup resource would make CloudFormation delete the group and its
// logs, and one that added it would fail. Changing the option changes
// new stacks only. A stack with an external log group and nothing else
// (no process, no route) holds a placeholder resource
// (AWS::CloudFormation::WaitConditionHandle), as CloudFormation refuses a
// template without resources.
//
// # Status
//
// Status reads the stack (DescribeStacks), the events of its latest
// operation when it is in flight or was rolled back (DescribeStackEvents),
// and the task counts of its services (DescribeServices, ten at a time).
// The app's release is the stack's once CloudFormation completed it
// (CloudFormation completes an ECS service only once it reached a steady
// state). AWS's own rollback is reported as it happened:
//
//   - UPDATE_IN_PROGRESS: the rollout is in progress.
//   - UPDATE_ROLLBACK_IN_PROGRESS, UPDATE_ROLLBACK_COMPLETE: the rollout
//     failed; the reason is the first failed resource's status reason
//     ("ServiceOfweb: ..."). Once the rollback completed the previous
//     release is the app's again.
//   - UPDATE_ROLLBACK_FAILED: the rollout failed, and the reason lists the
//     resources to skip; ContinueUpdateRollback resumes the rollback.
//   - A rollback CancelRollout caused (CancelUpdateStack) is reported as a
//     canceled rollout.
//
// Status lists no tasks: stopped tasks' reasons reach the caller as the
// failing service's status reason. Events returns the stack's events;
// RolloutEvents (providers.EventReporter) returns them to the root, which
// reports each once as a deploy.platform event while a deploy waits.
//
// # One-off tasks
//
// RunTask (providers.TaskRunner) starts a one-off task on the stack's
// cluster and network, logging to the app's log group under the
// process's stream prefix as the services do, and never changes the
// stack. Its task definition is the stack's own when the stack holds the
// one the run needs: task definitions are named by a hash of their
// content, so rendering the run's process, image and environment as
// Apply does names the resource to look up (DescribeStackResource), and a
// run of the deployed release registers nothing. Any other run (another
// release, another environment) cannot use the stack's (ECS overrides
// change neither the image nor remove variables, and adding a definition
// to the template would be a stack update): it registers the same
// definition outside the stack, in a family named by its content
// ("<cluster>-<app>_<process>_<hash>"), reused by every run of that
// content. The command overrides the process's (at most ECS's 8,192
// characters of overrides). RunTask is idempotent by the run's token
// (ECS's client token, kept 24 hours) and tags the task with its app,
// process, release and token; GetTask and StopTask act on such tasks of
// the app only. An app without a stack gets one holding only its log
// group first, as a first EnsureRoute does, unless the log group is
// external (Options.ExternalLogGroup): then no stack is made, and the
// task's log driver creates the group when missing. A run's task
// definition logs as the stack's do, by the stack's recorded choice.
// Delete stops the app's one-off tasks and deregisters the definitions
// RunTask registered.
//
// # Plans and drift
//
// Changes returns what deploying a Desired state would change, from a
// CloudFormation change set (add, modify with or without replacement,
// remove, per resource) that it deletes afterwards. The template planned
// is the one the deploy would leave: Apply's, plus the target group and
// listener rule of each process with a port whose route the deploy would
// make first (no binding in the Desired state, no route in the stack). Drift runs
// CloudFormation's drift detection on the app's stack and returns the
// resources changed or deleted outside it, with the paths of the
// differing properties (never their values). PlanChanges
// (providers.ChangePlanner) and DetectDrift (providers.DriftDetector)
// return the same as the providers types, for the root's
// AppClient.Plan (its Resources) and AppClient.Drift.
//
// # Not implemented
//
// Stager and WeightShifter (blue/green and canary deploys driven by the
// root) are not implemented. CloudFormation runs an ECS blue/green
// deployment itself, within one stack update, in two ways: through
// CodeDeploy (an AWS::CodeDeploy::BlueGreen hook and the
// AWS::CodeDeployBlueGreen transform, with task sets and production and
// test listeners, for a single ECS service per stack, and no other
// resource changing in the same update), or with ECS's own blue/green
// strategy (AWS::ECS::Service DeploymentConfiguration Strategy and an
// alternate target group), while the deployment circuit breaker the stack
// mode relies on "can only be used for services using the rolling update
// (ECS) deployment type" (Amazon ECS API Reference,
// DeploymentConfiguration). Neither lets the root stage a
// release, shift weights step by step and promote or discard it, and the
// emulator the tests run on (moto) models neither. BatchStatus and
// SecretKeeper are not implemented either: Status reads one stack, and
// secret values are written into the task definitions (see Secrets).
//
// # Limits
//
// A template travels in the request (TemplateBody, at most 51,200 bytes):
// each process's task definition holds the whole environment, so a large
// environment times many process types can exceed it, and Apply refuses
// such a release with ErrInvalid before any change.
//
// # Secrets
//
// The environment is written into the task definitions of the template:
// anyone allowed cloudformation:GetTemplate or ecs:DescribeTaskDefinition
// can read it.
//
// # Errors
//
// Errors wrap a providers sentinel and the SDK error (internal/awserr). A
// missing stack is providers.ErrNotFound; a stack that refuses Apply
// (another rollout in flight, UPDATE_ROLLBACK_FAILED) is
// providers.ErrConflict; a route change that meets another caller's
// operation on the stack (an update in flight, the stack created
// meanwhile) is providers.ErrUnavailable, temporary; a stack operation
// that failed in EnsureRoute, DeleteRoute or Delete is
// providers.ErrConflict with the failing resource's reason. A RunTask
// token ECS already saw with other parameters (ConflictException) is
// providers.ErrConflict; a RunTask that started no task is
// providers.ErrUnavailable with ECS's reason.
//
// # Permissions
//
// The caller needs these IAM actions (CloudFormation acts with the
// caller's credentials on the stack's resources):
//
//	cloudformation:CreateStack
//	cloudformation:UpdateStack
//	cloudformation:DeleteStack
//	cloudformation:DescribeStacks
//	cloudformation:DescribeStackEvents
//	cloudformation:GetTemplate
//	cloudformation:CancelUpdateStack        (CancelRollout)
//	cloudformation:ContinueUpdateRollback   (ContinueUpdateRollback)
//	cloudformation:CreateChangeSet          (Changes)
//	cloudformation:DescribeChangeSet        (Changes)
//	cloudformation:DeleteChangeSet          (Changes)
//	cloudformation:DetectStackDrift         (Drift)
//	cloudformation:DescribeStackDriftDetectionStatus   (Drift)
//	cloudformation:DescribeStackResourceDrifts         (Drift)
//	cloudformation:DescribeStackResource    (RunTask)
//	ecs:CreateCluster
//	ecs:DescribeServices
//	ecs:RegisterTaskDefinition              (RunTask; and through CloudFormation)
//	ecs:DeregisterTaskDefinition            (Delete; and through CloudFormation)
//	ecs:DescribeTaskDefinition              (RunTask, Delete; and through CloudFormation)
//	ecs:CreateService                       (through CloudFormation)
//	ecs:UpdateService                       (through CloudFormation)
//	ecs:DeleteService                       (through CloudFormation)
//	ecs:RunTask                             (RunTask)
//	ecs:TagResource                         (RunTask tags its task on creation)
//	ecs:DescribeTasks                       (GetTask, StopTask)
//	ecs:StopTask                            (StopTask, Delete)
//	ecs:ListTasks                           (Delete)
//	ecs:ListTaskDefinitionFamilies          (Delete)
//	elasticloadbalancing:DescribeRules
//	elasticloadbalancing:DescribeTargetHealth
//	elasticloadbalancing:DescribeTargetGroups             (through CloudFormation)
//	elasticloadbalancing:CreateTargetGroup                (through CloudFormation)
//	elasticloadbalancing:ModifyTargetGroup                (through CloudFormation)
//	elasticloadbalancing:ModifyTargetGroupAttributes      (through CloudFormation)
//	elasticloadbalancing:DeleteTargetGroup                (through CloudFormation)
//	elasticloadbalancing:CreateRule                       (through CloudFormation)
//	elasticloadbalancing:ModifyRule                       (through CloudFormation)
//	elasticloadbalancing:DeleteRule                       (through CloudFormation)
//	logs:CreateLogGroup                     (through CloudFormation, for stacks declaring their log group)
//	logs:DeleteLogGroup                     (through CloudFormation, as CreateLogGroup)
//	logs:PutRetentionPolicy                 (through CloudFormation, as CreateLogGroup)
//	logs:DescribeLogGroups                  (through CloudFormation, as CreateLogGroup)
//	iam:PassRole                            (the task roles: RunTask, and through CloudFormation)
//
// # Task execution role
//
// The task execution role (Options.ExecutionRoleARN), with which ECS
// pulls the images and writes the containers' logs, needs these actions
// on every resource (ExecutionRoleActions); the AWS managed policy
// AmazonECSTaskExecutionRolePolicy grants all but logs:CreateLogGroup:
//
//	ecr:GetAuthorizationToken
//	ecr:BatchGetImage
//	ecr:GetDownloadUrlForLayer
//	logs:CreateLogStream
//	logs:PutLogEvents
//	logs:CreateLogGroup                     (Options.ExternalLogGroup: awslogs-create-group)
package cfnstack
