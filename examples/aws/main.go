// Command aws deploys an app on AWS through the convox SDK: the image from
// ECR, the processes on ECS (Fargate), the route on a shared application load
// balancer, the logs in CloudWatch Logs and the release history in DynamoDB.
// It is one small program a deploy step of a CI pipeline could be, and it
// runs against real AWS as it is.
//
//	go build -o aws-deploy ./examples/aws
//	./aws-deploy -app shop -image shop:v1 -path /shop \
//		-subnets subnet-0a,subnet-0b -security-groups sg-0abc \
//		-execution-role arn:aws:iam::123456789012:role/ecsTaskExecutionRole
//
// Once per account and table, an administrator runs the program with
// -setup, which creates the DynamoDB table. A deploy creates the app when
// it is missing,
// resolves the image (already pushed to ECR, for example with docker push or
// crane) to its digest, and deploys it: the load balancer's rule and target
// group, the ECS service, then a wait until the tasks run and are healthy
// targets. It prints each progress event, then the endpoint and the load
// balancer's DNS name (point the DNS records of route hosts at it):
//
//	deployed shop R3 (sha256:3c4d...)
//	endpoint: http://convox-123.us-east-1.elb.amazonaws.com/shop/
//	load balancer: convox-123.us-east-1.elb.amazonaws.com
//
// A failed deploy (a crash loop, targets that never turn healthy, the
// timeout) is rolled back by the SDK to the previous release; the program
// then prints the step, the reason, the stopped tasks and the last log lines
// on standard error and exits 1. An interrupt during the wait cancels the
// deploy and restores the previous release before exiting; a second
// interrupt exits at once. An interrupt does not stop a rollback, which
// runs to its end (bounded by -timeout).
//
// Other modes, instead of deploying:
//
//	-status    the app, its active release, endpoint and release history
//	-rollback  roll back to the last healthy release (one call; a new release copying it)
//	-delete    delete the app's ECS services, routes, log group and history
//	-setup     create the DynamoDB table when it is missing (once)
//
// # Exit codes
//
//	0  success
//	1  the deploy failed (and was rolled back), or another operation failed
//	2  usage error: a missing or malformed flag or setting
//
// # Settings
//
// Credentials, region and endpoints come from the standard AWS configuration
// (config.LoadDefaultConfig): AWS_PROFILE and the shared files, environment
// credentials, SSO (run "aws sso login" first), instance and task roles.
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> (AWS_ENDPOINT_URL_ECS,
// AWS_ENDPOINT_URL_DYNAMODB, ...) redirect the clients, as with every AWS
// SDK. The program's own settings are flags; those below fall back to an
// environment variable when the flag is not given (the CONVOX_AWS_ names are
// those of the example CLI's AWS rack):
//
//	-app NAME                CONVOX_APP                    the app (required)
//	-image REF               CONVOX_IMAGE                  REPO:TAG, REPO@sha256:... or the full ECR URI (deploys)
//	-cluster NAME            CONVOX_AWS_CLUSTER            ECS cluster, created when missing (default "convox")
//	-subnets A,B             CONVOX_AWS_SUBNETS            subnets of the tasks and of a new load balancer (required)
//	-security-groups A,B     CONVOX_AWS_SECURITY_GROUPS    security groups of the same
//	-public-ip               CONVOX_AWS_PUBLIC_IP          public IPs for tasks in public subnets without NAT
//	-execution-role ARN      CONVOX_AWS_EXECUTION_ROLE     role ECS pulls images and writes logs with
//	-load-balancer NAME|ARN  CONVOX_AWS_LOAD_BALANCER      shared ALB; a name is created when missing (default "convox")
//	-domain DOMAIN           CONVOX_AWS_DOMAIN             the process answers on <app>-<process>.DOMAIN
//	-table NAME              CONVOX_AWS_TABLE              DynamoDB table, created by -setup (default "convox")
//	-namespace NAME          CONVOX_AWS_NAMESPACE          this rack's documents, target groups and log groups
//	-registry-endpoint URL   CONVOX_AWS_REGISTRY_ENDPOINT  see "Registry endpoint" below
//
// The process is set by flags only: -process (default "web"), -count (2),
// -port (8080, also passed as $PORT), -health-path ("/"), -path (a path
// prefix on the load balancer's DNS name; a deploy needs -domain or -path),
// -env KEY=VALUE (repeatable), -timeout (10m) and -poll-interval (1s, backing
// off to ten times it). "-help" lists every flag.
//
// # Registry endpoint
//
// The SDK reads an image's configuration (entrypoint, command, environment)
// over the registry's OCI data path when it resolves the image; ECS pulls
// the image itself. -registry-endpoint sends this program's data-path
// requests for the account's ECR registry host to another endpoint, keeping
// their paths: a pull-through mirror of the registry, or an emulator that
// serves the ECR API but not the data path. It is the ECR provider's
// Options.Endpoint: requests for exactly the registry host (the host of
// the provider's credentials) are redirected;
// requests for other hosts, such as the storage URLs ECR redirects layer
// downloads to, are sent unchanged. The image must be in ECR as well (the
// digest is always the one ECR reports) and the endpoint must serve the same
// content. The ECR credentials go along with the redirected requests, so
// point it only at an endpoint you trust. ECS is not affected.
//
// # IAM permissions
//
// Every mode but -setup needs exactly the actions the provider packages
// list (providers/ecrregistry, ecsscheduler, albbalancer, cwlogs and
// dynamostore), the policy providers/awsiam prints for them; a test runs the
// program against an emulator enforcing that policy:
//
//	ecr:GetAuthorizationToken, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer
//	ecs:CreateCluster, ecs:RegisterTaskDefinition, ecs:DescribeTaskDefinition,
//	ecs:ListTaskDefinitions, ecs:DeregisterTaskDefinition, ecs:CreateService,
//	ecs:UpdateService, ecs:DeleteService, ecs:DescribeServices, ecs:ListServices,
//	ecs:TagResource, ecs:ListTasks, ecs:DescribeTasks, ecs:StopTask
//	iam:PassRole on the execution role
//	elasticloadbalancing:Describe* (LoadBalancers, LoadBalancerAttributes,
//	Listeners, TargetGroups, TargetGroupAttributes, Rules, TargetHealth, Tags),
//	CreateLoadBalancer, CreateListener, CreateTargetGroup, ModifyTargetGroup,
//	DeleteTargetGroup, ModifyTargetGroupAttributes, CreateRule, ModifyRule,
//	SetRulePriorities, DeleteRule, AddTags
//	(and iam:CreateServiceLinkedRole for elasticloadbalancing.amazonaws.com the
//	first time an account creates a load balancer)
//	logs:CreateLogGroup, logs:CreateLogStream, logs:PutLogEvents,
//	logs:FilterLogEvents, logs:DeleteLogGroup (-delete)
//	dynamodb:GetItem, dynamodb:UpdateItem, dynamodb:DeleteItem, dynamodb:Query
//	ssm:PutParameter, ssm:DescribeParameters, ssm:DeleteParameters (secrets)
//
// -setup needs dynamodb:DescribeTable and dynamodb:CreateTable besides: it
// is separate so that the deploying principal cannot create tables.
//
// The execution role needs ecr:GetAuthorizationToken, ecr:BatchGetImage,
// ecr:GetDownloadUrlForLayer, logs:CreateLogGroup, logs:CreateLogStream and
// logs:PutLogEvents (the managed policy AmazonECSTaskExecutionRolePolicy
// covers all but logs:CreateLogGroup), and ssm:GetParameters on
// arn:aws:ssm:REGION:ACCOUNT:parameter/convox/CLUSTER/* to read the app's
// secrets (ecsscheduler's ExecutionRolePolicy prints the whole policy).
// Secrets are SSM SecureString parameters under /convox/CLUSTER/APP/; the
// DynamoDB table holds only their names.
//
// -delete leaves what apps share: the cluster, the load balancer and its
// listeners, the table, and the ECR repository and its images.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/dynamostore"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second interrupt ends the program at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run runs the program once and returns its exit code. Progress and
// results go to stdout, errors to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s, err := parseSettings(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "aws:", err)
		fmt.Fprintln(stderr, "run with -help for the flags and settings")
		return exitUsage
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "aws: load the AWS configuration: %v\n(check AWS_PROFILE and the shared configuration files; for SSO run: aws sso login)\n", err)
		return exitFailed
	}
	if cfg.Region == "" {
		fmt.Fprintln(stderr, "aws: no AWS region is configured: set AWS_REGION, or a region in your AWS profile")
		return exitUsage
	}
	if s.mode == modeSetup {
		if err := dynamostore.EnsureTable(ctx, dynamodb.NewFromConfig(cfg), s.table); err != nil {
			fmt.Fprintf(stderr, "aws: DynamoDB table %s: %v\n", s.table, err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "table %s ready\n", s.table)
		return exitOK
	}
	r, err := openRack(ctx, cfg, s)
	if err != nil {
		fmt.Fprintln(stderr, "aws:", err)
		return exitFailed
	}
	c, err := convox.New(r.Rack, &convox.Options{
		OnEvent:         func(e convox.Event) { fmt.Fprintln(stdout, e) },
		PollInterval:    s.pollPeriod,
		MaxPollInterval: 10 * s.pollPeriod,
		Timeout:         s.timeout,
	})
	if err != nil {
		fmt.Fprintln(stderr, "aws:", err)
		return exitFailed
	}
	p := &program{s: s, r: r, c: c, stdout: stdout, stderr: stderr}
	switch s.mode {
	case modeStatus:
		err = p.status(ctx)
	case modeRollback:
		err = p.rollback(ctx)
	case modeDelete:
		err = p.delete(ctx)
	default:
		err = p.deploy(ctx)
	}
	if err != nil {
		p.report(err)
		return exitFailed
	}
	return exitOK
}

