package elbbalancer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/awshealth"
	"github.com/convox-go/convox/providers"
)

// API is the part of the Elastic Load Balancing (classic) client the
// balancer uses; *elasticloadbalancing.Client implements it.
type API interface {
	CreateLoadBalancer(context.Context, *elb.CreateLoadBalancerInput, ...func(*elb.Options)) (*elb.CreateLoadBalancerOutput, error)
	DescribeLoadBalancers(context.Context, *elb.DescribeLoadBalancersInput, ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error)
	DeleteLoadBalancer(context.Context, *elb.DeleteLoadBalancerInput, ...func(*elb.Options)) (*elb.DeleteLoadBalancerOutput, error)
	CreateLoadBalancerListeners(context.Context, *elb.CreateLoadBalancerListenersInput, ...func(*elb.Options)) (*elb.CreateLoadBalancerListenersOutput, error)
	DeleteLoadBalancerListeners(context.Context, *elb.DeleteLoadBalancerListenersInput, ...func(*elb.Options)) (*elb.DeleteLoadBalancerListenersOutput, error)
	ConfigureHealthCheck(context.Context, *elb.ConfigureHealthCheckInput, ...func(*elb.Options)) (*elb.ConfigureHealthCheckOutput, error)
	DescribeLoadBalancerAttributes(context.Context, *elb.DescribeLoadBalancerAttributesInput, ...func(*elb.Options)) (*elb.DescribeLoadBalancerAttributesOutput, error)
	ModifyLoadBalancerAttributes(context.Context, *elb.ModifyLoadBalancerAttributesInput, ...func(*elb.Options)) (*elb.ModifyLoadBalancerAttributesOutput, error)
	DescribeInstanceHealth(context.Context, *elb.DescribeInstanceHealthInput, ...func(*elb.Options)) (*elb.DescribeInstanceHealthOutput, error)
	DescribeTags(context.Context, *elb.DescribeTagsInput, ...func(*elb.Options)) (*elb.DescribeTagsOutput, error)
	AddTags(context.Context, *elb.AddTagsInput, ...func(*elb.Options)) (*elb.AddTagsOutput, error)
}

// Options configure a Balancer. Every zero field takes its default.
type Options struct {
	// Subnets and SecurityGroups are those of the load balancers the
	// balancer creates (a VPC needs at least one subnet). Internal makes
	// them internal instead of internet-facing.
	Subnets        []string
	SecurityGroups []string
	Internal       bool
	// Certificate is the certificate (an ACM or IAM server certificate
	// ARN) of HTTPS routes that give none.
	Certificate string
	// HTTPPort and HTTPSPort are the listener ports (80 and 443).
	HTTPPort  int
	HTTPSPort int
	// Tags are added to every load balancer the balancer creates.
	Tags map[string]string
	// Namespace scopes the names of the balancer's load balancers, which
	// are unique per account and region: with one, a route's ID and load
	// balancer name is providers.ScopedName(Namespace, app, process), so
	// racks sharing an account never want the same load balancer. Empty
	// keeps the unscoped names "<app>-<process>". It must pass
	// providers.ValidateNamespace; EnsureRoute refuses it otherwise.
	Namespace string
}

// Tag keys the balancer sets on its load balancers. An existing load
// balancer of a route's name is adopted only when TagRoute names the route:
// classic load balancer names are unique per account and region, so one
// that belongs to something else is never taken over.
const (
	TagRoute   = "convox:route"   // the route ID
	TagApp     = "convox:app"     // the app
	TagProcess = "convox:process" // the process
)

// defaultDeregistered is the deregistration delay of a RouteSpec that
// sets none. Zero fields of its HealthCheck take
// providers.DefaultHealthCheck.
const defaultDeregistered = 30 * time.Second

// Balancer gives each routed process a classic load balancer of its own.
// It is safe for concurrent use; changes made through one Balancer are
// serialized.
type Balancer struct {
	api  API
	opts Options
	sem  chan struct{}
}

var _ providers.Balancer = (*Balancer)(nil)

// New returns a Balancer using api (usually an
// *elasticloadbalancing.Client). opts may be nil. New makes no call.
func New(api API, opts *Options) *Balancer {
	b := &Balancer{api: api, sem: make(chan struct{}, 1)}
	if opts != nil {
		b.opts = *opts
	}
	if b.opts.HTTPPort == 0 {
		b.opts.HTTPPort = 80
	}
	if b.opts.HTTPSPort == 0 {
		b.opts.HTTPSPort = 443
	}
	return b
}

