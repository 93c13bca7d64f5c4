package awsmigration_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/internal/elbtest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/elbbalancer"
	"github.com/convox-go/convox/providers/fake"
)

// prober stands in for the users of one endpoint. Neither the classic ELB
// test server nor the emulators' ELBv2 carry traffic, so a request is
// resolved the way a load balancer resolves it: after the targets are
// brought to the running tasks (as ECS does), it succeeds when the load
// balancer has a healthy target, and fails otherwise.
type prober struct {
	b     providers.Balancer
	route string

	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	requests int
	failed   []string
}

// probe starts requests to route on b, one after the other, until Stop.
func probe(b providers.Balancer, route string) *prober {
	p := &prober{b: b, route: route, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			p.request()
		}
	}()
	return p
}

func (p *prober) request() {
	hs, err := p.b.Health(context.Background(), p.route)
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	default:
		healthy := 0
		for _, h := range hs {
			if h.State == providers.TargetHealthy {
				healthy++
			}
		}
		if healthy == 0 {
			reason = fmt.Sprintf("no healthy target among %v", hs)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if reason != "" {
		p.failed = append(p.failed, reason)
	}
}

// Stop ends the requests and returns how many were made and the reasons
// of those that failed. At least one request is made.
func (p *prober) Stop() (int, []string) {
	p.request()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests, p.failed
}

// serialAttacher runs one Sync at a time: ECS keeps a service's
// registrations with one writer, while here the requests and the deploy's
// health checks sync concurrently (two Syncs deregistering one target
// would see the second refused).
type serialAttacher struct {
	mu  sync.Mutex
	att *elbtest.Attacher
}

func (a *serialAttacher) Sync(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.att.Sync(ctx)
}

// serialSynced is a balancer whose Health first syncs the registrations,
// as synced does, one Sync at a time.
type serialSynced struct {
	providers.Balancer
	att *serialAttacher
}

// Health implements providers.Balancer.
func (s serialSynced) Health(ctx context.Context, id string) ([]providers.TargetHealth, error) {
	if err := s.att.Sync(ctx); err != nil {
		return nil, err
	}
	return s.Balancer.Health(ctx, id)
}

// TestClassicELBToALBMigrationOnECS moves an ECS app from a classic load
// balancer (package elbbalancer, on the elbtest server) to an ALB
// (package albbalancer, on each emulator), with the ECS scheduler on the
// ecstest server: StartBalancerMigration runs a paired service attached to
// the ALB's target group beside the service on the classic load balancer,
// and both serve; FinishBalancerMigration retires the old service and the
// classic load balancer, AbortBalancerMigration the paired service and the
// ALB's route. Requests to each endpoint never fail while it serves, and
// the state is checked through the AWS APIs.
func TestClassicELBToALBMigrationOnECS(t *testing.T) {
	finishAndAbort(t, classicToALB)
}

// finishAndAbort runs migrate on each emulator twice: ending the migration
// with Finish and with Abort.
func finishAndAbort(t *testing.T, migrate func(t *testing.T, e awstest.Emulator, finish bool)) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		for _, finish := range []bool{true, false} {
			name := "abort"
			if finish {
				name = "finish"
			}
			t.Run(name, func(t *testing.T) { migrate(t, e, finish) })
		}
	})
}

// migrationHarness returns a harness on the emulator e with an ECS server
// stepping on its own and a store table, and the subnets and security
// groups a load balancer may be created in there.
func migrationHarness(t *testing.T, e awstest.Emulator) (h *harness, subnets, sgs []string) {
	cfg := e.Config()
	h = &harness{t: t, cfg: cfg, ecs: ecstest.New(t, &ecstest.Options{AutoStep: true}), table: awstest.Name(t, "store")}
	if err := dynamostore.EnsureTable(t.Context(), dynamodb.NewFromConfig(cfg), h.table); err != nil {
		t.Fatalf("store table: %v", err)
	}
	subnets, sgs = lbSubnets(t, e)
	return h, subnets, sgs
}

// lbSubnets returns the subnets and security groups a load balancer may
// be created in on the emulator e: moto creates load balancers only in
// subnets of its EC2 (AWS requires existing subnets too; kumo does not
// check).
func lbSubnets(t *testing.T, e awstest.Emulator) (subnets, sgs []string) {
	if e.Backend != awstest.Moto {
		return []string{"subnet-a", "subnet-b"}, []string{"sg-1"}
	}
	subnets, sg := awstest.Subnets(t, e.Config())
	return subnets, []string{sg}
}

