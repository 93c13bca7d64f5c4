package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/cfnstack"
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
AWS_ENDPOINT_URL_<SERVICE> redirect the clients.

CONVOX_AWS_MODE chooses how apps run:

  direct  (the default) the CLI calls ECS and the load balancer itself; the
          shared load balancer is created when missing
  stack   each app is one CloudFormation stack ("<cluster>-<app>") holding its
          task definitions, services, target groups, listener rules and log
          group: a deploy or rollback is one stack update, a failed update is
          rolled back by CloudFormation, "convox plan" lists the stack's
          resource changes and "convox drift" the changes made outside it.
          The load balancer and its listeners must exist. "convox run"
          starts a one-off ECS task beside the stack. The app's log group
          belongs to CloudWatch Logs, not to the stack: it is created by
          the first line written (a deploy's, or a task's), kept while the
          app exists and deleted with it. The execution role needs
          logs:CreateLogGroup besides the usual ECR and logs actions.

The rack's settings:

  CONVOX_AWS_MODE             direct or stack (default direct)
  CONVOX_AWS_CLUSTER          ECS cluster (default "convox"; created when missing)
  CONVOX_AWS_SUBNETS          comma-separated subnets of the tasks (and, direct, of the load balancer)
  CONVOX_AWS_SECURITY_GROUPS  comma-separated security groups of the same
  CONVOX_AWS_PUBLIC_IP        "true" gives tasks public IPs (public subnets without NAT)
  CONVOX_AWS_EXECUTION_ROLE   ARN of the role ECS pulls images and writes logs with
  CONVOX_AWS_DOMAIN           routes answer on <app>-<process>.<domain>
  CONVOX_AWS_TABLE            DynamoDB table (default "convox"; created when missing)
  CONVOX_AWS_NAMESPACE        this rack's documents in the table (default "convox")
  CONVOX_AWS_REGISTRY_ENDPOINT  http(s)://HOST[:PORT] serving the ECR registry's
                              data path instead of ECR (a trusted pull-through
                              mirror): the ECR credentials go along

Direct mode only:

  CONVOX_AWS_LOAD_BALANCER    name or ARN of the shared ALB (default "convox"; created when missing)
  CONVOX_AWS_CERTIFICATE      ACM certificate ARN of the HTTPS listener

