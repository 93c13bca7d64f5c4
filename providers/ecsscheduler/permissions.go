package ecsscheduler

// Permissions returns the IAM actions the scheduler needs: the list under
// Permissions in the package documentation, which a test keeps equal to this
// one. Pass it, with those of the rack's other AWS providers, to
// awsiam.Policy for a least-privilege policy document. The task execution
// role's own actions, listed there too, belong to that role and are not
// included.
func Permissions() []string {
	return []string{
		"ecs:CreateCluster",
		"ecs:RegisterTaskDefinition",
		"ecs:DescribeTaskDefinition",
		"ecs:ListTaskDefinitions",
		"ecs:DeregisterTaskDefinition",
		"ecs:CreateService",
		"ecs:UpdateService",
		"ecs:DeleteService",
		"ecs:DescribeServices",
		"ecs:ListServices",
		"ecs:TagResource",
		"ecs:ListTasks",
		"ecs:DescribeTasks",
		"ecs:RunTask",
		"ecs:StopTask",
		"iam:PassRole",
		"ssm:PutParameter",
		"ssm:DescribeParameters",
		"ssm:DeleteParameters",
	}
}
