package cwlogs

// Permissions returns the IAM actions the provider needs: the list under
// Permissions in the package documentation, which a test keeps equal to this
// one. Pass it, with those of the rack's other AWS providers, to
// awsiam.Policy for a least-privilege policy document.
func Permissions() []string {
	return []string{
		"logs:CreateLogGroup",
		"logs:CreateLogStream",
		"logs:PutLogEvents",
		"logs:FilterLogEvents",
		"logs:DescribeLogGroups",
		"logs:StartLiveTail",
		"logs:DeleteLogGroup",
		"logs:PutSubscriptionFilter",
		"logs:DescribeSubscriptionFilters",
		"logs:DeleteSubscriptionFilter",
		"iam:CreateRole",
		"iam:GetRole",
		"iam:PutRolePolicy",
		"iam:PassRole",
	}
}
