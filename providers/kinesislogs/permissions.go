package kinesislogs

// Permissions returns the IAM actions the provider needs: the list under
// Permissions in the package documentation, which a test keeps equal to this
// one. Pass it, with those of the rack's other AWS providers, to
// awsiam.Policy for a least-privilege policy document. The KMS actions of a
// stream encrypted with a customer-managed key are not included.
func Permissions() []string {
	return []string{
		"kinesis:PutRecords",
		"kinesis:ListShards",
		"kinesis:GetShardIterator",
		"kinesis:GetRecords",
		"kinesis:DescribeStreamSummary",
		"kinesis:CreateStream",
	}
}
