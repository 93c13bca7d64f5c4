package albbalancer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/elbbalancer"
)

// Example shows an AWS rack holding both balancers under names: the app
// "blog" stays on its classic load balancer while "shop" runs behind the
// shared ALB, each reporting its own endpoint. Moving an app from one to
// the other is the one line naming its balancer.
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	subnets, groups := []string{"subnet-0a", "subnet-0b"}, []string{"sg-0abc"}

	alb := albbalancer.New(elasticloadbalancingv2.NewFromConfig(cfg), &albbalancer.Options{
		LoadBalancer: "production", Subnets: subnets, SecurityGroups: groups,
		Domain: "apps.example.com", // shop is served at http://shop-web.apps.example.com/
	})
	elb := elbbalancer.New(elasticloadbalancing.NewFromConfig(cfg), &elbbalancer.Options{
		Subnets: subnets, SecurityGroups: groups,
	})
	rack := convox.Rack{
		Registry: ecrregistry.New(ecr.NewFromConfig(cfg), nil),
		Scheduler: ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{
			Cluster: "production", Subnets: subnets, SecurityGroups: groups,
			ExecutionRoleARN: "arn:aws:iam::123456789012:role/ecsTaskExecution",
		}),
		Balancers: []convox.Named[providers.Balancer]{{Name: "elb", Provider: elb}, {Name: "alb", Provider: alb}},
		Logs:      cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), nil),
		Store:     dynamostore.New(dynamodb.NewFromConfig(cfg), "convox", nil),
	}
	c, err := convox.New(rack, nil)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.CreateApp(ctx, "blog", &convox.AppSpec{Balancer: "elb"}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.CreateApp(ctx, "shop", &convox.AppSpec{Balancer: "alb"}); err != nil { // was "elb"
		log.Fatal(err)
	}
	for _, name := range []string{"blog", "shop"} {
		web := []convox.Process{{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}}}
		if _, err := c.App(name).Deploy(ctx, convox.ReleaseSpec{Image: name + ":v1", Processes: web}, nil); err != nil {
			log.Fatal(err)
		}
		app, err := c.App(name).Get(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(name, app.Providers.Balancer, app.Endpoints["web"])
	}

	// Canary and blue/green deploys need a balancer that splits traffic:
	// the ALB does, the classic load balancer does not.
	fmt.Println(convox.Rack{Registry: rack.Registry, Scheduler: rack.Scheduler, Balancer: elb, Logs: rack.Logs, Store: rack.Store}.Check(convox.CapWeightShifter))
}

// Example_singleBalancer is a rack with one balancer: swapping the classic
// load balancer for the ALB, for every app, is the Balancer line.
func Example_singleBalancer() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	rack := convox.Rack{
		Registry:  ecrregistry.New(ecr.NewFromConfig(cfg), nil),
		Scheduler: ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{Cluster: "production", Subnets: []string{"subnet-0a"}}),
		// Balancer: elbbalancer.New(elasticloadbalancing.NewFromConfig(cfg), nil),
		Balancer: albbalancer.New(elasticloadbalancingv2.NewFromConfig(cfg), &albbalancer.Options{Domain: "apps.example.com"}),
		Logs:     cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), nil),
		Store:    dynamostore.New(dynamodb.NewFromConfig(cfg), "convox", nil),
	}
	if err := rack.Check(convox.CapWeightShifter); err != nil {
		log.Fatal(err)
	}
	fmt.Println("the rack can run canary deploys")
}
