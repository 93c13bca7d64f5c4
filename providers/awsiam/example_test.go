package awsiam_test

import (
	"fmt"
	"os"

	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/awsiam"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

// The policy of a rack on ECS behind an ALB, with CloudWatch Logs, a
// DynamoDB store and ECR.
func Example() {
	policy, err := awsiam.Policy(
		ecsscheduler.Permissions(),
		albbalancer.Permissions(),
		cwlogs.Permissions(),
		dynamostore.Permissions(),
		ecrregistry.Permissions(),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	os.Stdout.Write(policy)
	// Output:
	// {
	//   "Version": "2012-10-17",
	//   "Statement": [
	//     {
	//       "Effect": "Allow",
	//       "Action": [
	//         "dynamodb:DeleteItem",
	//         "dynamodb:GetItem",
	//         "dynamodb:Query",
	//         "dynamodb:UpdateItem",
	//         "ecr:BatchDeleteImage",
	//         "ecr:BatchGetImage",
	//         "ecr:CreateRepository",
	//         "ecr:DescribeRepositories",
	//         "ecr:GetAuthorizationToken",
	//         "ecr:GetDownloadUrlForLayer",
	//         "ecr:ListImages",
	//         "ecs:CreateCluster",
	//         "ecs:CreateService",
	//         "ecs:DeleteService",
	//         "ecs:DeregisterTaskDefinition",
	//         "ecs:DescribeServices",
	//         "ecs:DescribeTaskDefinition",
	//         "ecs:DescribeTasks",
	//         "ecs:ListServices",
	//         "ecs:ListTaskDefinitions",
	//         "ecs:ListTasks",
	//         "ecs:RegisterTaskDefinition",
	//         "ecs:RunTask",
	//         "ecs:StopTask",
	//         "ecs:TagResource",
	//         "ecs:UpdateService",
	//         "elasticloadbalancing:AddListenerCertificates",
	//         "elasticloadbalancing:AddTags",
	//         "elasticloadbalancing:CreateListener",
	//         "elasticloadbalancing:CreateLoadBalancer",
	//         "elasticloadbalancing:CreateRule",
	//         "elasticloadbalancing:CreateTargetGroup",
	//         "elasticloadbalancing:DeleteRule",
	//         "elasticloadbalancing:DeleteTargetGroup",
	//         "elasticloadbalancing:DescribeListeners",
	//         "elasticloadbalancing:DescribeLoadBalancerAttributes",
	//         "elasticloadbalancing:DescribeLoadBalancers",
	//         "elasticloadbalancing:DescribeRules",
	//         "elasticloadbalancing:DescribeTags",
	//         "elasticloadbalancing:DescribeTargetGroupAttributes",
	//         "elasticloadbalancing:DescribeTargetGroups",
	//         "elasticloadbalancing:DescribeTargetHealth",
	//         "elasticloadbalancing:ModifyLoadBalancerAttributes",
	//         "elasticloadbalancing:ModifyRule",
	//         "elasticloadbalancing:ModifyTargetGroup",
	//         "elasticloadbalancing:ModifyTargetGroupAttributes",
	//         "elasticloadbalancing:SetRulePriorities",
	//         "iam:CreateRole",
	//         "iam:GetRole",
	//         "iam:PassRole",
	//         "iam:PutRolePolicy",
	//         "logs:CreateLogGroup",
	//         "logs:CreateLogStream",
	//         "logs:DeleteLogGroup",
	//         "logs:DeleteSubscriptionFilter",
	//         "logs:DescribeLogGroups",
	//         "logs:DescribeSubscriptionFilters",
	//         "logs:FilterLogEvents",
	//         "logs:PutLogEvents",
	//         "logs:PutSubscriptionFilter",
	//         "logs:StartLiveTail",
	//         "ssm:DeleteParameters",
	//         "ssm:DescribeParameters",
	//         "ssm:PutParameter"
	//       ],
	//       "Resource": "*"
	//     }
	//   ]
	// }
}
