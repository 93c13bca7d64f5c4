package albbalancer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// API is the part of the Elastic Load Balancing v2 client the balancer
// uses; *elasticloadbalancingv2.Client implements it.
type API interface {
	CreateLoadBalancer(context.Context, *elbv2.CreateLoadBalancerInput, ...func(*elbv2.Options)) (*elbv2.CreateLoadBalancerOutput, error)
	DescribeLoadBalancers(context.Context, *elbv2.DescribeLoadBalancersInput, ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error)
	DescribeLoadBalancerAttributes(context.Context, *elbv2.DescribeLoadBalancerAttributesInput, ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancerAttributesOutput, error)
	ModifyLoadBalancerAttributes(context.Context, *elbv2.ModifyLoadBalancerAttributesInput, ...func(*elbv2.Options)) (*elbv2.ModifyLoadBalancerAttributesOutput, error)
	CreateListener(context.Context, *elbv2.CreateListenerInput, ...func(*elbv2.Options)) (*elbv2.CreateListenerOutput, error)
	DescribeListeners(context.Context, *elbv2.DescribeListenersInput, ...func(*elbv2.Options)) (*elbv2.DescribeListenersOutput, error)
	AddListenerCertificates(context.Context, *elbv2.AddListenerCertificatesInput, ...func(*elbv2.Options)) (*elbv2.AddListenerCertificatesOutput, error)
	CreateTargetGroup(context.Context, *elbv2.CreateTargetGroupInput, ...func(*elbv2.Options)) (*elbv2.CreateTargetGroupOutput, error)
	DescribeTargetGroups(context.Context, *elbv2.DescribeTargetGroupsInput, ...func(*elbv2.Options)) (*elbv2.DescribeTargetGroupsOutput, error)
	ModifyTargetGroup(context.Context, *elbv2.ModifyTargetGroupInput, ...func(*elbv2.Options)) (*elbv2.ModifyTargetGroupOutput, error)
	DeleteTargetGroup(context.Context, *elbv2.DeleteTargetGroupInput, ...func(*elbv2.Options)) (*elbv2.DeleteTargetGroupOutput, error)
	DescribeTargetGroupAttributes(context.Context, *elbv2.DescribeTargetGroupAttributesInput, ...func(*elbv2.Options)) (*elbv2.DescribeTargetGroupAttributesOutput, error)
	ModifyTargetGroupAttributes(context.Context, *elbv2.ModifyTargetGroupAttributesInput, ...func(*elbv2.Options)) (*elbv2.ModifyTargetGroupAttributesOutput, error)
	CreateRule(context.Context, *elbv2.CreateRuleInput, ...func(*elbv2.Options)) (*elbv2.CreateRuleOutput, error)
	DescribeRules(context.Context, *elbv2.DescribeRulesInput, ...func(*elbv2.Options)) (*elbv2.DescribeRulesOutput, error)
	ModifyRule(context.Context, *elbv2.ModifyRuleInput, ...func(*elbv2.Options)) (*elbv2.ModifyRuleOutput, error)
	SetRulePriorities(context.Context, *elbv2.SetRulePrioritiesInput, ...func(*elbv2.Options)) (*elbv2.SetRulePrioritiesOutput, error)
	DeleteRule(context.Context, *elbv2.DeleteRuleInput, ...func(*elbv2.Options)) (*elbv2.DeleteRuleOutput, error)
	DescribeTargetHealth(context.Context, *elbv2.DescribeTargetHealthInput, ...func(*elbv2.Options)) (*elbv2.DescribeTargetHealthOutput, error)
	DescribeTags(context.Context, *elbv2.DescribeTagsInput, ...func(*elbv2.Options)) (*elbv2.DescribeTagsOutput, error)
	AddTags(context.Context, *elbv2.AddTagsInput, ...func(*elbv2.Options)) (*elbv2.AddTagsOutput, error)
}

// TargetType is the target type of the balancer's target groups, which
// decides the scheduler tasks it can route to.
type TargetType string

// Target types.
const (
	// TargetIP registers tasks by IP address: ECS tasks with awsvpc
	// networking, which every Fargate task uses.
	TargetIP TargetType = "ip"
	// TargetInstance registers tasks by EC2 instance and host port: ECS
	// tasks on the EC2 launch type with bridge or host networking.
	TargetInstance TargetType = "instance"
)