// endMigration ends the migration of web with Finish or Abort and checks
// that the users of the endpoint that stays served throughout and those
// of the one that goes were served until it went. oldName and newName
// name the endpoints in failures.
func endMigration(t *testing.T, web *convox.AppClient, finish bool, oldUsers, newUsers *prober, oldName, newName string) {
	t.Helper()
	if finish {
		// The users of the old endpoint have moved to the new one.
		checkRequests(t, oldName+", until Finish", oldUsers)
		if _, err := web.FinishBalancerMigration(t.Context(), nil); err != nil {
			t.Fatalf("FinishBalancerMigration: %v", err)
		}
		checkRequests(t, newName+", from Start to after Finish", newUsers)
		return
	}
	checkRequests(t, newName+", from Start to Abort", newUsers)
	if err := web.AbortBalancerMigration(t.Context(), nil); err != nil {
		t.Fatalf("AbortBalancerMigration: %v", err)
	}
	checkRequests(t, oldName+", throughout", oldUsers)
}

func classicToALB(t *testing.T, e awstest.Emulator, finish bool) {
	ctx := t.Context()
	h, subnets, sgs := migrationHarness(t, e)
	elbSrv := elbtest.New(t)
	elbAPI := elb.NewFromConfig(awstest.ConfigFor(elbSrv.URL))
	elbv2API := elbv2.NewFromConfig(h.cfg)
	ecsAPI := h.ecsClient()
	att := &serialAttacher{att: &elbtest.Attacher{ECS: ecsAPI, Cluster: cluster, ELB: elbAPI, ELBv2: elbv2API}}
	lbName := awstest.Name(t, "alb")
	classic := serialSynced{elbbalancer.New(elbAPI, &elbbalancer.Options{Subnets: subnets[:1]}), att}
	alb := serialSynced{albbalancer.New(elbv2API, &albbalancer.Options{LoadBalancer: lbName, Subnets: subnets, SecurityGroups: sgs, Domain: "apps.example.com"}), att}
	named := []convox.Named[providers.Balancer]{{Name: "elb", Provider: classic}, {Name: "alb", Provider: alb}}

	fr := fake.New(nil)
	app := awstest.Name(t, "shop")
	fr.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
	fr.Push(app, "v2", &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"VERSION=2"}})
	c := h.client(convox.Rack{Registry: fr.Registry(), Logs: fr.Logs(), Balancers: named}, nil)
	if _, err := c.CreateApp(ctx, app, &convox.AppSpec{Balancer: "elb"}); err != nil {
		t.Fatal(err)
	}
	web := c.App(app)
	if _, err := web.Deploy(ctx, convox.ReleaseSpec{Image: app + ":v1", Processes: []convox.Process{
		{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}},
	}}, nil); err != nil {
		t.Fatalf("deploy on the classic load balancer: %v", err)
	}
	route := app + "-web"
	oldUsers := probe(classic, route)

	m, err := web.StartBalancerMigration(ctx, "alb", nil)
	if err != nil {
		t.Fatalf("StartBalancerMigration: %v", err)
	}
	if diff := cmp.Diff(map[string]string{"web": "http://" + app + "-web.apps.example.com/"}, withScheme(m.Endpoints)); diff != "" {
		t.Errorf("new endpoints (-want +got):\n%s", diff)
	}
	newUsers := probe(alb, route)

	// Both serve: the service on the classic load balancer and a paired
	// one on the ALB's target group, two healthy targets each.
	tg := targetGroupOf(t, ecsAPI, app)
	type state struct {
		Services       []string // "<launch type> <balancers> <release>" of each ACTIVE service
		ClassicHealthy int      // InService instances of the classic load balancer (-1: it is gone)
		ALBHealthy     int      // healthy targets of the ALB's target group (-1: it is gone)
	}
	look := func() state {
		t.Helper()
		if err := att.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return state{Services: ecsServices(t, ecsAPI, app), ClassicHealthy: classicInService(t, elbAPI, route), ALBHealthy: targetsHealthy(t, elbv2API, tg)}
	}
	during := state{Services: []string{"EC2 classic:" + route + " R1", "FARGATE target-group:" + route + " R1"}, ClassicHealthy: 2, ALBHealthy: 2}
	if diff := cmp.Diff(during, look()); diff != "" {
		t.Errorf("after StartBalancerMigration (-want +got):\n%s", diff)
	}

	// A deploy during the migration runs on both.
	r2, err := web.Deploy(ctx, convox.ReleaseSpec{Image: app + ":v2"}, nil)
	if err != nil {
		t.Fatalf("deploy during the migration: %v", err)
	}
	during.Services = []string{"EC2 classic:" + route + " " + r2.ID, "FARGATE target-group:" + route + " " + r2.ID}
	if diff := cmp.Diff(during, look()); diff != "" {
		t.Errorf("after a deploy during the migration (-want +got):\n%s", diff)
	}

	endMigration(t, web, finish, oldUsers, newUsers, "the classic endpoint", "the ALB endpoint")
	want := state{Services: []string{"EC2 classic:" + route + " " + r2.ID}, ClassicHealthy: 2, ALBHealthy: -1}
	if finish {
		want = state{Services: []string{"FARGATE target-group:" + route + " " + r2.ID}, ClassicHealthy: -1, ALBHealthy: 2}
	}
	h.ecs.Settle()
	if diff := cmp.Diff(want, look()); diff != "" {
		t.Errorf("after the migration ended (-want +got):\n%s", diff)
	}
	a, err := web.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantBalancer := "elb"
	if finish {
		wantBalancer = "alb"
	}
	if a.Providers.Balancer != wantBalancer || a.MigratingTo != "" {
		t.Errorf("app balancer %q migrating to %q, want %q and none", a.Providers.Balancer, a.MigratingTo, wantBalancer)
	}
}