func (b *Balancer) acquire(ctx context.Context) (func(), error) {
	select {
	case b.sem <- struct{}{}:
		return func() { <-b.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// route is a validated RouteSpec.
type route struct {
	name      string
	app       string
	process   string
	host      string
	listener  types.Listener
	healthURL string // the health check target, "HTTP:<port><path>"
	interval  int32
	timeout   int32
	healthy   int32
	unhealthy int32
	drain     int32
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// normalize validates spec and fills the defaults; failures match ErrInvalid.
func (b *Balancer) normalize(spec providers.RouteSpec) (route, error) {
	if err := providers.ValidateAppProcess(spec.App, spec.Process); err != nil {
		return route{}, err
	}
	if err := providers.ValidateNamespace(b.opts.Namespace); err != nil {
		return route{}, err
	}
	r := route{name: providers.ScopedName(b.opts.Namespace, spec.App, spec.Process), app: spec.App, process: spec.Process}
	if spec.Port < 1 || spec.Port > 65535 {
		return route{}, providers.Invalidf("route %s: port %d is outside 1-65535", r.name, spec.Port)
	}
	port := int32(spec.Port)
	switch spec.Protocol {
	case "", providers.HTTP:
		if spec.Certificate != "" {
			return route{}, providers.Invalidf("route %s: a certificate needs protocol https", r.name)
		}
		r.listener = types.Listener{Protocol: aws.String("HTTP"), LoadBalancerPort: int32(b.opts.HTTPPort), InstanceProtocol: aws.String("HTTP"), InstancePort: aws.Int32(port)}
	case providers.HTTPS:
		cert := or(spec.Certificate, b.opts.Certificate)
		if cert == "" {
			return route{}, providers.Invalidf("route %s: https needs a certificate (the route's or the balancer's)", r.name)
		}
		if !strings.HasPrefix(cert, "arn:") {
			return route{}, providers.Invalidf("route %s: certificate %q is not an ARN", r.name, cert)
		}
		r.listener = types.Listener{Protocol: aws.String("HTTPS"), LoadBalancerPort: int32(b.opts.HTTPSPort), InstanceProtocol: aws.String("HTTP"), InstancePort: aws.Int32(port), SSLCertificateId: aws.String(cert)}
	case providers.HTTP2:
		return route{}, providers.Invalidf("route %s: classic load balancers do not speak HTTP/2; use https, or an application load balancer", r.name)
	default:
		return route{}, providers.Invalidf("route %s: unknown protocol %q (use http or https)", r.name, spec.Protocol)
	}
	if spec.Path != "" && spec.Path != "/" {
		return route{}, providers.Invalidf("route %s: classic load balancers cannot route by path (%q); use an application load balancer", r.name, spec.Path)
	}
	host := strings.ToLower(spec.Host)
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return route{}, providers.Invalidf("route %s: host %q is not a host name", r.name, spec.Host)
		}
	}
	r.host = host

	h, err := awshealth.Check(r.name, spec.Health, awshealth.Classic)
	if err != nil {
		return route{}, err
	}
	r.healthURL = fmt.Sprintf("HTTP:%d%s", port, h.Path)
	r.interval, r.timeout, r.healthy, r.unhealthy = h.Interval, h.Timeout, h.Healthy, h.Unhealthy
	if spec.DeregistrationDelay < 0 {
		return route{}, providers.Invalidf("route %s: negative deregistration delay %v", r.name, spec.DeregistrationDelay)
	}
	drain := awshealth.Seconds(or(spec.DeregistrationDelay, defaultDeregistered))
	if drain > 3600 {
		return route{}, providers.Invalidf("route %s: deregistration delay %v is longer than 3600s", r.name, spec.DeregistrationDelay)
	}
	r.drain = int32(drain)
	return r, nil
}

// wrap maps an SDK error as awserr does, with the classic ELB codes it
// lacks: DependencyThrottle is throttling, and CertificateNotFound means
// the spec names a certificate that does not exist.
func wrap(op string, err error) error {
	switch awserr.Code(err) {
	case "DependencyThrottle":
		return awserr.As(op, providers.ErrThrottled, err)
	case "CertificateNotFound":
		return awserr.As(op, providers.ErrInvalid, err)
	}
	return awserr.Wrap(op, err)
}

func isNotFound(err error) bool { return errors.Is(err, providers.ErrNotFound) }

// describe returns the load balancer, or nil when it does not exist
// (LoadBalancerNotFound, or an empty list).
func (b *Balancer) describe(ctx context.Context, name string) (*types.LoadBalancerDescription, error) {
	out, err := b.api.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerNames: []string{name}})
	if err != nil {
		err = wrap("describe load balancer "+name, err)
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	for i := range out.LoadBalancerDescriptions {
		if aws.ToString(out.LoadBalancerDescriptions[i].LoadBalancerName) == name {
			return &out.LoadBalancerDescriptions[i], nil
		}
	}
	return nil, nil
}

// owned checks that the load balancer named name belongs to route name.
// found is false when it does not exist.
func (b *Balancer) owned(ctx context.Context, name string) (found bool, err error) {
	out, err := b.api.DescribeTags(ctx, &elb.DescribeTagsInput{LoadBalancerNames: []string{name}})
	if err != nil {
		err = wrap("describe tags of "+name, err)
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	listed := false
	for _, d := range out.TagDescriptions {
		if aws.ToString(d.LoadBalancerName) != name {
			continue
		}
		listed = true
		for _, t := range d.Tags {
			if aws.ToString(t.Key) == TagRoute && aws.ToString(t.Value) == name {
				return true, nil
			}
		}
	}
	if !listed {
		return false, nil // an emulator's answer for a missing load balancer
	}
	return true, fmt.Errorf("%w: load balancer %s exists and its %s tag does not name route %s", providers.ErrConflict, name, TagRoute, name)
}

func (b *Balancer) tags(r route) []types.Tag {
	var out []types.Tag
	keys := make([]string, 0, len(b.opts.Tags))
	for k := range b.opts.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(b.opts.Tags[k])})
	}
	return append(out,
		types.Tag{Key: aws.String(TagRoute), Value: aws.String(r.name)},
		types.Tag{Key: aws.String(TagApp), Value: aws.String(r.app)},
		types.Tag{Key: aws.String(TagProcess), Value: aws.String(r.process)})
}

