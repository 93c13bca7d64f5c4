package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

// awsHelp documents the AWS rack's settings; the package doc repeats it.
const awsHelp = `With --rack aws the rack is ECR (images), ECS on Fargate (processes), one
shared application load balancer (routes), CloudWatch Logs (logs) and a
DynamoDB table (apps and release history). Credentials and region come from
the standard AWS configuration chain (AWS_PROFILE, AWS_REGION, environment
credentials, SSO, instance roles); AWS_ENDPOINT_URL and
AWS_ENDPOINT_URL_<SERVICE> redirect the clients. The rack's settings:

  CONVOX_AWS_CLUSTER          ECS cluster (default "convox"; created when missing)
  CONVOX_AWS_SUBNETS          comma-separated subnets of the tasks and the load balancer
  CONVOX_AWS_SECURITY_GROUPS  comma-separated security groups of the same
  CONVOX_AWS_PUBLIC_IP        "true" gives tasks public IPs (public subnets without NAT)
  CONVOX_AWS_EXECUTION_ROLE   ARN of the role ECS pulls images and writes logs with
  CONVOX_AWS_LOAD_BALANCER    name or ARN of the shared ALB (default "convox"; created when missing)
  CONVOX_AWS_DOMAIN           routes answer on <app>-<process>.<domain>
  CONVOX_AWS_CERTIFICATE      ACM certificate ARN of the HTTPS listener
  CONVOX_AWS_TABLE            DynamoDB table (default "convox"; created when missing)
  CONVOX_AWS_NAMESPACE        this rack's documents in the table (default "convox")

Images are pushed to ECR with the usual tools (docker push, crane); "convox
build" pushes to the local rack only.`

// awsSettings are the AWS rack's settings, read from the environment.
type awsSettings struct {
	cluster, executionRole            string
	subnets, securityGroups           []string
	publicIP                          bool
	loadBalancer, domain, certificate string
	table, namespace                  string
}

// awsSettingsFrom reads the CONVOX_AWS_ variables.
func awsSettingsFrom(getenv func(string) string) (awsSettings, error) {
	list := func(k string) []string {
		var out []string
		for _, f := range strings.Split(getenv(k), ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	s := awsSettings{
		cluster: getenv("CONVOX_AWS_CLUSTER"), executionRole: getenv("CONVOX_AWS_EXECUTION_ROLE"),
		subnets: list("CONVOX_AWS_SUBNETS"), securityGroups: list("CONVOX_AWS_SECURITY_GROUPS"),
		loadBalancer: getenv("CONVOX_AWS_LOAD_BALANCER"), domain: getenv("CONVOX_AWS_DOMAIN"),
		certificate: getenv("CONVOX_AWS_CERTIFICATE"), table: getenv("CONVOX_AWS_TABLE"),
		namespace: getenv("CONVOX_AWS_NAMESPACE"),
	}
	switch strings.ToLower(getenv("CONVOX_AWS_PUBLIC_IP")) {
	case "", "false", "0", "no":
	case "true", "1", "yes":
		s.publicIP = true
	default:
		return s, usagef("", "CONVOX_AWS_PUBLIC_IP=%q: use true or false", getenv("CONVOX_AWS_PUBLIC_IP"))
	}
	if s.table == "" {
		s.table = "convox"
	}
	return s, nil
}

// openAWS builds the AWS rack from the standard configuration chain and
// the CONVOX_AWS_ settings, creating the DynamoDB table when missing.
func openAWS(ctx context.Context, getenv func(string) string) (convox.Rack, error) {
	st, err := awsSettingsFrom(getenv)
	if err != nil {
		return convox.Rack{}, err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return convox.Rack{}, withHint(fmt.Errorf("load the AWS configuration: %w", err), "check AWS_PROFILE and ~/.aws/config; for SSO run: aws sso login")
	}
	if cfg.Region == "" {
		return convox.Rack{}, withHint(fmt.Errorf("no AWS region is configured"), "set AWS_REGION, or a region in your AWS profile")
	}
	db := dynamodb.NewFromConfig(cfg)
	if err := dynamostore.EnsureTable(ctx, db, st.table); err != nil {
		return convox.Rack{}, withHint(fmt.Errorf("DynamoDB table %s: %w", st.table, err), "check the AWS credentials (aws sts get-caller-identity) and CONVOX_AWS_TABLE")
	}
	return convox.Rack{
		Registry: ecrregistry.New(ecr.NewFromConfig(cfg), nil),
		Scheduler: ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{
			Cluster: st.cluster, Subnets: st.subnets, SecurityGroups: st.securityGroups,
			AssignPublicIP: st.publicIP, ExecutionRoleARN: st.executionRole,
		}),
		Balancer: albbalancer.New(elasticloadbalancingv2.NewFromConfig(cfg), &albbalancer.Options{
			LoadBalancer: st.loadBalancer, Subnets: st.subnets, SecurityGroups: st.securityGroups,
			Domain: st.domain, Certificate: st.certificate,
		}),
		Logs:  cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), nil),
		Store: dynamostore.New(db, st.table, &dynamostore.Options{Namespace: st.namespace}),
	}, nil
}
