package ecrregistry

// Permissions returns the IAM actions the registry needs: the list under
// Permissions in the package documentation, which a test keeps equal to this
// one. Pass it, with those of the rack's other AWS providers, to
// awsiam.Policy for a least-privilege policy document. Pushing over the data
// path needs more actions, listed there too; they are not included.
func Permissions() []string {
	return []string{
		"ecr:DescribeRepositories",
		"ecr:CreateRepository",
		"ecr:BatchGetImage",
		"ecr:GetDownloadUrlForLayer",
		"ecr:GetAuthorizationToken",
		"ecr:ListImages",
		"ecr:BatchDeleteImage",
	}
}