// EnsureRoute creates the load balancer named
// providers.ResourceName(app, process, "") with one listener to the
// process's port, spec's health check and connection draining, or finds
// and updates it, changing only what differs. The route ID is the load
// balancer's name; the binding is BindingClassicELB with that name.
func (b *Balancer) EnsureRoute(ctx context.Context, spec providers.RouteSpec) (providers.Route, error) {
	r, err := b.normalize(spec)
	if err != nil {
		return providers.Route{}, err
	}
	if err := ctx.Err(); err != nil {
		return providers.Route{}, err
	}
	unlock, err := b.acquire(ctx)
	if err != nil {
		return providers.Route{}, err
	}
	defer unlock()

	d, err := b.describe(ctx, r.name)
	if err != nil {
		return providers.Route{}, err
	}
	var dns string
	created := false
	if d == nil {
		scheme := "internet-facing"
		if b.opts.Internal {
			scheme = "internal"
		}
		out, err := b.api.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{
			LoadBalancerName: aws.String(r.name),
			Listeners:        []types.Listener{r.listener},
			Subnets:          b.opts.Subnets,
			SecurityGroups:   b.opts.SecurityGroups,
			Scheme:           aws.String(scheme),
			Tags:             b.tags(r),
		})
		if err != nil {
			err = wrap("create load balancer "+r.name, err)
			if !errors.Is(err, providers.ErrAlreadyExists) {
				return providers.Route{}, err
			}
			// Created meanwhile with other settings: reconcile it.
			if d, err = b.describe(ctx, r.name); err != nil {
				return providers.Route{}, err
			}
			if d == nil {
				return providers.Route{}, fmt.Errorf("load balancer %s: %w: reported as existing but not found", r.name, providers.ErrUnavailable)
			}
		} else {
			// AWS returns the existing load balancer for an identical create,
			// which may have been made by someone else: check its tags.
			dns, created = aws.ToString(out.DNSName), true
		}
	}
	if _, err := b.owned(ctx, r.name); err != nil {
		return providers.Route{}, err
	}
	if d != nil {
		dns = aws.ToString(d.DNSName)
		if err := b.reconcileListeners(ctx, r, d.ListenerDescriptions); err != nil {
			return providers.Route{}, err
		}
	}
	if err := b.reconcileHealth(ctx, r, d); err != nil {
		return providers.Route{}, err
	}
	if err := b.reconcileDraining(ctx, r, created); err != nil {
		return providers.Route{}, err
	}
	return providers.Route{
		ID:       r.name,
		Endpoint: b.endpoint(r, dns),
		Binding:  providers.Binding{Kind: providers.BindingClassicELB, Target: r.name, Port: int(aws.ToInt32(r.listener.InstancePort))},
	}, nil
}

