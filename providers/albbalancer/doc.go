// Package albbalancer is a providers.Balancer on an Elastic Load Balancing
// v2 application load balancer (ALB) shared by every app of a rack.
//
//	bal := albbalancer.New(elasticloadbalancingv2.NewFromConfig(cfg), &albbalancer.Options{
//		LoadBalancer:   "production",              // found, or created on first use
//		Subnets:        []string{"subnet-0a", "subnet-0b"},
//		SecurityGroups: []string{"sg-0abc"},
//		Domain:         "apps.example.com",        // default hosts <app>-<process>.apps.example.com
//		Certificate:    "arn:aws:acm:...:certificate/...",
//	})
//	route, err := bal.EnsureRoute(ctx, providers.RouteSpec{App: "shop", Process: "web", Port: 8080})
//
// # Routes
//
// The rack's load balancer is Options.LoadBalancer: an ARN adopts an
// existing load balancer; a name finds the load balancer of that name or
// creates it on first use. It gets an HTTP listener (port 80) when the
// first HTTP route needs it and an HTTPS listener (port 443) when the first
// HTTPS or HTTP/2 route does, each answering requests no rule matches with
// a fixed 404. Listeners that exist already (on an adopted load balancer)
// are used as they are.
//
// Each routed process is a route whose ID is
// providers.ScopedName(Options.Namespace, app, process): "shop-web" without
// a namespace, "shop-web-<10 hexadecimal digits>" in one. It owns a
// target group of that name and one listener rule forwarding to it.
// Target group names are unique per account and region (at most 32
// characters), so racks sharing an account, and the two ALB balancers of
// a balancer migration, give each balancer a namespace of its own. The
// budget: at most 17 characters of "<app>-<process>" kept readable, a
// hyphen and the hash (28), and "-<set>" for the target group of another
// target set (32). The rule
// matches the RouteSpec's Host (host header) and Path (a prefix: "/api"
// matches "/api" and "/api/..."; a path holding * or ? is used as an ALB
// path pattern). A spec with neither routes the host
// "<app>-<process>.<Options.Domain>"; without a Domain such a spec is
// ErrInvalid, since a shared load balancer needs a host or a path to tell
// apps apart. Route.Endpoint is the URL clients use: the host (or the load
// balancer's DNS name for path-only routes) and the path prefix, for
// example "https://shop-web.apps.example.com/" or
// "http://production-123.us-east-1.elb.amazonaws.com/shop/". Point the DNS
// records of route hosts at the load balancer's DNS name, which
// Balancer.LoadBalancer returns.
//
// Rule priorities are stable and collision-free: rules with a host and a
// path come first, then host-only rules (exact hosts before wildcards),
// then path-only rules, longer path prefixes before shorter ones. Within
// its band a route starts at a slot derived from its ID and takes the
// next free priority, so it gets the same priority each time its slot is
// free. A route whose host and path equal another route's is ErrConflict.
// When a writer elsewhere takes a priority first (PriorityInUse), the
// listener is read again and another priority is tried; when two writers
// create a rule for one route at once, both keep the same one and delete
// the other.
//
// The target group forwards HTTP/1.1 to the process's port. Its health
// check comes from RouteSpec.Health: path ("/"), interval (10s, 5-300s),
// timeout (5s, 2-120s, shorter than the interval), healthy (2) and
// unhealthy (3) thresholds (2-10); durations round up to whole seconds.
// RouteSpec.DeregistrationDelay (30s, at most 3600s) is the target group's
// deregistration_delay.timeout_seconds. HTTPS routes use the HTTPS
// listener: the first certificate (Options.Certificate, or the first
// route's) is the listener's default, and each route's own certificate is
// added to the listener for SNI. HTTP2 routes are HTTPS routes that also
// turn on routing.http2.enabled, an attribute of the whole load balancer
// (on by default on AWS), so clients negotiate HTTP/2; HTTPS routes on the
// same load balancer then accept HTTP/2 too.
//
// EnsureRoute is idempotent and changes only what differs from the spec:
// an unchanged spec writes nothing. A load balancer, listener or target
// group that exists is found and reused, never duplicated. AWS answers a
// repeated identical create with the existing resource, while emulators
// answer with a duplicate-name error; both are handled by using the
// existing resource. Target group names are unique per account and region,
// so a target group of the route's name is adopted only when its tags
// (TagBalancer, TagRoute, TagSet) name this load balancer, route and set;
// otherwise EnsureRoute is ErrConflict. A protocol change moves the rule
// to the other listener, keeping the route's target sets and weights.
// DeleteRoute deletes the route's rule and target groups and leaves the
// shared load balancer and listeners, and the certificates added to the
// HTTPS listener (another route may use them). HTTPS routes are not
// reachable over plain HTTP: no redirect rule is made on the HTTP
// listener.
//
// # Health
//
// Health reads the route's rule (one DescribeRules call, through the rule
// ARN the balancer remembers) and the health of each target set (one
// DescribeTargetHealth call per set). Targets are "<ip or instance
// id>:<port>". ELBv2 states map as: healthy → TargetHealthy, initial →
// TargetInitial, unused → TargetUnused, draining and unhealthy.draining →
// TargetDraining, unhealthy and unavailable → TargetUnhealthy, each with
// the ELBv2 reason code and description as Reason
// ("Target.ResponseCodeMismatch: Health checks failed with these codes:
// [502]").
//
// # Capabilities
//
// Balancer implements providers.WeightShifter through weighted forward
// actions: EnsureTargetSet creates the target group
// "<route ID>-<set>" with the default target
// group's settings and adds it to the rule's forward action at weight 0;
// SetWeights writes the weights in percent (ELBv2 takes 0-999); Weights
// reads them back (weights set by hand in other proportions are scaled to
// percent and rounded); DeleteTargetSet removes a set without weight. The
// root package's blue/green and canary deploys need it. A route can have
// at most five target sets, the ALB limit of a forward action.
//
// # Pairing with a scheduler
//
// Route.Binding and the bindings of target sets are
// providers.BindingTargetGroup with the target group ARN as Target and the
// process's container port as Port. A target group can serve one load
// balancer only. The target type decides which tasks can join it:
//
//   - TargetIP (the default): tasks with awsvpc networking, which is every
//     Fargate task; package ecsscheduler runs tasks bound to a target group
//     on Fargate with awsvpc.
//   - TargetInstance: tasks on the EC2 launch type with bridge or host
//     networking, registered by instance and host port.
//
// A scheduler that implements providers.BindingAcceptor without accepting
// BindingTargetGroup is refused by the root before any change.
//
// # Errors
//
// ELBv2 errors are mapped by the rules of the internal awserr package and
// wrap both the sentinel and the SDK error: LoadBalancerNotFound,
// TargetGroupNotFound, ListenerNotFound and RuleNotFound are
// providers.ErrNotFound (and so is an empty list where AWS would answer
// with those: lookups of missing resources are not errors inside
// EnsureRoute and DeleteRoute); DuplicateLoadBalancerName,
// DuplicateTargetGroupName and DuplicateListener are handled by adopting
// the existing resource; PriorityInUse is retried with another priority;
// CertificateNotFound is providers.ErrInvalid (the spec names a
// certificate that does not exist); ResourceInUse (a target group still in
// use right after its rule was deleted) is retried a few times and is
// otherwise providers.ErrConflict;
// ValidationError, InvalidConfigurationRequest and the TooMany... limits
// are providers.ErrInvalid; AccessDenied is providers.ErrPermission;
// Throttling is providers.ErrThrottled; 5xx answers and transport failures
// are providers.ErrUnavailable. Resources owned by something else are
// providers.ErrConflict. Invalid specs are providers.ErrInvalid before any
// call. A canceled context is returned as the context's error.
//
// # Permissions
//
// The caller needs these IAM actions:
//
//	elasticloadbalancing:DescribeLoadBalancers
//	elasticloadbalancing:CreateLoadBalancer              (first use, unless adopted)
//	elasticloadbalancing:DescribeLoadBalancerAttributes  (HTTP2 routes)
//	elasticloadbalancing:ModifyLoadBalancerAttributes    (HTTP2 routes)
//	elasticloadbalancing:DescribeListeners
//	elasticloadbalancing:CreateListener
//	elasticloadbalancing:AddListenerCertificates         (HTTPS routes with their own certificate)
//	elasticloadbalancing:DescribeTargetGroups
//	elasticloadbalancing:CreateTargetGroup
//	elasticloadbalancing:ModifyTargetGroup
//	elasticloadbalancing:DeleteTargetGroup
//	elasticloadbalancing:DescribeTargetGroupAttributes
//	elasticloadbalancing:ModifyTargetGroupAttributes
//	elasticloadbalancing:DescribeRules
//	elasticloadbalancing:CreateRule
//	elasticloadbalancing:ModifyRule
//	elasticloadbalancing:SetRulePriorities
//	elasticloadbalancing:DeleteRule
//	elasticloadbalancing:DescribeTargetHealth
//	elasticloadbalancing:DescribeTags
//	elasticloadbalancing:AddTags                         (also required to create tagged resources)
//
// Creating the first load balancer of an account also needs
// iam:CreateServiceLinkedRole for elasticloadbalancing.amazonaws.com,
// unless the role exists.
package albbalancer
