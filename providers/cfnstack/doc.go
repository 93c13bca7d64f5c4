// Package cfnstack is a providers.Scheduler and providers.Balancer that
// keeps each app as one AWS CloudFormation stack, in place of
// ecsscheduler and albbalancer (see README.md beside this file for the
// comparison of the two modes).
//
// The stack of app "web" is named "<StackPrefix>-web" and holds the app's
// log group, one task definition and one ECS service per process type, and
// one target group and listener rule (on a shared load balancer's
// listener) per routed process. Its template is rendered from typed Go
// structs and encoding/json, never from text templates.
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
// # Plans and drift
//
// Changes returns what applying a Desired state would change, from a
// CloudFormation change set (add, modify with or without replacement,
// remove, per resource) that it deletes afterwards. Drift runs
// CloudFormation's drift detection on the app's stack and returns the
// resources changed or deleted outside it, with the paths of the
// differing properties (never their values). PlanChanges
// (providers.ChangePlanner) and DetectDrift (providers.DriftDetector)
// return the same as the providers types, for the root's
// AppClient.Plan (its Resources) and AppClient.Drift.
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
// providers.ErrConflict with the failing resource's reason.
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
//	logs:CreateLogGroup                     (through CloudFormation)
//	logs:DeleteLogGroup                     (through CloudFormation)
//	logs:PutRetentionPolicy                 (through CloudFormation)
//	logs:DescribeLogGroups                  (through CloudFormation)
//	iam:PassRole                            (the task roles: RunTask, and through CloudFormation)
package cfnstack