// endpoint is the URL clients reach the route at.
func (b *Balancer) endpoint(r route, dns string) string {
	scheme, def := "http", 80
	if aws.ToString(r.listener.Protocol) == "HTTPS" {
		scheme, def = "https", 443
	}
	host := or(r.host, dns)
	if p := int(r.listener.LoadBalancerPort); p != def {
		host += ":" + strconv.Itoa(p)
	}
	return scheme + "://" + host + "/"
}

func sameListener(a, b types.Listener) bool {
	return strings.EqualFold(aws.ToString(a.Protocol), aws.ToString(b.Protocol)) && a.LoadBalancerPort == b.LoadBalancerPort &&
		strings.EqualFold(aws.ToString(a.InstanceProtocol), aws.ToString(b.InstanceProtocol)) &&
		aws.ToInt32(a.InstancePort) == aws.ToInt32(b.InstancePort) && aws.ToString(a.SSLCertificateId) == aws.ToString(b.SSLCertificateId)
}

// reconcileListeners leaves exactly r's listener on the load balancer. A
// listener on another port is deleted after r's is created, so the load
// balancer always has one; a listener on r's port with other settings is
// replaced.
func (b *Balancer) reconcileListeners(ctx context.Context, r route, have []types.ListenerDescription) error {
	want := r.listener
	present := false
	var stale, clash []int32
	for _, ld := range have {
		if ld.Listener == nil {
			continue
		}
		l := *ld.Listener
		switch {
		case sameListener(l, want):
			present = true
		case l.LoadBalancerPort == want.LoadBalancerPort:
			clash = append(clash, l.LoadBalancerPort)
		default:
			stale = append(stale, l.LoadBalancerPort)
		}
	}
	if len(clash) > 0 {
		if _, err := b.api.DeleteLoadBalancerListeners(ctx, &elb.DeleteLoadBalancerListenersInput{LoadBalancerName: aws.String(r.name), LoadBalancerPorts: clash}); err != nil {
			return wrap("replace listener of "+r.name, err)
		}
	}
	if !present {
		if _, err := b.api.CreateLoadBalancerListeners(ctx, &elb.CreateLoadBalancerListenersInput{LoadBalancerName: aws.String(r.name), Listeners: []types.Listener{want}}); err != nil {
			return wrap("create listener of "+r.name, err)
		}
	}
	if len(stale) > 0 {
		if _, err := b.api.DeleteLoadBalancerListeners(ctx, &elb.DeleteLoadBalancerListenersInput{LoadBalancerName: aws.String(r.name), LoadBalancerPorts: stale}); err != nil {
			return wrap("delete listeners of "+r.name, err)
		}
	}
	return nil
}

// reconcileHealth configures r's health check unless d already has it
// (d is nil for a load balancer just created, whose health check is AWS's
// default TCP check).
func (b *Balancer) reconcileHealth(ctx context.Context, r route, d *types.LoadBalancerDescription) error {
	want := types.HealthCheck{Target: aws.String(r.healthURL), Interval: aws.Int32(r.interval), Timeout: aws.Int32(r.timeout),
		HealthyThreshold: aws.Int32(r.healthy), UnhealthyThreshold: aws.Int32(r.unhealthy)}
	if d != nil && d.HealthCheck != nil {
		h := d.HealthCheck
		if aws.ToString(h.Target) == r.healthURL && aws.ToInt32(h.Interval) == r.interval && aws.ToInt32(h.Timeout) == r.timeout &&
			aws.ToInt32(h.HealthyThreshold) == r.healthy && aws.ToInt32(h.UnhealthyThreshold) == r.unhealthy {
			return nil
		}
	}
	if _, err := b.api.ConfigureHealthCheck(ctx, &elb.ConfigureHealthCheckInput{LoadBalancerName: aws.String(r.name), HealthCheck: &want}); err != nil {
		return wrap("configure health check of "+r.name, err)
	}
	return nil
}