// program is one run's rack, client and output.
type program struct {
	s      settings
	r      *rack
	c      *convox.Client
	stdout io.Writer
	stderr io.Writer
}

// deploy creates the app when it is missing and deploys the image.
func (p *program) deploy(ctx context.Context) error {
	if _, err := p.c.App(p.s.app).Get(ctx); errors.Is(err, providers.ErrNotFound) {
		_, err := p.c.CreateApp(ctx, p.s.app, nil)
		if errors.Is(err, providers.ErrNotFound) {
			// Creating a document finds nothing only when its table is missing.
			return fmt.Errorf("%w\n(create the DynamoDB table %s once with -setup)", err, p.s.table)
		}
		if err != nil && !errors.Is(err, providers.ErrAlreadyExists) {
			return err
		}
	} else if err != nil {
		return err
	}
	app := p.c.App(p.s.app)
	rel, err := app.CreateRelease(ctx, convox.ReleaseSpec{
		Image: p.s.image,
		Env:   p.s.env,
		Processes: []convox.Process{{
			Name: p.s.process, Count: p.s.count, Port: p.s.port,
			Health: providers.HealthCheck{Path: p.s.healthPath},
			Route:  convox.RouteConfig{Path: p.s.path},
		}},
		Description: "deployed by examples/aws",
	})
	if errors.Is(err, providers.ErrNotFound) {
		return fmt.Errorf("%w\n(push the image to ECR first, for example with docker push or crane push)", err)
	}
	if err != nil {
		return err
	}
	dep, err := app.Promote(ctx, rel.ID, nil)
	if err != nil {
		return err
	}
	if err := p.wait(ctx, dep); err != nil {
		return err
	}
	return p.done(ctx, "deployed", rel.ID)
}

