package albbalancer

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/awshealth"
	"github.com/convox-go/convox/providers"
)

// Health returns the targets of every target set of the route, ordered by
// set then target. A target is "<ip or instance id>:<port>". An unknown
// route is ErrNotFound.
func (b *Balancer) Health(ctx context.Context, routeID string) ([]providers.TargetHealth, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := b.lookup(ctx, routeID)
	if err != nil {
		return nil, err
	}
	var out []providers.TargetHealth
	for i, t := range f.sets {
		res, err := b.api.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(t.arn)})
		if err != nil {
			err = awserr.Wrap("describe target health of "+targetGroupName(t.arn), err)
			if isNotFound(err) && i > 0 {
				continue // a set deleted meanwhile has no targets
			}
			return nil, err
		}
		set := setName(routeID, t.arn)
		for _, d := range res.TargetHealthDescriptions {
			out = append(out, targetHealth(set, d))
		}
	}
	slices.SortFunc(out, func(x, y providers.TargetHealth) int {
		return cmp.Or(cmp.Compare(x.Set, y.Set), cmp.Compare(x.Target, y.Target))
	})
	return out, nil
}

// targetHealth maps an ELBv2 target health description: healthy,
// initial, unused and draining map to the states of the same name;
// unhealthy.draining is draining; unhealthy, unavailable and any unknown
// state are unhealthy. The reason is the ELBv2 reason code followed by its
// description ("Target.ResponseCodeMismatch: Health checks failed with
// these codes: [502]").
func targetHealth(set string, d types.TargetHealthDescription) providers.TargetHealth {
	th := providers.TargetHealth{Set: set}
	if d.Target != nil {
		th.Target = aws.ToString(d.Target.Id)
		if d.Target.Port != nil {
			th.Target += ":" + strconv.Itoa(int(*d.Target.Port))
		}
	}
	h := d.TargetHealth
	if h == nil {
		th.State, th.Reason = providers.TargetUnhealthy, "no health reported"
		return th
	}
	reason := string(h.Reason)
	if desc := aws.ToString(h.Description); desc != "" {
		if reason != "" {
			reason += ": " + desc
		} else {
			reason = desc
		}
	}
	switch h.State {
	case types.TargetHealthStateEnumHealthy:
		th.State = providers.TargetHealthy
	case types.TargetHealthStateEnumInitial:
		th.State = providers.TargetInitial
	case types.TargetHealthStateEnumUnused:
		th.State = providers.TargetUnused
	case types.TargetHealthStateEnumDraining, types.TargetHealthStateEnumUnhealthyDraining:
		th.State = providers.TargetDraining
	case types.TargetHealthStateEnumUnhealthy, types.TargetHealthStateEnumUnavailable:
		th.State = providers.TargetUnhealthy
	default:
		th.State = providers.TargetUnhealthy
		if reason != "" {
			reason = ": " + reason
		}
		reason = "unknown target state " + string(h.State) + reason
	}
	th.Reason = reason
	return th
}

// Weights returns the traffic weight in percent of every set of the
// route; "" is the default set. Weights set by hand in other proportions
// are scaled to percent and rounded.
func (b *Balancer) Weights(ctx context.Context, routeID string) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := b.lookup(ctx, routeID)
	if err != nil {
		return nil, err
	}
	return percents(routeID, f.sets), nil
}

// percents converts raw weights to percent.
func percents(id string, ts []tuple) map[string]int {
	out := map[string]int{}
	if len(ts) == 1 {
		out[setName(id, ts[0].arn)] = 100
		return out
	}
	var sum int64
	for _, t := range ts {
		sum += int64(t.weight)
	}
	for _, t := range ts {
		p := 0
		if sum > 0 {
			p = int((int64(t.weight)*100 + sum/2) / sum)
		}
		out[setName(id, t.arn)] = p
	}
	return out
}

// maxSets is the most target groups an ELBv2 forward action takes.
const maxSets = 5