// reconcileDraining turns on connection draining with r's timeout unless
// it is on already.
func (b *Balancer) reconcileDraining(ctx context.Context, r route, created bool) error {
	if !created {
		out, err := b.api.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerName: aws.String(r.name)})
		if err != nil {
			return wrap("describe attributes of "+r.name, err)
		}
		if a := out.LoadBalancerAttributes; a != nil && a.ConnectionDraining != nil && a.ConnectionDraining.Enabled && aws.ToInt32(a.ConnectionDraining.Timeout) == r.drain {
			return nil
		}
	}
	if _, err := b.api.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{
		LoadBalancerName:       aws.String(r.name),
		LoadBalancerAttributes: &types.LoadBalancerAttributes{ConnectionDraining: &types.ConnectionDraining{Enabled: true, Timeout: aws.Int32(r.drain)}},
	}); err != nil {
		return wrap("set connection draining of "+r.name, err)
	}
	return nil
}

// validRouteID reports whether id can name a load balancer of this balancer.
func validRouteID(id string) bool {
	return providers.ValidateName("route", id, providers.MaxResourceName) == nil
}

// Health returns the instances registered with the route's load balancer,
// ordered by instance ID, all in the default set (""). An unknown route is
// ErrNotFound.
func (b *Balancer) Health(ctx context.Context, routeID string) ([]providers.TargetHealth, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !validRouteID(routeID) {
		return nil, fmt.Errorf("route %q: %w", routeID, providers.ErrNotFound)
	}
	out, err := b.api.DescribeInstanceHealth(ctx, &elb.DescribeInstanceHealthInput{LoadBalancerName: aws.String(routeID)})
	if err != nil {
		return nil, wrap("describe instance health of "+routeID, err)
	}
	hs := make([]providers.TargetHealth, 0, len(out.InstanceStates))
	for _, s := range out.InstanceStates {
		hs = append(hs, instanceHealth(s))
	}
	slices.SortFunc(hs, func(x, y providers.TargetHealth) int { return strings.Compare(x.Target, y.Target) })
	return hs, nil
}

// instanceHealth maps a classic ELB instance state: InService is healthy,
// or draining while its deregistration is in progress; OutOfService is
// initial while its registration is in progress and unhealthy otherwise;
// Unknown is initial. The reason is the reason code and description.
func instanceHealth(s types.InstanceState) providers.TargetHealth {
	th := providers.TargetHealth{Target: aws.ToString(s.InstanceId)}
	desc := aws.ToString(s.Description)
	if desc == "N/A" {
		desc = ""
	}
	code := aws.ToString(s.ReasonCode)
	if code == "N/A" {
		code = ""
	}
	switch {
	case code != "" && desc != "":
		th.Reason = code + ": " + desc
	default:
		th.Reason = code + desc
	}
	lower := strings.ToLower(desc)
	switch aws.ToString(s.State) {
	case "InService":
		th.State = providers.TargetHealthy
		if strings.Contains(lower, "deregistration") {
			th.State = providers.TargetDraining
		}
	case "OutOfService":
		th.State = providers.TargetUnhealthy
		if strings.Contains(lower, "registration is still in progress") {
			th.State = providers.TargetInitial
		}
	case "Unknown":
		th.State = providers.TargetInitial
	default:
		th.State = providers.TargetUnhealthy
		th.Reason = strings.TrimSuffix("unknown instance state "+aws.ToString(s.State)+": "+th.Reason, ": ")
	}
	return th
}

// DeleteRoute deletes the route's load balancer. A missing one is not an
// error; one whose tags name another route is ErrConflict.
func (b *Balancer) DeleteRoute(ctx context.Context, routeID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validRouteID(routeID) {
		return nil
	}
	unlock, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	found, err := b.owned(ctx, routeID)
	if err != nil || !found {
		return err
	}
	if _, err := b.api.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerName: aws.String(routeID)}); err != nil {
		if err = wrap("delete load balancer "+routeID, err); !isNotFound(err) {
			return err
		}
	}
	return nil
}