// rollback rolls the app back to its last healthy release.
func (p *program) rollback(ctx context.Context) error {
	// A rollback is the way back to a release known to work, so an
	// interrupt does not stop it: it runs to its end, bounded by -timeout.
	ctx = context.WithoutCancel(ctx)
	rel, err := p.c.App(p.s.app).Rollback(ctx, convox.PreviousHealthy(), nil)
	if err != nil {
		return err
	}
	return p.done(ctx, "rolled back to "+rel.Parent+" as", rel.ID)
}

// wait waits for the deployment; when ctx ends first (an interrupt), it
// cancels the deployment, which restores the previous release.
func (p *program) wait(ctx context.Context, dep *convox.Deployment) error {
	err := dep.Wait(ctx)
	if err == nil || ctx.Err() == nil {
		return err
	}
	fmt.Fprintf(p.stderr, "aws: interrupted: canceling the deploy of %s and restoring the previous release\n", dep.Release)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if cerr := dep.Cancel(cctx); cerr != nil {
		return errors.Join(err, cerr)
	}
	return dep.Wait(cctx)
}

// done prints the outcome of a successful deploy or rollback.
func (p *program) done(ctx context.Context, what, id string) error {
	a, err := p.c.App(p.s.app).Get(ctx)
	if err != nil {
		return err
	}
	rel, err := p.c.App(p.s.app).Release(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.stdout, "%s %s %s (%s)\n", what, p.s.app, id, rel.Image.Digest)
	for _, proc := range rel.Processes {
		if e := a.Endpoints[proc.Name]; e != "" {
			fmt.Fprintf(p.stdout, "endpoint: %s\n", e)
		}
	}
	_, dns, err := p.r.alb.LoadBalancer(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.stdout, "load balancer: %s\n", dns)
	return nil
}