// DefaultLoadBalancer is the name of the rack's load balancer when
// Options.LoadBalancer is empty.
const DefaultLoadBalancer = "convox"

// DefaultSSLPolicy is the security policy of an HTTPS listener the
// balancer creates when Options.SSLPolicy is empty.
const DefaultSSLPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"

// Options configure a Balancer. Every zero field takes its default.
type Options struct {
	// LoadBalancer is the rack's shared application load balancer. An ARN
	// adopts an existing load balancer, which must exist. A name finds the
	// load balancer with that name, creating it on the first EnsureRoute
	// when there is none. The default is DefaultLoadBalancer.
	LoadBalancer string
	// Subnets, SecurityGroups and Internal are used only to create the load
	// balancer: AWS wants subnets in at least two availability zones.
	// Internal makes it internal instead of internet-facing.
	Subnets        []string
	SecurityGroups []string
	Internal       bool
	// TargetType is the target type of the target groups: TargetIP (the
	// default) or TargetInstance. See the package documentation for which
	// scheduler tasks pair with each.
	TargetType TargetType
	// Domain gives routes without host and path a default host
	// "<app>-<process>.<Domain>" (one DNS label, so a wildcard certificate
	// for *.<Domain> covers every app). Without a Domain, such routes are
	// invalid: a shared load balancer needs a host or a path to tell apps
	// apart.
	Domain string
	// Certificate is the default certificate (an ACM ARN) of the HTTPS
	// listener; without it, the certificate of the first HTTPS route
	// becomes the listener's default.
	Certificate string
	// SSLPolicy is the security policy of the HTTPS listener when the
	// balancer creates it; the default is DefaultSSLPolicy.
	SSLPolicy string
	// HTTPPort and HTTPSPort are the listener ports (80 and 443).
	HTTPPort  int
	HTTPSPort int
	// Tags are added to every resource the balancer creates.
	Tags map[string]string
	// Namespace scopes the names of the balancer's target groups, which
	// are unique per account and region: with one, a route's ID and
	// default target group name is providers.ScopedName(Namespace, app,
	// process), so racks sharing an account, and two ALB balancers of one
	// rack (a balancer migration), never want the same target group.
	// Empty keeps the unscoped names "<app>-<process>". It must pass
	// providers.ValidateNamespace; EnsureRoute refuses it otherwise.
	Namespace string
}

// Tag keys the balancer sets on its resources. Target group names are
// unique per account and region, not per load balancer, so an existing
// target group is adopted only when its tags name the same load balancer,
// route and set: a name shared by chance (another rack's app of the same
// name) is never taken over.
const (
	TagBalancer = "convox:balancer" // the load balancer's name, on every resource
	TagRoute    = "convox:route"    // the route ID, on target groups and rules
	TagApp      = "convox:app"      // the app, on target groups and rules
	TagProcess  = "convox:process"  // the process, on target groups and rules
	TagSet      = "convox:set"      // the target set ("" for the default set), on target groups
	TagPort     = "convox:port"     // the process's container port, on target groups
)

// Balancer routes apps' web processes through one shared application load
// balancer. It is safe for concurrent use; changes made through one
// Balancer are serialized, and several Balancers (in several programs) on
// one load balancer converge to the same rules.
type Balancer struct {
	api  API
	opts Options

	sem chan struct{} // serializes changes

	mu    sync.Mutex
	lb    *loadBalancer       // the rack's load balancer, once found
	http2 bool                // routing.http2.enabled is known to be on
	certs map[string]bool     // "listener ARN cert ARN" known to be attached
	rules map[string]string   // route ID -> ARN of its rule, as last seen
	owned map[string]struct{} // target group ARNs known to carry our tags
}

// loadBalancer is what the balancer needs of its load balancer.
type loadBalancer struct {
	arn, name, dns, vpc string
}

var (
	_ providers.Balancer      = (*Balancer)(nil)
	_ providers.WeightShifter = (*Balancer)(nil)
)

