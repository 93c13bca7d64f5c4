package dynamostore

// Permissions returns the IAM actions the store needs: the list under
// Permissions in the package documentation, which a test keeps equal to this
// one. Pass it, with those of the rack's other AWS providers, to
// awsiam.Policy for a least-privilege policy document. EnsureTable's
// dynamodb:DescribeTable and dynamodb:CreateTable are not included.
func Permissions() []string {
	return []string{
		"dynamodb:GetItem",
		"dynamodb:UpdateItem",
		"dynamodb:DeleteItem",
		"dynamodb:Query",
	}
}