// EnsureTargetSet creates (or finds) the target group
// "<app>-<process>-<set>" with the default target group's settings and
// adds it to the route's forward action with weight 0. Its binding has
// the route binding's kind and port.
func (b *Balancer) EnsureTargetSet(ctx context.Context, routeID, set string) (providers.Binding, error) {
	if err := providers.ValidateName("set", set, providers.MaxSetName); err != nil {
		return providers.Binding{}, err
	}
	if err := ctx.Err(); err != nil {
		return providers.Binding{}, err
	}
	unlock, err := b.acquire(ctx)
	if err != nil {
		return providers.Binding{}, err
	}
	defer unlock()
	f, err := b.lookup(ctx, routeID)
	if err != nil {
		return providers.Binding{}, err
	}
	if f.rule == nil {
		return providers.Binding{}, fmt.Errorf("route %s has a target group but no listener rule; ensure the route again: %w: %w", routeID, providers.ErrNotFound, errNoRoute)
	}
	base, err := b.baseRoute(ctx, routeID, f.sets[0].arn)
	if err != nil {
		return providers.Binding{}, err
	}
	for _, t := range f.sets {
		if setName(routeID, t.arn) == set {
			return providers.Binding{Kind: providers.BindingTargetGroup, Target: t.arn, Port: int(base.port)}, nil
		}
	}
	if len(f.rule.tuples) >= maxSets {
		return providers.Binding{}, providers.Invalidf("route %s has %d target sets, the most a forward action takes", routeID, maxSets)
	}
	lb, err := b.loadBalancer(ctx, false)
	if err != nil {
		return providers.Binding{}, err
	}
	if lb == nil {
		return providers.Binding{}, fmt.Errorf("route %s: %w: %w", routeID, providers.ErrNotFound, errNoRoute)
	}
	tg, err := b.ensureTargetGroup(ctx, lb, base, set)
	if err != nil {
		return providers.Binding{}, err
	}
	tuples := append(slices.Clone(f.rule.tuples), tuple{arn: tg.arn, weight: 0})
	if _, err := b.api.ModifyRule(ctx, &elbv2.ModifyRuleInput{RuleArn: aws.String(f.rule.arn), Actions: forward(tuples)}); err != nil {
		err = awserr.Wrap("add set "+set+" to route "+routeID, err)
		// Do not leave a target group no rule refers to.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := b.deleteTargetGroup(cctx, tg.arn); derr != nil {
			return providers.Binding{}, fmt.Errorf("%w (and removing target group %s: %v)", err, tg.name, derr)
		}
		return providers.Binding{}, err
	}
	return providers.Binding{Kind: providers.BindingTargetGroup, Target: tg.arn, Port: int(base.port)}, nil
}

// baseRoute rebuilds the route settings of route id from its default
// target group (health check, deregistration delay, port and names), for
// the target groups of its other sets.
func (b *Balancer) baseRoute(ctx context.Context, id, arn string) (route, error) {
	out, err := b.api.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{arn}})
	err = awserr.Wrap("describe target group "+id, err)
	if err == nil && len(out.TargetGroups) == 0 {
		err = fmt.Errorf("describe target group %s: %w: %w", id, providers.ErrNotFound, errNoRoute)
	}
	if err != nil {
		return route{}, err
	}
	tg := out.TargetGroups[0]
	tags, err := b.tagsOf(ctx, arn)
	if err != nil {
		return route{}, err
	}
	t := tags[arn]
	r := route{
		id: id, app: t[TagApp], process: t[TagProcess], port: aws.ToInt32(tg.Port),
		health: awshealth.Settings{
			Path: aws.ToString(tg.HealthCheckPath), Interval: aws.ToInt32(tg.HealthCheckIntervalSeconds),
			Timeout: aws.ToInt32(tg.HealthCheckTimeoutSeconds), Healthy: aws.ToInt32(tg.HealthyThresholdCount),
			Unhealthy: aws.ToInt32(tg.UnhealthyThresholdCount),
		},
		dereg: int32(awshealth.Seconds(defaultDeregistered)),
	}
	if p, err := strconv.Atoi(t[TagPort]); err == nil && p > 0 {
		r.port = int32(p)
	}
	attrs, err := b.api.DescribeTargetGroupAttributes(ctx, &elbv2.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(arn)})
	if err != nil {
		return route{}, awserr.Wrap("describe target group attributes", err)
	}
	for _, a := range attrs.Attributes {
		if aws.ToString(a.Key) == "deregistration_delay.timeout_seconds" {
			if n, err := strconv.Atoi(aws.ToString(a.Value)); err == nil {
				r.dereg = int32(n)
			}
		}
	}
	return r, nil
}

