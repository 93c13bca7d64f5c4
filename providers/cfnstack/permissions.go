package cfnstack

// Permissions returns the IAM actions the provider's caller needs: the
// list under Permissions in the package documentation. CloudFormation
// creates, updates and deletes the stack's resources with the caller's
// credentials, so the resource actions are the caller's too.
func Permissions() []string {
	return []string{
		"cloudformation:CreateStack",
		"cloudformation:UpdateStack",
		"cloudformation:DeleteStack",
		"cloudformation:DescribeStacks",
		"cloudformation:DescribeStackEvents",
		"cloudformation:GetTemplate",
		"cloudformation:CancelUpdateStack",
		"cloudformation:ContinueUpdateRollback",
		"cloudformation:CreateChangeSet",
		"cloudformation:DescribeChangeSet",
		"cloudformation:DeleteChangeSet",
		"cloudformation:DetectStackDrift",
		"cloudformation:DescribeStackDriftDetectionStatus",
		"cloudformation:DescribeStackResourceDrifts",
		"cloudformation:DescribeStackResource",
		"ecs:CreateCluster",
		"ecs:DescribeServices",
		"ecs:RegisterTaskDefinition",
		"ecs:DeregisterTaskDefinition",
		"ecs:DescribeTaskDefinition",
		"ecs:CreateService",
		"ecs:UpdateService",
		"ecs:DeleteService",
		"ecs:RunTask",
		"ecs:TagResource",
		"ecs:DescribeTasks",
		"ecs:StopTask",
		"ecs:ListTasks",
		"ecs:ListTaskDefinitionFamilies",
		"elasticloadbalancing:DescribeRules",
		"elasticloadbalancing:DescribeTargetHealth",
		"elasticloadbalancing:DescribeTargetGroups",
		"elasticloadbalancing:CreateTargetGroup",
		"elasticloadbalancing:ModifyTargetGroup",
		"elasticloadbalancing:ModifyTargetGroupAttributes",
		"elasticloadbalancing:DeleteTargetGroup",
		"elasticloadbalancing:CreateRule",
		"elasticloadbalancing:ModifyRule",
		"elasticloadbalancing:DeleteRule",
		"logs:CreateLogGroup",
		"logs:DeleteLogGroup",
		"logs:PutRetentionPolicy",
		"logs:DescribeLogGroups",
		"iam:PassRole",
	}
}

// ExecutionRoleActions returns the actions the task execution role
// (Options.ExecutionRoleARN) needs on every resource: the list under Task
// execution role in the package documentation. ECS pulls the image and
// writes the containers' logs with it; with externalLogGroup
// (Options.ExternalLogGroup) the log driver also creates a missing log
// group, which needs logs:CreateLogGroup.
func ExecutionRoleActions(externalLogGroup bool) []string {
	actions := []string{
		"ecr:GetAuthorizationToken",
		"ecr:BatchGetImage",
		"ecr:GetDownloadUrlForLayer",
		"logs:CreateLogStream",
		"logs:PutLogEvents",
	}
	if externalLogGroup {
		actions = append(actions, "logs:CreateLogGroup")
	}
	return actions
}
