package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
// With a registry endpoint, deploys and rollbacks ask ECR once for the
// registry host (GetAuthorizationToken, whose token the registry caches for
// its own data-path requests), so that only requests for that host are
// redirected.
func openRack(ctx context.Context, cfg aws.Config, s settings) (*rack, error) {
	db := dynamodb.NewFromConfig(cfg)
	var regOpts ecrregistry.Options
	var redirect *hostRedirect
	if s.registryEndpoint != "" {
		target, err := url.Parse(s.registryEndpoint)
		if err != nil {
			return nil, fmt.Errorf("registry endpoint: %w", err)
		}
		redirect = &hostRedirect{target: target, base: remote.DefaultTransport}
		regOpts.Transport = redirect
	}
	reg := ecrregistry.New(ecr.NewFromConfig(cfg), &regOpts)
	if redirect != nil && (s.mode == modeDeploy || s.mode == modeRollback) {
		creds, err := reg.Credentials(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("ECR registry host: %w", err)
		}
		redirect.setHost(creds.Registry)
	}
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

// hostRedirect is the ECR registry's data-path transport when a registry
// endpoint is set: requests for the ECR registry host go to the target
// endpoint, with the same path, query and credentials; requests for any
// other host (such as the storage URLs ECR redirects layer downloads to)
// go out unchanged through base.
type hostRedirect struct {
	target *url.URL
	base   http.RoundTripper

	mu   sync.Mutex
	host string
}

func (h *hostRedirect) setHost(host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.host = host
}

// RoundTrip implements http.RoundTripper.
func (h *hostRedirect) RoundTrip(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	host := h.host
	h.mu.Unlock()
	if host == "" || !strings.EqualFold(req.URL.Host, host) {
		return h.base.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = h.target.Scheme, h.target.Host, h.target.Host
	return h.base.RoundTrip(req)
}