// SetWeights sets the traffic weights, in percent, of the route's sets;
// sets left out get 0. Weights must be 0-100 and sum to 100 (ErrInvalid);
// an unknown set is ErrNotFound. Nothing changes on error.
func (b *Balancer) SetWeights(ctx context.Context, routeID string, weights map[string]int) error {
	sum := 0
	for set, w := range weights {
		if w < 0 || w > 100 {
			return providers.Invalidf("route %s: weight %d of set %q is outside 0-100", routeID, w, set)
		}
		sum += w
	}
	if sum != 100 {
		return providers.Invalidf("route %s: weights %v sum to %d, not 100", routeID, weights, sum)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := b.lookup(ctx, routeID)
	if err != nil {
		return err
	}
	if f.rule == nil {
		return fmt.Errorf("route %s has a target group but no listener rule; ensure the route again: %w: %w", routeID, providers.ErrNotFound, errNoRoute)
	}
	have := map[string]bool{}
	for _, t := range f.rule.tuples {
		have[setName(routeID, t.arn)] = true
	}
	for _, set := range sortedKeys(weights) {
		if !have[set] {
			return fmt.Errorf("route %s has no set %q: %w", routeID, set, providers.ErrNotFound)
		}
	}
	tuples := slices.Clone(f.rule.tuples)
	changed := false
	for i := range tuples {
		w := int32(weights[setName(routeID, tuples[i].arn)])
		changed = changed || tuples[i].weight != w
		tuples[i].weight = w
	}
	if !changed {
		return nil
	}
	if _, err := b.api.ModifyRule(ctx, &elbv2.ModifyRuleInput{RuleArn: aws.String(f.rule.arn), Actions: forward(tuples)}); err != nil {
		return awserr.Wrap("set weights of route "+routeID, err)
	}
	return nil
}

// DeleteTargetSet removes a set that has no weight: its target group
// leaves the route's forward action and is deleted. Deleting a missing set
// returns nil; a weighted one is ErrConflict; the default set ("") cannot
// be deleted (ErrInvalid).
func (b *Balancer) DeleteTargetSet(ctx context.Context, routeID, set string) error {
	if set == "" {
		return providers.Invalidf("route %s: the default set cannot be deleted; delete the route", routeID)
	}
	if err := providers.ValidateName("set", set, providers.MaxSetName); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := b.lookup(ctx, routeID)
	if err != nil && !isNotFound(err) {
		return err
	}
	if f.rule != nil {
		i := slices.IndexFunc(f.rule.tuples, func(t tuple) bool { return setName(routeID, t.arn) == set })
		if i >= 0 {
			t := f.rule.tuples[i]
			if t.weight > 0 {
				return fmt.Errorf("%w: route %s: set %s has weight %d%%; shift its traffic away first",
					providers.ErrConflict, routeID, set, percents(routeID, f.rule.tuples)[set])
			}
			rest := slices.Delete(slices.Clone(f.rule.tuples), i, i+1)
			if _, err := b.api.ModifyRule(ctx, &elbv2.ModifyRuleInput{RuleArn: aws.String(f.rule.arn), Actions: forward(rest)}); err != nil {
				return awserr.Wrap("remove set "+set+" from route "+routeID, err)
			}
			return b.deleteTargetGroup(ctx, t.arn)
		}
	}
	// Not in the rule: remove a target group left by an interrupted
	// EnsureTargetSet, if it is ours.
	lb, err := b.loadBalancer(ctx, false)
	if err != nil || lb == nil {
		return err
	}
	tg, err := b.describeTargetGroup(ctx, routeID+"-"+set)
	if err != nil || tg == nil {
		return err
	}
	if _, err := b.ownedBy(ctx, tg, lb, routeID, set); err != nil {
		return err
	}
	return b.deleteTargetGroup(ctx, aws.ToString(tg.TargetGroupArn))
}