Stack mode only (it requires CONVOX_AWS_VPC, CONVOX_AWS_HTTP_LISTENER and
CONVOX_AWS_SUBNETS):

  CONVOX_AWS_VPC              the VPC of the apps' target groups (vpc-...)
  CONVOX_AWS_HTTP_LISTENER    ARN of the shared load balancer's HTTP listener
                              the apps' listener rules are added to
  CONVOX_AWS_HTTPS_LISTENER   ARN of its HTTPS listener (its certificates cover
                              the apps' hosts), for HTTPS routes; optional

A setting of the other mode, or a malformed one, is a usage error (exit 2)
before any AWS call. Images are pushed to ECR with the usual tools (docker
push, crane); "convox build" pushes to the local rack only.`

// The AWS rack's modes (CONVOX_AWS_MODE).
const (
	// modeDirect calls ECS and ELBv2 directly (ecsscheduler, albbalancer).
	modeDirect = "direct"
	// modeStack keeps each app as a CloudFormation stack (cfnstack), one
	// value as both the rack's scheduler and its balancer.
	modeStack = "stack"
)

// awsSettings are the AWS rack's settings, read from the environment.
type awsSettings struct {
	mode                              string
	cluster, executionRole            string
	subnets, securityGroups           []string
	publicIP                          bool
	loadBalancer, domain, certificate string
	table, namespace                  string
	// The stack mode's: the target groups' VPC and the shared listeners.
	vpc, httpListener, httpsListener string
	// registryEndpoint, when set, serves the ECR registry's data path.
	registryEndpoint *url.URL
}

// awsSettingsFrom reads the CONVOX_AWS_ variables and checks them; a
// malformed setting, a missing required one and one of the other mode are
// usage errors.
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
		mode:    strings.ToLower(strings.TrimSpace(getenv("CONVOX_AWS_MODE"))),
		cluster: getenv("CONVOX_AWS_CLUSTER"), executionRole: getenv("CONVOX_AWS_EXECUTION_ROLE"),
		subnets: list("CONVOX_AWS_SUBNETS"), securityGroups: list("CONVOX_AWS_SECURITY_GROUPS"),
		loadBalancer: getenv("CONVOX_AWS_LOAD_BALANCER"), domain: getenv("CONVOX_AWS_DOMAIN"),
		certificate: getenv("CONVOX_AWS_CERTIFICATE"), table: getenv("CONVOX_AWS_TABLE"),
		namespace: getenv("CONVOX_AWS_NAMESPACE"),
		vpc:       strings.TrimSpace(getenv("CONVOX_AWS_VPC")), httpListener: strings.TrimSpace(getenv("CONVOX_AWS_HTTP_LISTENER")),
		httpsListener: strings.TrimSpace(getenv("CONVOX_AWS_HTTPS_LISTENER")),
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
	if s.cluster == "" {
		s.cluster = "convox"
	}
	if e := getenv("CONVOX_AWS_REGISTRY_ENDPOINT"); e != "" {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return s, usagef("", "CONVOX_AWS_REGISTRY_ENDPOINT=%q: want http(s)://HOST[:PORT]", e)
		}
		s.registryEndpoint = u
	}
	// others are the settings of the mode not chosen, which would be
	// ignored: naming them is clearer than ignoring them.
	var others []string
	set := func(names ...string) {
		for _, n := range names {
			if getenv(n) != "" {
				others = append(others, n)
			}
		}
	}
	switch s.mode {
	case "", modeDirect:
		s.mode = modeDirect
		set("CONVOX_AWS_VPC", "CONVOX_AWS_HTTP_LISTENER", "CONVOX_AWS_HTTPS_LISTENER")
		if len(others) > 0 {
			return s, usagef("", "%s: stack mode settings, and CONVOX_AWS_MODE is direct: set CONVOX_AWS_MODE=stack, or unset them", strings.Join(others, ", "))
		}
	case modeStack:
		set("CONVOX_AWS_LOAD_BALANCER", "CONVOX_AWS_CERTIFICATE")
		if len(others) > 0 {
			return s, usagef("", "%s: direct mode settings, and CONVOX_AWS_MODE is stack: the stack mode adds the apps' rules to the listeners of CONVOX_AWS_HTTP_LISTENER and CONVOX_AWS_HTTPS_LISTENER; unset them", strings.Join(others, ", "))
		}
		if err := s.checkStack(); err != nil {
			return s, err
		}
	default:
		return s, usagef("", "CONVOX_AWS_MODE=%q: use direct or stack", getenv("CONVOX_AWS_MODE"))
	}
	return s, nil
}

// checkStack checks the stack mode's required settings and the form of
// its ARNs.
func (s *awsSettings) checkStack() error {
	var missing []string
	if len(s.subnets) == 0 {
		missing = append(missing, "CONVOX_AWS_SUBNETS")
	}
	if s.vpc == "" {
		missing = append(missing, "CONVOX_AWS_VPC")
	}
	if s.httpListener == "" {
		missing = append(missing, "CONVOX_AWS_HTTP_LISTENER")
	}
	if len(missing) > 0 {
		return usagef("", "CONVOX_AWS_MODE=stack needs %s (see convox help aws)", strings.Join(missing, ", "))
	}
	if !strings.HasPrefix(s.vpc, "vpc-") || strings.ContainsAny(s.vpc, " ,") {
		return usagef("", "CONVOX_AWS_VPC=%q: want a VPC ID, vpc-...", s.vpc)
	}
	for _, l := range []struct{ name, value string }{{"CONVOX_AWS_HTTP_LISTENER", s.httpListener}, {"CONVOX_AWS_HTTPS_LISTENER", s.httpsListener}} {
		if l.value == "" {
			continue
		}
		if _, err := listenerRegion(l.value); err != nil {
			return usagef("", "%s=%q: %v", l.name, l.value, err)
		}
	}
	return nil
}

// listenerRegion returns the region of a load balancer listener's ARN,
// arn:PARTITION:elasticloadbalancing:REGION:ACCOUNT:listener/app/..., or
// why it is not one.
func listenerRegion(s string) (string, error) {
	a, err := arn.Parse(s)
	if err != nil || a.Service != "elasticloadbalancing" || !strings.HasPrefix(a.Resource, "listener/app/") || a.Region == "" {
		return "", fmt.Errorf("want an application load balancer listener's ARN, arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID")
	}
	return a.Region, nil
}

// openAWS builds the AWS rack from the standard configuration chain and
// the CONVOX_AWS_ settings, creating the DynamoDB table when missing.
// Every setting is checked before the first AWS call.
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
	if st.mode == modeStack {
		for _, l := range []struct{ name, value string }{{"CONVOX_AWS_HTTP_LISTENER", st.httpListener}, {"CONVOX_AWS_HTTPS_LISTENER", st.httpsListener}} {
			if r, _ := listenerRegion(l.value); l.value != "" && r != cfg.Region {
				return convox.Rack{}, usagef("", "%s is in region %s, and the AWS region is %s: a stack's listener rules must be in its region", l.name, r, cfg.Region)
			}
		}
	}
	db := dynamodb.NewFromConfig(cfg)
	if err := dynamostore.EnsureTable(ctx, db, st.table); err != nil {
		return convox.Rack{}, withHint(fmt.Errorf("DynamoDB table %s: %w", st.table, err), "check the AWS credentials (aws sts get-caller-identity) and CONVOX_AWS_TABLE")
	}
	reg := ecrRegistry(cfg, st)
	logs := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), nil)
	rack := convox.Rack{
		Registry: reg,
		Logs:     logs,
		Store:    dynamostore.New(db, st.table, &dynamostore.Options{Namespace: st.namespace}),
	}
	if st.mode == modeStack {
		publicIP := ""
		if st.publicIP {
			publicIP = "ENABLED"
		}
		stack := cfnstack.New(cloudformation.NewFromConfig(cfg), ecs.NewFromConfig(cfg), elasticloadbalancingv2.NewFromConfig(cfg), &cfnstack.Options{
			Cluster: st.cluster, Region: cfg.Region, Subnets: st.subnets, SecurityGroups: st.securityGroups,
			AssignPublicIP: publicIP, ExecutionRoleARN: st.executionRole, VPC: st.vpc,
			HTTPListener: st.httpListener, HTTPSListener: st.httpsListener, Domain: st.domain,
			// The tasks write where the rack's logs read, and the group
			// is the logs provider's: cwlogs creates it with a deploy's
			// first line, before the deploy creates the app's stack.
			LogGroup: logs.Group, ExternalLogGroup: true,
		})
		rack.Scheduler, rack.Balancer = stack, stack
		return rack, nil
	}
	rack.Scheduler = ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{
		Cluster: st.cluster, Subnets: st.subnets, SecurityGroups: st.securityGroups,
		AssignPublicIP: st.publicIP, ExecutionRoleARN: st.executionRole,
	})
	rack.Balancer = albbalancer.New(elasticloadbalancingv2.NewFromConfig(cfg), &albbalancer.Options{
		LoadBalancer: st.loadBalancer, Subnets: st.subnets, SecurityGroups: st.securityGroups,
		Domain: st.domain, Certificate: st.certificate,
	})
	return rack, nil
}

// ecrRegistry returns the rack's ECR registry; with a registry endpoint,
// its data-path requests for the registry host go there
// (ecrregistry.Options.Endpoint).
func ecrRegistry(cfg aws.Config, st awsSettings) *ecrregistry.Registry {
	return ecrregistry.New(ecr.NewFromConfig(cfg), &ecrregistry.Options{Endpoint: st.registryEndpoint})
}
