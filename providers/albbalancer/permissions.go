package albbalancer

// Permissions returns the IAM actions the balancer needs: the list under
// Permissions in the package documentation, which a test keeps equal to this
// one. Pass it, with those of the rack's other AWS providers, to
// awsiam.Policy for a least-privilege policy document.
// iam:CreateServiceLinkedRole, needed only to create the first load balancer
// of an account, is not included.
func Permissions() []string {
	return []string{
		"elasticloadbalancing:DescribeLoadBalancers",
		"elasticloadbalancing:CreateLoadBalancer",
		"elasticloadbalancing:DescribeLoadBalancerAttributes",
		"elasticloadbalancing:ModifyLoadBalancerAttributes",
		"elasticloadbalancing:DescribeListeners",
		"elasticloadbalancing:CreateListener",
		"elasticloadbalancing:AddListenerCertificates",
		"elasticloadbalancing:DescribeTargetGroups",
		"elasticloadbalancing:CreateTargetGroup",
		"elasticloadbalancing:ModifyTargetGroup",
		"elasticloadbalancing:DeleteTargetGroup",
		"elasticloadbalancing:DescribeTargetGroupAttributes",
		"elasticloadbalancing:ModifyTargetGroupAttributes",
		"elasticloadbalancing:DescribeRules",
		"elasticloadbalancing:CreateRule",
		"elasticloadbalancing:ModifyRule",
		"elasticloadbalancing:SetRulePriorities",
		"elasticloadbalancing:DeleteRule",
		"elasticloadbalancing:DescribeTargetHealth",
		"elasticloadbalancing:DescribeTags",
		"elasticloadbalancing:AddTags",
	}
}