// New returns a Balancer using api (usually an
// *elasticloadbalancingv2.Client). opts may be nil. New makes no call:
// the load balancer is found, adopted or created on first use.
func New(api API, opts *Options) *Balancer {
	b := &Balancer{
		api:   api,
		sem:   make(chan struct{}, 1),
		certs: map[string]bool{},
		rules: map[string]string{},
		owned: map[string]struct{}{},
	}
	if opts != nil {
		b.opts = *opts
	}
	b.opts.LoadBalancer = cmpOr(b.opts.LoadBalancer, DefaultLoadBalancer)
	b.opts.TargetType = cmpOr(b.opts.TargetType, TargetIP)
	b.opts.SSLPolicy = cmpOr(b.opts.SSLPolicy, DefaultSSLPolicy)
	b.opts.HTTPPort = cmpOr(b.opts.HTTPPort, 80)
	b.opts.HTTPSPort = cmpOr(b.opts.HTTPSPort, 443)
	return b
}

// acquire takes the change lock, or returns ctx's error.
func (b *Balancer) acquire(ctx context.Context) (func(), error) {
	select {
	case b.sem <- struct{}{}:
		return func() { <-b.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// LoadBalancer returns the ARN and DNS name of the rack's load balancer,
// finding, adopting or creating it as EnsureRoute does. Point the DNS
// records of route hosts at the DNS name.
func (b *Balancer) LoadBalancer(ctx context.Context) (arn, dnsName string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	unlock, err := b.acquire(ctx)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	lb, err := b.loadBalancer(ctx, true)
	if err != nil {
		return "", "", err
	}
	return lb.arn, lb.dns, nil
}

// tags returns the caller's tags followed by kv pairs, as ELBv2 tags.
func (b *Balancer) tags(kv ...string) []types.Tag {
	var out []types.Tag
	for _, k := range sortedKeys(b.opts.Tags) {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(b.opts.Tags[k])})
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// wrapCert maps the error of a call naming a certificate: a certificate
// that does not exist (CertificateNotFound) makes the route spec invalid.
func wrapCert(op string, err error) error {
	if awserr.Code(err) == "CertificateNotFound" {
		return awserr.As(op, providers.ErrInvalid, err)
	}
	return awserr.Wrap(op, err)
}

// isNotFound reports whether err says the resource does not exist.
func isNotFound(err error) bool { return errors.Is(err, providers.ErrNotFound) }

// loadBalancer returns the rack's load balancer. When it does not exist
// it is created if create is set; otherwise loadBalancer returns nil and
// no error. An adopted ARN that does not exist is ErrNotFound when create
// is set.
func (b *Balancer) loadBalancer(ctx context.Context, create bool) (*loadBalancer, error) {
	b.mu.Lock()
	lb := b.lb
	b.mu.Unlock()
	if lb != nil {
		return lb, nil
	}
	byARN := strings.HasPrefix(b.opts.LoadBalancer, "arn:")
	lb, err := b.describeLoadBalancer(ctx, byARN)
	if err != nil {
		return nil, err
	}
	if lb == nil && byARN {
		if !create {
			return nil, nil
		}
		return nil, fmt.Errorf("load balancer %s: %w", b.opts.LoadBalancer, providers.ErrNotFound)
	}
	if lb == nil {
		if !create {
			return nil, nil
		}
		if lb, err = b.createLoadBalancer(ctx); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	b.lb = lb
	b.mu.Unlock()
	return lb, nil
}

// describeLoadBalancer finds the configured load balancer; nil when it
// does not exist (AWS answers LoadBalancerNotFound, emulators an empty list).
func (b *Balancer) describeLoadBalancer(ctx context.Context, byARN bool) (*loadBalancer, error) {
	in := &elbv2.DescribeLoadBalancersInput{}
	if byARN {
		in.LoadBalancerArns = []string{b.opts.LoadBalancer}
	} else {
		in.Names = []string{b.opts.LoadBalancer}
	}
	out, err := b.api.DescribeLoadBalancers(ctx, in)
	if err != nil {
		err = awserr.Wrap("describe load balancer "+b.opts.LoadBalancer, err)
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	for _, l := range out.LoadBalancers {
		if aws.ToString(l.LoadBalancerArn) == b.opts.LoadBalancer || aws.ToString(l.LoadBalancerName) == b.opts.LoadBalancer {
			if l.Type != "" && l.Type != types.LoadBalancerTypeEnumApplication {
				return nil, providers.Invalidf("load balancer %s is a %s load balancer, not an application load balancer", b.opts.LoadBalancer, l.Type)
			}
			return &loadBalancer{arn: aws.ToString(l.LoadBalancerArn), name: aws.ToString(l.LoadBalancerName), dns: aws.ToString(l.DNSName), vpc: aws.ToString(l.VpcId)}, nil
		}
	}
	return nil, nil
}

// createLoadBalancer creates the named load balancer. AWS answers a
// repeated identical create with the existing load balancer; a duplicate
// name error (emulators, or a concurrent create with other settings) is
// answered by describing the existing one.
func (b *Balancer) createLoadBalancer(ctx context.Context) (*loadBalancer, error) {
	scheme := types.LoadBalancerSchemeEnumInternetFacing
	if b.opts.Internal {
		scheme = types.LoadBalancerSchemeEnumInternal
	}
	out, err := b.api.CreateLoadBalancer(ctx, &elbv2.CreateLoadBalancerInput{
		Name:           aws.String(b.opts.LoadBalancer),
		Type:           types.LoadBalancerTypeEnumApplication,
		Scheme:         scheme,
		IpAddressType:  types.IpAddressTypeIpv4,
		Subnets:        b.opts.Subnets,
		SecurityGroups: b.opts.SecurityGroups,
		Tags:           b.tags(TagBalancer, b.opts.LoadBalancer),
	})
	if err != nil {
		err = awserr.Wrap("create load balancer "+b.opts.LoadBalancer, err)
		if !errors.Is(err, providers.ErrAlreadyExists) {
			return nil, err
		}
		lb, derr := b.describeLoadBalancer(ctx, false)
		if derr != nil || lb == nil {
			return nil, errors.Join(err, derr)
		}
		return lb, nil
	}
	if len(out.LoadBalancers) == 0 {
		return nil, fmt.Errorf("create load balancer %s: %w: empty answer", b.opts.LoadBalancer, providers.ErrUnavailable)
	}
	l := out.LoadBalancers[0]
	return &loadBalancer{arn: aws.ToString(l.LoadBalancerArn), name: aws.ToString(l.LoadBalancerName), dns: aws.ToString(l.DNSName), vpc: aws.ToString(l.VpcId)}, nil
}

// forget drops what the balancer knows of its load balancer, after an
// answer showed it gone.
func (b *Balancer) forget() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lb = nil
	b.http2 = false
	clear(b.certs)
	clear(b.rules)
	clear(b.owned)
}

// ensureHTTP2 turns on HTTP/2 to clients on the load balancer (an
// attribute of the whole load balancer, on by default on AWS).
func (b *Balancer) ensureHTTP2(ctx context.Context, lb *loadBalancer) error {
	b.mu.Lock()
	known := b.http2
	b.mu.Unlock()
	if known {
		return nil
	}
	out, err := b.api.DescribeLoadBalancerAttributes(ctx, &elbv2.DescribeLoadBalancerAttributesInput{LoadBalancerArn: aws.String(lb.arn)})
	if err != nil {
		return awserr.Wrap("describe load balancer attributes", err)
	}
	on := false
	for _, a := range out.Attributes {
		if aws.ToString(a.Key) == "routing.http2.enabled" {
			on = aws.ToString(a.Value) == "true"
		}
	}
	if !on {
		if _, err := b.api.ModifyLoadBalancerAttributes(ctx, &elbv2.ModifyLoadBalancerAttributesInput{
			LoadBalancerArn: aws.String(lb.arn),
			Attributes:      []types.LoadBalancerAttribute{{Key: aws.String("routing.http2.enabled"), Value: aws.String("true")}},
		}); err != nil {
			return awserr.Wrap("enable http/2", err)
		}
	}
	b.mu.Lock()
	b.http2 = true
	b.mu.Unlock()
	return nil
}

// listeners returns the load balancer's listeners.
func (b *Balancer) listeners(ctx context.Context, lb *loadBalancer) ([]types.Listener, error) {
	var all []types.Listener
	in := &elbv2.DescribeListenersInput{LoadBalancerArn: aws.String(lb.arn)}
	for {
		out, err := b.api.DescribeListeners(ctx, in)
		if err != nil {
			return nil, awserr.Wrap("describe listeners", err)
		}
		all = append(all, out.Listeners...)
		if aws.ToString(out.NextMarker) == "" {
			break
		}
		in.Marker = out.NextMarker
	}
	slices.SortFunc(all, func(x, y types.Listener) int {
		return cmp.Compare(aws.ToString(x.ListenerArn), aws.ToString(y.ListenerArn))
	})
	return all, nil
}

// listenerOn returns the listener on port: the first by ARN when an
// emulator let several be created.
func listenerOn(ls []types.Listener, port int) *types.Listener {
	for i := range ls {
		if int(aws.ToInt32(ls[i].Port)) == port {
			return &ls[i]
		}
	}
	return nil
}

// ensureListener returns the ARN of the listener r's rule belongs on,
// creating it (with a fixed 404 default action) when missing, and attaches
// r's certificate to an HTTPS listener.
func (b *Balancer) ensureListener(ctx context.Context, lb *loadBalancer, ls []types.Listener, r route) (string, error) {
	port, proto := b.opts.HTTPPort, types.ProtocolEnumHttp
	if r.protocol != providers.HTTP {
		port, proto = b.opts.HTTPSPort, types.ProtocolEnumHttps
	}
	if l := listenerOn(ls, port); l != nil {
		if l.Protocol != "" && l.Protocol != proto {
			return "", fmt.Errorf("%w: listener on port %d of %s is %s, route %s needs %s", providers.ErrConflict, port, lb.name, l.Protocol, r.id, proto)
		}
		arn := aws.ToString(l.ListenerArn)
		if r.cert != "" {
			if err := b.attachCertificate(ctx, arn, l.Certificates, r.cert); err != nil {
				return "", err
			}
		}
		return arn, nil
	}
	in := &elbv2.CreateListenerInput{
		LoadBalancerArn: aws.String(lb.arn),
		Port:            aws.Int32(int32(port)),
		Protocol:        proto,
		DefaultActions: []types.Action{{
			Type: types.ActionTypeEnumFixedResponse,
			FixedResponseConfig: &types.FixedResponseActionConfig{
				StatusCode: aws.String("404"), ContentType: aws.String("text/plain"), MessageBody: aws.String("no route\n"),
			},
		}},
		Tags: b.tags(TagBalancer, lb.name),
	}
	def := ""
	if proto == types.ProtocolEnumHttps {
		def = cmpOr(b.opts.Certificate, r.cert)
		if def == "" {
			return "", providers.Invalidf("route %s: the load balancer has no HTTPS listener yet; give the route or the balancer a certificate", r.id)
		}
		in.Certificates = []types.Certificate{{CertificateArn: aws.String(def)}}
		in.SslPolicy = aws.String(b.opts.SSLPolicy)
	}
	out, err := b.api.CreateListener(ctx, in)
	if err != nil {
		err = wrapCert(fmt.Sprintf("create listener on port %d", port), err)
		if !errors.Is(err, providers.ErrAlreadyExists) {
			return "", err
		}
		again, derr := b.listeners(ctx, lb)
		if derr != nil {
			return "", errors.Join(err, derr)
		}
		if listenerOn(again, port) == nil {
			return "", err
		}
		return b.ensureListener(ctx, lb, again, r)
	}
	if len(out.Listeners) == 0 {
		return "", fmt.Errorf("create listener on port %d: %w: empty answer", port, providers.ErrUnavailable)
	}
	arn := aws.ToString(out.Listeners[0].ListenerArn)
	if def != "" {
		b.mu.Lock()
		b.certs[arn+" "+def] = true
		b.mu.Unlock()
	}
	if r.cert != "" && r.cert != def {
		if err := b.attachCertificate(ctx, arn, nil, r.cert); err != nil {
			return "", err
		}
	}
	return arn, nil
}

// attachCertificate adds cert to an HTTPS listener's certificate list
// unless it is known to be there (AddListenerCertificates is idempotent).
func (b *Balancer) attachCertificate(ctx context.Context, listener string, have []types.Certificate, cert string) error {
	key := listener + " " + cert
	b.mu.Lock()
	known := b.certs[key]
	b.mu.Unlock()
	if known || slices.ContainsFunc(have, func(c types.Certificate) bool { return aws.ToString(c.CertificateArn) == cert }) {
		return nil
	}
	if _, err := b.api.AddListenerCertificates(ctx, &elbv2.AddListenerCertificatesInput{
		ListenerArn:  aws.String(listener),
		Certificates: []types.Certificate{{CertificateArn: aws.String(cert)}},
	}); err != nil {
		return wrapCert("add listener certificate", err)
	}
	b.mu.Lock()
	b.certs[key] = true
	b.mu.Unlock()
	return nil
}

// targetGroup is what the balancer needs of a target group.
type targetGroup struct {
	arn  string
	name string
	port int32
}

// describeTargetGroup returns the named target group, or nil when it does
// not exist (TargetGroupNotFound on AWS, an empty list on emulators).
func (b *Balancer) describeTargetGroup(ctx context.Context, name string) (*types.TargetGroup, error) {
	out, err := b.api.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{Names: []string{name}})
	if err != nil {
		err = awserr.Wrap("describe target group "+name, err)
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	for i := range out.TargetGroups {
		if aws.ToString(out.TargetGroups[i].TargetGroupName) == name {
			return &out.TargetGroups[i], nil
		}
	}
	return nil, nil
}

// tagsOf returns the tags of ELBv2 resources by ARN (at most 20).
func (b *Balancer) tagsOf(ctx context.Context, arns ...string) (map[string]map[string]string, error) {
	out, err := b.api.DescribeTags(ctx, &elbv2.DescribeTagsInput{ResourceArns: arns})
	if err != nil {
		return nil, awserr.Wrap("describe tags", err)
	}
	m := map[string]map[string]string{}
	for _, d := range out.TagDescriptions {
		t := map[string]string{}
		for _, tag := range d.Tags {
			t[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		m[aws.ToString(d.ResourceArn)] = t
	}
	return m, nil
}

// ownedBy checks that a target group found by name belongs to route id
// and set on load balancer lb; a target group by that name that belongs to
// something else is ErrConflict. It returns the target group's tags.
func (b *Balancer) ownedBy(ctx context.Context, tg *types.TargetGroup, lb *loadBalancer, id, set string) (map[string]string, error) {
	arn := aws.ToString(tg.TargetGroupArn)
	tags, err := b.tagsOf(ctx, arn)
	if err != nil {
		return nil, err
	}
	t := tags[arn]
	if t[TagBalancer] != lb.name || t[TagRoute] != id || t[TagSet] != set {
		return nil, fmt.Errorf("%w: target group %s exists and does not belong to route %s of load balancer %s (its tags name load balancer %q, route %q, set %q)",
			providers.ErrConflict, aws.ToString(tg.TargetGroupName), setLabel(id, set), lb.name, t[TagBalancer], t[TagRoute], t[TagSet])
	}
	b.mu.Lock()
	b.owned[arn] = struct{}{}
	b.mu.Unlock()
	return t, nil
}

func setLabel(id, set string) string {
	if set == "" {
		return id
	}
	return id + " set " + set
}

// ensureTargetGroup creates or finds the target group of route r's set
// and brings its health check and deregistration delay to r's.
func (b *Balancer) ensureTargetGroup(ctx context.Context, lb *loadBalancer, r route, set string) (targetGroup, error) {
	name := r.id
	if set != "" {
		name += "-" + set
	}
	tg, err := b.describeTargetGroup(ctx, name)
	if err != nil {
		return targetGroup{}, err
	}
	created := false
	if tg == nil {
		out, err := b.api.CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{
			Name:                       aws.String(name),
			Protocol:                   types.ProtocolEnumHttp,
			ProtocolVersion:            aws.String("HTTP1"),
			Port:                       aws.Int32(r.port),
			VpcId:                      aws.String(lb.vpc),
			TargetType:                 types.TargetTypeEnum(b.opts.TargetType),
			HealthCheckEnabled:         aws.Bool(true),
			HealthCheckProtocol:        types.ProtocolEnumHttp,
			HealthCheckPort:            aws.String("traffic-port"),
			HealthCheckPath:            aws.String(r.health.Path),
			HealthCheckIntervalSeconds: aws.Int32(r.health.Interval),
			HealthCheckTimeoutSeconds:  aws.Int32(r.health.Timeout),
			HealthyThresholdCount:      aws.Int32(r.health.Healthy),
			UnhealthyThresholdCount:    aws.Int32(r.health.Unhealthy),
			Matcher:                    &types.Matcher{HttpCode: aws.String("200-399")},
			Tags: b.tags(TagBalancer, lb.name, TagRoute, r.id, TagApp, r.app, TagProcess, r.process, TagSet, set,
				TagPort, strconv.Itoa(int(r.port))),
		})
		if err != nil {
			err = awserr.Wrap("create target group "+name, err)
			if !errors.Is(err, providers.ErrAlreadyExists) {
				return targetGroup{}, err
			}
			if tg, err = b.describeTargetGroup(ctx, name); err != nil {
				return targetGroup{}, err
			}
			if tg == nil {
				return targetGroup{}, fmt.Errorf("create target group %s: %w: reported as existing but not found", name, providers.ErrUnavailable)
			}
		} else if len(out.TargetGroups) == 0 {
			return targetGroup{}, fmt.Errorf("create target group %s: %w: empty answer", name, providers.ErrUnavailable)
		} else {
			tg, created = &out.TargetGroups[0], true
			b.mu.Lock()
			b.owned[aws.ToString(tg.TargetGroupArn)] = struct{}{}
			b.mu.Unlock()
		}
	}
	arn := aws.ToString(tg.TargetGroupArn)
	if !created {
		tags, err := b.ownedBy(ctx, tg, lb, r.id, set)
		if err != nil {
			return targetGroup{}, err
		}
		if tt := TargetType(tg.TargetType); tt != "" && tt != b.opts.TargetType {
			return targetGroup{}, fmt.Errorf("%w: target group %s has target type %s and the balancer uses %s; delete the route to change it",
				providers.ErrConflict, name, tt, b.opts.TargetType)
		}
		if want := strconv.Itoa(int(r.port)); tags[TagPort] != want {
			if _, err := b.api.AddTags(ctx, &elbv2.AddTagsInput{ResourceArns: []string{arn}, Tags: b.tags(TagPort, want)}); err != nil {
				return targetGroup{}, awserr.Wrap("tag target group "+name, err)
			}
		}
	}
	if err := b.reconcileTargetGroup(ctx, tg, r, created); err != nil {
		return targetGroup{}, err
	}
	return targetGroup{arn: arn, name: name, port: r.port}, nil
}

// reconcileTargetGroup brings a target group's health check and
// deregistration delay to r's, changing only what differs.
func (b *Balancer) reconcileTargetGroup(ctx context.Context, tg *types.TargetGroup, r route, created bool) error {
	arn := aws.ToString(tg.TargetGroupArn)
	h := r.health
	if aws.ToString(tg.HealthCheckPath) != h.Path || aws.ToInt32(tg.HealthCheckIntervalSeconds) != h.Interval ||
		aws.ToInt32(tg.HealthCheckTimeoutSeconds) != h.Timeout || aws.ToInt32(tg.HealthyThresholdCount) != h.Healthy ||
		aws.ToInt32(tg.UnhealthyThresholdCount) != h.Unhealthy {
		if _, err := b.api.ModifyTargetGroup(ctx, &elbv2.ModifyTargetGroupInput{
			TargetGroupArn:             aws.String(arn),
			HealthCheckPath:            aws.String(h.Path),
			HealthCheckIntervalSeconds: aws.Int32(h.Interval),
			HealthCheckTimeoutSeconds:  aws.Int32(h.Timeout),
			HealthyThresholdCount:      aws.Int32(h.Healthy),
			UnhealthyThresholdCount:    aws.Int32(h.Unhealthy),
		}); err != nil {
			return awserr.Wrap("modify target group "+aws.ToString(tg.TargetGroupName), err)
		}
	}
	want := strconv.Itoa(int(r.dereg))
	if !created {
		out, err := b.api.DescribeTargetGroupAttributes(ctx, &elbv2.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(arn)})
		if err != nil {
			return awserr.Wrap("describe target group attributes", err)
		}
		for _, a := range out.Attributes {
			if aws.ToString(a.Key) == "deregistration_delay.timeout_seconds" && aws.ToString(a.Value) == want {
				return nil
			}
		}
	}
	if _, err := b.api.ModifyTargetGroupAttributes(ctx, &elbv2.ModifyTargetGroupAttributesInput{
		TargetGroupArn: aws.String(arn),
		Attributes:     []types.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String(want)}},
	}); err != nil {
		return awserr.Wrap("set deregistration delay", err)
	}
	return nil
}

// deleteTargetGroup deletes a target group; a missing one is not an
// error. AWS refuses to delete a target group for a short while after the
// rule using it was deleted (ResourceInUse), so that is retried a few times.
func (b *Balancer) deleteTargetGroup(ctx context.Context, arn string) error {
	bo := poll.Backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second}
	for attempt := 1; ; attempt++ {
		_, err := b.api.DeleteTargetGroup(ctx, &elbv2.DeleteTargetGroupInput{TargetGroupArn: aws.String(arn)})
		err = awserr.Wrap("delete target group "+targetGroupName(arn), err)
		switch {
		case err == nil, isNotFound(err):
			b.mu.Lock()
			delete(b.owned, arn)
			b.mu.Unlock()
			return nil
		case errors.Is(err, providers.ErrConflict) && attempt < 5:
			if werr := bo.Wait(ctx); werr != nil {
				return werr
			}
		default:
			return err
		}
	}
}

// targetGroupName returns the name in a target group ARN
// ("arn:aws:elasticloadbalancing:...:targetgroup/<name>/<id>").
func targetGroupName(arn string) string {
	_, rest, ok := strings.Cut(arn, ":targetgroup/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// EnsureRoute creates the route of spec's process, or finds and updates
// it: the load balancer (created or adopted on first use), the listener of
// the route's protocol, the target group named
// providers.ResourceName(app, process, "") with spec's health check and
// deregistration delay, and a listener rule with spec's host and path
// forwarding to it. The route ID is the target group name; the binding is
// the target group ARN. Traffic weights set through SetWeights are kept.
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
	rt, err := b.ensureRoute(ctx, r)
	if isNotFound(err) && ctx.Err() == nil {
		// The load balancer or a listener went away behind our back: look
		// everything up again once.
		b.forget()
		rt, err = b.ensureRoute(ctx, r)
	}
	return rt, err
}

func (b *Balancer) ensureRoute(ctx context.Context, r route) (providers.Route, error) {
	lb, err := b.loadBalancer(ctx, true)
	if err != nil {
		return providers.Route{}, err
	}
	if r.protocol == providers.HTTP2 {
		if err := b.ensureHTTP2(ctx, lb); err != nil {
			return providers.Route{}, err
		}
	}
	ls, err := b.listeners(ctx, lb)
	if err != nil {
		return providers.Route{}, err
	}
	listener, err := b.ensureListener(ctx, lb, ls, r)
	if err != nil {
		return providers.Route{}, err
	}
	if !slices.ContainsFunc(ls, func(l types.Listener) bool { return aws.ToString(l.ListenerArn) == listener }) {
		ls = append(ls, types.Listener{ListenerArn: aws.String(listener)})
	}
	tg, err := b.ensureTargetGroup(ctx, lb, r, "")
	if err != nil {
		return providers.Route{}, err
	}
	all, err := b.rulesOf(ctx, ls)
	if err != nil {
		return providers.Route{}, err
	}
	if err := b.ensureRule(ctx, listener, all, tg, r); err != nil {
		return providers.Route{}, err
	}
	return providers.Route{
		ID:       r.id,
		Endpoint: b.endpoint(r, lb.dns),
		Binding:  providers.Binding{Kind: providers.BindingTargetGroup, Target: tg.arn, Port: int(r.port)},
	}, nil
}

// DeleteRoute deletes the route's listener rules and target groups (every
// set). The load balancer and its listeners stay: they are shared. A
// missing route, or a missing load balancer, is not an error.
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
	lb, err := b.loadBalancer(ctx, false)
	if err != nil || lb == nil {
		return err
	}
	ls, err := b.listeners(ctx, lb)
	if err != nil {
		return err
	}
	all, err := b.rulesOf(ctx, ls)
	if err != nil {
		return err
	}
	var groups []string
	for _, ru := range routeRules(all, routeID) {
		for _, t := range ru.tuples {
			if !slices.Contains(groups, t.arn) {
				groups = append(groups, t.arn)
			}
		}
		if err := b.deleteRule(ctx, ru.arn); err != nil {
			return err
		}
	}
	b.mu.Lock()
	delete(b.rules, routeID)
	b.mu.Unlock()
	tg, err := b.describeTargetGroup(ctx, routeID)
	if err != nil {
		return err
	}
	if tg != nil && !slices.Contains(groups, aws.ToString(tg.TargetGroupArn)) {
		if _, err := b.ownedBy(ctx, tg, lb, routeID, ""); err != nil {
			return err
		}
		groups = append(groups, aws.ToString(tg.TargetGroupArn))
	}
	for _, arn := range groups {
		if err := b.deleteTargetGroup(ctx, arn); err != nil {
			return err
		}
	}
	return nil
}

// validRouteID reports whether id can be a route ID of this balancer: a
// target group name ("<app>-<process>").
func validRouteID(id string) bool {
	return id != "" && len(id) <= providers.MaxResourceName && providers.ValidateName("route", id, providers.MaxResourceName) == nil
}
