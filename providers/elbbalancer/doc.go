// Package elbbalancer is a providers.Balancer on classic Elastic Load
// Balancing: one classic load balancer per routed process.
//
//	bal := elbbalancer.New(elasticloadbalancing.NewFromConfig(cfg), &elbbalancer.Options{
//		Subnets:        []string{"subnet-0a", "subnet-0b"},
//		SecurityGroups: []string{"sg-0abc"},
//	})
//	route, err := bal.EnsureRoute(ctx, providers.RouteSpec{App: "shop", Process: "web", Port: 8080})
//	// route.Endpoint: "http://shop-web-1234567890.us-east-1.elb.amazonaws.com/"
//
// # Routes
//
// Each routed process gets a load balancer named
// providers.ScopedName(Options.Namespace, app, process), which is also the
// route ID: "shop-web" without a namespace, "shop-web-<10 hexadecimal
// digits>" in one. Classic load balancer names are unique per account and
// region (at most 32 characters), so racks sharing an account give each
// balancer a namespace of its own. The budget: at most 17 characters of
// "<app>-<process>" kept readable, a hyphen and the hash, 28 in all. It has one listener: HTTP on port 80, or HTTPS on port 443 with
// the route's certificate (RouteSpec.Certificate, else
// Options.Certificate), forwarding HTTP to the process's port on the
// instances. Its health check is "HTTP:<port><path>" with the spec's
// interval (10s, 5-300s), timeout (5s, 2-60s, shorter than the interval)
// and healthy (2) and unhealthy (3) thresholds (2-10); durations round up
// to whole seconds. Connection draining is on, with
// RouteSpec.DeregistrationDelay as its timeout (30s, at most 3600s).
//
// A classic load balancer serves every host and path, so RouteSpec.Path
// must be empty or "/" and HTTP2 is not supported (both ErrInvalid: use
// package albbalancer for them). RouteSpec.Host only names the endpoint:
// Route.Endpoint is "http(s)://<host or the load balancer's DNS name>/".
//
// EnsureRoute is idempotent and changes only what differs from the spec:
// an unchanged spec writes nothing. An existing load balancer of the name
// is adopted when its TagRoute tag names the route, and is ErrConflict
// otherwise (names are unique per account and region). AWS answers a
// repeated identical CreateLoadBalancer with the existing load balancer and
// a different one with DuplicateLoadBalancerName; both are handled by
// reconciling the existing load balancer. A missing load balancer is found
// missing whether the service answers LoadBalancerNotFound or an empty
// list. A protocol change replaces the listener (the new one is created
// before the old port is deleted). DeleteRoute deletes the load balancer.
//
// # Health
//
// Health is one DescribeInstanceHealth call. Targets are instance IDs, in
// the default set. InService is TargetHealthy, or TargetDraining while
// the instance's deregistration is in progress; OutOfService is
// TargetInitial while its registration is in progress and TargetUnhealthy
// otherwise; Unknown is TargetInitial. Reason is the reason code and the
// description ("Instance: Instance has failed at least the
// UnhealthyThreshold number of health checks consecutively.").
//
// # Capabilities
//
// Balancer implements no optional capability. In particular it is not a
// providers.WeightShifter: a classic load balancer cannot split traffic
// between target sets, so the root package refuses blue/green and canary
// deploys on it (convox.Rack.Check with convox.CapWeightShifter reports
// it) before any change; rolling deploys work.
//
// # Pairing with a scheduler
//
// Route.Binding is providers.BindingClassicELB with the load balancer name
// as Target and the process's container port as Port. Classic load
// balancers register EC2 instances on a fixed instance port, so the tasks
// must run on the EC2 launch type with bridge or host networking and the
// host port equal to the container port: package ecsscheduler does exactly
// that for processes bound to a classic load balancer, and registers them
// through the ECS service. Fargate tasks (awsvpc) cannot join a classic
// load balancer; use package albbalancer for them.
//
// # Errors
//
// Errors are mapped by the rules of the internal awserr package and wrap
// both the sentinel and the SDK error: LoadBalancerNotFound is
// providers.ErrNotFound (Health of an unknown route; EnsureRoute and
// DeleteRoute treat it as "absent"); DuplicateLoadBalancerName is handled
// by adopting the existing load balancer; DuplicateListener is
// providers.ErrAlreadyExists; ValidationError, InvalidConfigurationRequest,
// InvalidScheme, InvalidSubnet, InvalidSecurityGroup and
// TooManyLoadBalancers are providers.ErrInvalid; CertificateNotFound is
// providers.ErrInvalid (the spec names a certificate that does not exist);
// Throttling and DependencyThrottle are providers.ErrThrottled;
// AccessDenied is providers.ErrPermission; 5xx answers and transport
// failures are providers.ErrUnavailable. A load balancer of the route's
// name that belongs to something else is providers.ErrConflict. Invalid
// specs are providers.ErrInvalid before any call. A canceled context is
// returned as the context's error.
//
// # Permissions
//
// The caller needs these IAM actions:
//
//	elasticloadbalancing:DescribeLoadBalancers
//	elasticloadbalancing:CreateLoadBalancer
//	elasticloadbalancing:DeleteLoadBalancer
//	elasticloadbalancing:CreateLoadBalancerListeners
//	elasticloadbalancing:DeleteLoadBalancerListeners
//	elasticloadbalancing:ConfigureHealthCheck
//	elasticloadbalancing:DescribeLoadBalancerAttributes
//	elasticloadbalancing:ModifyLoadBalancerAttributes
//	elasticloadbalancing:DescribeInstanceHealth
//	elasticloadbalancing:DescribeTags
//	elasticloadbalancing:AddTags             (required to create tagged load balancers)
//
// Creating the first load balancer of an account also needs
// iam:CreateServiceLinkedRole for elasticloadbalancing.amazonaws.com,
// unless the role exists. Instances are registered by ECS with its
// service role, not by this package.
package elbbalancer
