package main

import (
	"context"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

// rack is the AWS rack of one run, with the balancer kept typed so that
// the program can print the load balancer's DNS name.
type rack struct {
	convox.Rack
	alb *albbalancer.Balancer
}

// openRack builds the rack from cfg and the settings. The DynamoDB table
// must exist (-setup creates it), so that a run needs no more than the
// providers' own permissions.
// With a registry endpoint, the ECR provider sends its data-path requests
// for the registry host there (ecrregistry.Options.Endpoint).
func openRack(ctx context.Context, cfg aws.Config, s settings) (*rack, error) {
	db := dynamodb.NewFromConfig(cfg)
	var regOpts ecrregistry.Options
	if s.registryEndpoint != "" {
		target, err := url.Parse(s.registryEndpoint) // checked by the settings
		if err != nil {
			return nil, fmt.Errorf("registry endpoint: %w", err)
		}
		regOpts.Endpoint = target
	}
	reg := ecrregistry.New(ecr.NewFromConfig(cfg), &regOpts)
	alb := albbalancer.New(elasticloadbalancingv2.NewFromConfig(cfg), &albbalancer.Options{
		LoadBalancer: s.loadBalancer, Subnets: s.subnets, SecurityGroups: s.securityGroups, Domain: s.domain,
		Namespace: s.namespace, // racks sharing an account want target groups of their own
	})
	// A namespaced rack keeps its apps' log groups apart from another
	// rack's apps of the same name: "/convox/<namespace>/<app>".
	var logOpts cwlogs.Options
	if s.namespace != "" {
		logOpts.GroupPrefix = cwlogs.DefaultGroupPrefix + s.namespace + "/"
	}
	logs := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), &logOpts)
	return &rack{
		Rack: convox.Rack{
			Registry: reg,
			Scheduler: ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{
				Cluster: s.cluster, Subnets: s.subnets, SecurityGroups: s.securityGroups,
				AssignPublicIP: s.publicIP, ExecutionRoleARN: s.executionRole,
				SSM:      ssm.NewFromConfig(cfg), // secrets are SSM parameters the task definitions name
				LogGroup: logs.Group,             // the tasks' awslogs driver writes where Logs reads
			}),
			Balancer: alb,
			Logs:     logs,
			Store:    dynamostore.New(db, s.table, &dynamostore.Options{Namespace: s.namespace}),
		},
		alb: alb,
	}, nil
}