func withScheme(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !strings.Contains(v, "://") {
			v = "http://" + v + "/"
		}
		out[k] = v
	}
	return out
}

func checkRequests(t *testing.T, what string, p *prober) {
	t.Helper()
	n, failed := p.Stop()
	if len(failed) > 0 {
		t.Errorf("%s: %d of %d requests failed, first: %s", what, len(failed), n, failed[0])
	}
	t.Logf("%s: %d requests, %d failed", what, n, len(failed))
}

// ecsServices describes the app's ACTIVE services through the ECS API, as
// "<launch type> <kind>:<balancer> <release>", sorted.
func ecsServices(t *testing.T, api *ecs.Client, app string) []string {
	t.Helper()
	list, err := api.ListServices(t.Context(), &ecs.ListServicesInput{Cluster: aws.String(cluster)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, arn := range list.ServiceArns {
		if n := arn[strings.LastIndexByte(arn, '/')+1:]; strings.HasPrefix(n, app+"_") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	out, err := api.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: names, Include: []ecstypes.ServiceField{ecstypes.ServiceFieldTags}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, svc := range out.Services {
		if aws.ToString(svc.Status) != "ACTIVE" {
			continue
		}
		var lbs []string
		for _, lb := range svc.LoadBalancers {
			if lb.LoadBalancerName != nil {
				lbs = append(lbs, "classic:"+*lb.LoadBalancerName)
			} else {
				parts := strings.Split(aws.ToString(lb.TargetGroupArn), "/")
				lbs = append(lbs, "target-group:"+parts[len(parts)-2])
			}
		}
		release := ""
		for _, tag := range svc.Tags {
			if aws.ToString(tag.Key) == "convox:release" {
				release = aws.ToString(tag.Value)
			}
		}
		got = append(got, fmt.Sprintf("%s %s %s", svc.LaunchType, strings.Join(lbs, ","), release))
	}
	slices.Sort(got)
	return got
}

// classicInService counts the InService instances of a classic load
// balancer, -1 when it does not exist.
func classicInService(t *testing.T, api *elb.Client, name string) int {
	t.Helper()
	out, err := api.DescribeInstanceHealth(t.Context(), &elb.DescribeInstanceHealthInput{LoadBalancerName: aws.String(name)})
	if err != nil {
		if strings.Contains(err.Error(), "LoadBalancerNotFound") {
			return -1
		}
		t.Fatal(err)
	}
	n := 0
	for _, s := range out.InstanceStates {
		if aws.ToString(s.State) == "InService" {
			n++
		}
	}
	return n
}

// targetGroupOf returns the ARN of the target group an ACTIVE service of
// the app is attached to, read through the ECS API.
func targetGroupOf(t *testing.T, api *ecs.Client, app string) string {
	t.Helper()
	list, err := api.ListServices(t.Context(), &ecs.ListServicesInput{Cluster: aws.String(cluster)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, arn := range list.ServiceArns {
		if n := arn[strings.LastIndexByte(arn, '/')+1:]; strings.HasPrefix(n, app+"_") {
			names = append(names, n)
		}
	}
	out, err := api.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: names})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range out.Services {
		for _, lb := range svc.LoadBalancers {
			if lb.TargetGroupArn != nil && aws.ToString(svc.Status) == "ACTIVE" {
				return *lb.TargetGroupArn
			}
		}
	}
	t.Fatalf("no service of %s is attached to a target group", app)
	return ""
}

// targetsHealthy counts the healthy targets of a target group, -1 when it
// does not exist.
func targetsHealthy(t *testing.T, api *elbv2.Client, arn string) int {
	t.Helper()
	out, err := api.DescribeTargetHealth(t.Context(), &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(arn)})
	if err != nil {
		if errors.As(err, new(*elbv2types.TargetGroupNotFoundException)) {
			return -1
		}
		t.Fatal(err)
	}
	n := 0
	for _, d := range out.TargetHealthDescriptions {
		if d.TargetHealth != nil && d.TargetHealth.State == "healthy" {
			n++
		}
	}
	return n
}

// TestALBToALBMigrationOnECS moves an ECS app between two ALBs of one
// account, each balancer in its own namespace so that their target groups
// differ (without namespaces the move is refused: TestBalancerMigrationOnECS).
// While both serve, the one service is attached to both target groups;
// Finish leaves it on the new one and deletes the old, Abort the reverse.
func TestALBToALBMigrationOnECS(t *testing.T) {
	finishAndAbort(t, albToALB)
}

func albToALB(t *testing.T, e awstest.Emulator, finish bool) {
	ctx := t.Context()
	h, subnets, sgs := migrationHarness(t, e)
	elbv2API := elbv2.NewFromConfig(h.cfg)
	ecsAPI := h.ecsClient()
	att := &serialAttacher{att: &elbtest.Attacher{ECS: ecsAPI, Cluster: cluster, ELBv2: elbv2API}}
	alb := func(ns string) serialSynced {
		return serialSynced{albbalancer.New(elbv2API, &albbalancer.Options{
			LoadBalancer: awstest.Name(t, "alb"), Subnets: subnets, SecurityGroups: sgs, Domain: ns + ".example.com", Namespace: ns,
		}), att}
	}
	oldB, newB := alb("blue"), alb("green")
	named := []convox.Named[providers.Balancer]{{Name: "blue", Provider: oldB}, {Name: "green", Provider: newB}}

	fr := fake.New(nil)
	app := awstest.Name(t, "shop")
	fr.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
	c := h.client(convox.Rack{Registry: fr.Registry(), Logs: fr.Logs(), Balancers: named}, nil)
	if _, err := c.CreateApp(ctx, app, &convox.AppSpec{Balancer: "blue"}); err != nil {
		t.Fatal(err)
	}
	web := c.App(app)
	r1, err := web.Deploy(ctx, convox.ReleaseSpec{Image: app + ":v1", Processes: []convox.Process{
		{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}},
	}}, nil)
	if err != nil {
		t.Fatalf("deploy on the first ALB: %v", err)
	}
	oldRoute, newRoute := providers.ScopedName("blue", app, "web"), providers.ScopedName("green", app, "web")
	oldUsers := probe(oldB, oldRoute)
	if _, err := web.StartBalancerMigration(ctx, "green", nil); err != nil {
		t.Fatalf("StartBalancerMigration: %v", err)
	}
	newUsers := probe(newB, newRoute)
	oldTG, newTG := targetGroupNamed(t, elbv2API, oldRoute), targetGroupNamed(t, elbv2API, newRoute)
	type state struct {
		Services               []string
		OldHealthy, NewHealthy int // -1: the target group is gone
	}
	look := func() state {
		t.Helper()
		if err := att.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return state{ecsServices(t, ecsAPI, app), targetsHealthy(t, elbv2API, oldTG), targetsHealthy(t, elbv2API, newTG)}
	}
	both := state{Services: []string{"FARGATE target-group:" + oldRoute + ",target-group:" + newRoute + " " + r1.ID}, OldHealthy: 2, NewHealthy: 2}
	if diff := cmp.Diff(both, look()); diff != "" {
		t.Errorf("after StartBalancerMigration (-want +got):\n%s", diff)
	}
	endMigration(t, web, finish, oldUsers, newUsers, "the first ALB's endpoint", "the second ALB's endpoint")
	want := state{Services: []string{"FARGATE target-group:" + oldRoute + " " + r1.ID}, OldHealthy: 2, NewHealthy: -1}
	if finish {
		want = state{Services: []string{"FARGATE target-group:" + newRoute + " " + r1.ID}, OldHealthy: -1, NewHealthy: 2}
	}
	h.ecs.Settle()
	if diff := cmp.Diff(want, look()); diff != "" {
		t.Errorf("after the migration ended (-want +got):\n%s", diff)
	}
}

// targetGroupNamed returns the ARN of the target group name.
func targetGroupNamed(t *testing.T, api *elbv2.Client, name string) string {
	t.Helper()
	out, err := api.DescribeTargetGroups(t.Context(), &elbv2.DescribeTargetGroupsInput{Names: []string{name}})
	if err != nil || len(out.TargetGroups) != 1 {
		t.Fatalf("DescribeTargetGroups(%s) = %v, %v", name, out, err)
	}
	return aws.ToString(out.TargetGroups[0].TargetGroupArn)
}

// TestTwoRacksDeployOneAppNameSideBySide deploys an app of one name
// through two racks sharing an account (each emulator's ELBv2 and
// DynamoDB, one ECS test server): each rack has its own cluster, ALB
// balancer namespace and store namespace, and each serves its own
// release; deleting the app from one rack leaves the other's serving.
func TestTwoRacksDeployOneAppNameSideBySide(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		ctx := t.Context()
		cfg := e.Config()
		srv := ecstest.New(t, &ecstest.Options{AutoStep: true})
		table := awstest.Name(t, "store")
		db := dynamodb.NewFromConfig(cfg)
		if err := dynamostore.EnsureTable(ctx, db, table); err != nil {
			t.Fatal(err)
		}
		subnets, sgs := lbSubnets(t, e)
		elbv2API := elbv2.NewFromConfig(cfg)
		ecsAPI := ecs.NewFromConfig(awstest.ConfigFor(srv.URL))
		app := awstest.Name(t, "shop")
		fr := fake.New(nil)
		fr.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
		fr.Push(app, "v2", &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"VERSION=2"}})

		type rack struct {
			name string
			cl   string // the cluster, also the balancer's and the store's namespace
			c    *convox.Client
			b    providers.Balancer
			att  *serialAttacher
		}
		newRack := func(name, image string) rack {
			cl := awstest.Name(t, name)
			att := &serialAttacher{att: &elbtest.Attacher{ECS: ecsAPI, Cluster: cl, ELBv2: elbv2API}}
			b := serialSynced{albbalancer.New(elbv2API, &albbalancer.Options{
				LoadBalancer: awstest.Name(t, "alb"), Subnets: subnets, SecurityGroups: sgs, Domain: name + ".example.com", Namespace: cl,
			}), att}
			c, err := convox.New(convox.Rack{
				Registry: fr.Registry(), Logs: fr.Logs(), Balancer: b,
				Scheduler: ecsscheduler.New(ecsAPI, &ecsscheduler.Options{Cluster: cl, Subnets: []string{"subnet-a"}}),
				Store:     dynamostore.New(db, table, &dynamostore.Options{Namespace: cl}),
			}, &convox.Options{PollInterval: 5 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond, Timeout: time.Minute, CompensateTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateApp(ctx, app, nil); err != nil {
				t.Fatalf("rack %s: %v", name, err)
			}
			if _, err := c.App(app).Deploy(ctx, convox.ReleaseSpec{Image: app + ":" + image, Processes: []convox.Process{
				{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}},
			}}, nil); err != nil {
				t.Fatalf("deploy %s on rack %s: %v", image, name, err)
			}
			return rack{name: name, cl: cl, c: c, b: b, att: att}
		}
		racks := []rack{newRack("east", "v1"), newRack("west", "v2")}
		var endpoints []string
		for _, r := range racks {
			a, err := r.c.App(app).Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			endpoints = append(endpoints, a.Endpoints["web"])
			if n := healthy(t, r.b, providers.ScopedName(r.cl, app, "web")); n != 2 {
				t.Errorf("rack %s: %d healthy targets, want 2", r.name, n)
			}
		}
		if endpoints[0] == endpoints[1] {
			t.Errorf("both racks serve %s at %s", app, endpoints[0])
		}
		if err := racks[0].c.DeleteApp(ctx, app); err != nil {
			t.Fatalf("delete from rack %s: %v", racks[0].name, err)
		}
		a, err := racks[1].c.App(app).Get(ctx)
		if err != nil {
			t.Fatalf("rack %s after the other deleted its app: %v", racks[1].name, err)
		}
		if a.Active == "" {
			t.Errorf("rack %s after the other deleted its app: no active release", racks[1].name)
		}
		if n := healthy(t, racks[1].b, providers.ScopedName(racks[1].cl, app, "web")); n != 2 {
			t.Errorf("rack %s after the other deleted its app: %d healthy targets, want 2", racks[1].name, n)
		}
	})
}