// status prints the app, its endpoints and its releases, newest first.
func (p *program) status(ctx context.Context) error {
	a, err := p.c.App(p.s.app).Get(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.stdout, "app: %s\n", a.Name)
	fmt.Fprintf(p.stdout, "active: %s\n", orNone(a.Active))
	if a.Deploying != "" {
		fmt.Fprintf(p.stdout, "deploying: %s\n", a.Deploying)
	}
	for _, proc := range slices.Sorted(maps.Keys(a.Endpoints)) {
		fmt.Fprintf(p.stdout, "endpoint: %s %s\n", proc, a.Endpoints[proc])
	}
	fmt.Fprintln(p.stdout, "releases:")
	tw := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	for rel, err := range p.c.App(p.s.app).Releases(ctx) {
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", rel.ID, rel.Status, rel.ImageRef, rel.Created.Format(time.RFC3339), rel.Reason)
	}
	return tw.Flush()
}

// delete deletes the app.
func (p *program) delete(ctx context.Context) error {
	if err := p.c.DeleteApp(ctx, p.s.app); err != nil {
		return err
	}
	fmt.Fprintf(p.stdout, "deleted %s\n", p.s.app)
	return nil
}

// report prints an error; a failed deploy with its step, reason, stopped
// tasks and last log lines.
func (p *program) report(err error) {
	var de *convox.DeployError
	if !errors.As(err, &de) {
		fmt.Fprintln(p.stderr, "aws:", err)
		return
	}
	w := p.stderr
	fmt.Fprintf(w, "deploy failed: %s %s\n", de.App, de.Release)
	fmt.Fprintf(w, "step: %s\n", de.Step)
	fmt.Fprintf(w, "reason: %s\n", de.Reason)
	switch {
	case de.RolledBack && de.Previous != "":
		fmt.Fprintf(w, "rolled back: %s is active again\n", de.Previous)
	case de.RolledBack:
		fmt.Fprintln(w, "rolled back: the first release's processes were stopped")
	default:
		fmt.Fprintf(w, "not rolled back: %v\n", de.Err)
	}
	if len(de.StoppedTasks) > 0 {
		fmt.Fprintln(w, "stopped tasks:")
		for _, t := range de.StoppedTasks {
			code := "exit code unknown"
			if t.ExitCode != nil {
				code = fmt.Sprintf("exit code %d", *t.ExitCode)
			}
			fmt.Fprintf(w, "  %s %s: %s: %s\n", t.Process, t.ID, code, t.Reason)
		}
	}
	if len(de.LastLogLines) > 0 {
		fmt.Fprintln(w, "last log lines:")
		for _, l := range de.LastLogLines {
			fmt.Fprintf(w, "  %s %s %s\n", l.Time.Format(time.RFC3339), l.Process, l.Message)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
