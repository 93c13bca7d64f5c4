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
