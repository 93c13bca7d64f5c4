package albbalancer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// rule is a listener rule as the balancer sees it.
type rule struct {
	arn      string
	listener string
	priority int
	hosts    []string
	paths    []string
	other    bool    // the rule has conditions other than host and path
	tuples   []tuple // the forward action's target groups, in order
}

// tuple is one target group of a forward action with its weight.
type tuple struct {
	arn    string
	weight int32
}

// forwardsTo reports whether the rule forwards to the target group named name.
func (ru rule) forwardsTo(name string) bool {
	return slices.ContainsFunc(ru.tuples, func(t tuple) bool { return targetGroupName(t.arn) == name })
}

// parseRule converts an ELBv2 rule; ok is false for default rules.
func parseRule(listener string, r types.Rule) (rule, bool) {
	if aws.ToBool(r.IsDefault) {
		return rule{}, false
	}
	p, err := strconv.Atoi(aws.ToString(r.Priority))
	if err != nil {
		return rule{}, false
	}
	ru := rule{arn: aws.ToString(r.RuleArn), listener: listener, priority: p}
	for _, c := range r.Conditions {
		switch aws.ToString(c.Field) {
		case "host-header":
			if c.HostHeaderConfig != nil && len(c.HostHeaderConfig.Values) > 0 {
				ru.hosts = append(ru.hosts, c.HostHeaderConfig.Values...)
			} else {
				ru.hosts = append(ru.hosts, c.Values...)
			}
		case "path-pattern":
			if c.PathPatternConfig != nil && len(c.PathPatternConfig.Values) > 0 {
				ru.paths = append(ru.paths, c.PathPatternConfig.Values...)
			} else {
				ru.paths = append(ru.paths, c.Values...)
			}
		default:
			ru.other = true
		}
	}
	for _, a := range r.Actions {
		if a.Type != types.ActionTypeEnumForward {
			continue
		}
		if a.ForwardConfig != nil && len(a.ForwardConfig.TargetGroups) > 0 {
			for _, t := range a.ForwardConfig.TargetGroups {
				w := int32(1)
				if t.Weight != nil {
					w = *t.Weight
				}
				ru.tuples = append(ru.tuples, tuple{arn: aws.ToString(t.TargetGroupArn), weight: w})
			}
		} else if a.TargetGroupArn != nil {
			ru.tuples = append(ru.tuples, tuple{arn: *a.TargetGroupArn, weight: 1})
		}
	}
	return ru, true
}

// rulesOf returns the non-default rules of the listeners.
func (b *Balancer) rulesOf(ctx context.Context, ls []types.Listener) ([]rule, error) {
	var all []rule
	for _, l := range ls {
		arn := aws.ToString(l.ListenerArn)
		in := &elbv2.DescribeRulesInput{ListenerArn: aws.String(arn), PageSize: aws.Int32(400)}
		for {
			out, err := b.api.DescribeRules(ctx, in)
			if err != nil {
				err = awserr.Wrap("describe rules", err)
				if isNotFound(err) {
					break // the listener went away meanwhile: it has no rules
				}
				return nil, err
			}
			for _, r := range out.Rules {
				if ru, ok := parseRule(arn, r); ok {
					all = append(all, ru)
				}
			}
			if aws.ToString(out.NextMarker) == "" {
				break
			}
			in.Marker = out.NextMarker
		}
	}
	return all, nil
}

// routeRules returns the rules of route id — those forwarding to its
// default target group — best first: lowest priority, then ARN.
func routeRules(all []rule, id string) []rule {
	var out []rule
	for _, ru := range all {
		if ru.forwardsTo(id) {
			out = append(out, ru)
		}
	}
	slices.SortFunc(out, func(x, y rule) int {
		return cmp.Or(cmp.Compare(x.priority, y.priority), cmp.Compare(x.arn, y.arn))
	})
	return out
}

// conditions returns the rule conditions of r.
func (r route) conditions() []types.RuleCondition {
	var cs []types.RuleCondition
	if r.host != "" {
		cs = append(cs, types.RuleCondition{Field: aws.String("host-header"), HostHeaderConfig: &types.HostHeaderConditionConfig{Values: []string{r.host}}})
	}
	if len(r.patterns) > 0 {
		cs = append(cs, types.RuleCondition{Field: aws.String("path-pattern"), PathPatternConfig: &types.PathPatternConditionConfig{Values: slices.Clone(r.patterns)}})
	}
	return cs
}

// matches reports whether the rule has exactly r's conditions.
func (ru rule) matches(r route) bool {
	hosts := []string{}
	if r.host != "" {
		hosts = []string{r.host}
	}
	return !ru.other && sameSet(ru.hosts, hosts) && sameSet(ru.paths, r.patterns)
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// forward is a forward action to the tuples.
func forward(ts []tuple) []types.Action {
	fc := &types.ForwardActionConfig{}
	for _, t := range ts {
		fc.TargetGroups = append(fc.TargetGroups, types.TargetGroupTuple{TargetGroupArn: aws.String(t.arn), Weight: aws.Int32(t.weight)})
	}
	return []types.Action{{Type: types.ActionTypeEnumForward, ForwardConfig: fc}}
}

// ensureRule makes exactly one rule of route r exist, on listener, with
// r's conditions and a priority in r's band, forwarding to tg (and to the
// route's other target sets, whose weights are kept). Rules of the route
// on other listeners (after a protocol change) and duplicates (left by a
// concurrent writer) are deleted once the right one exists.
func (b *Balancer) ensureRule(ctx context.Context, listener string, all []rule, tg targetGroup, r route) error {
	mine := routeRules(all, r.id)
	var keep *rule
	for i := range mine {
		if mine[i].listener == listener {
			keep = &mine[i]
			break
		}
	}
	// A rule of another route with the same conditions would shadow or be
	// shadowed by this one: refuse it.
	for _, ru := range all {
		if ru.listener == listener && !ru.forwardsTo(r.id) && ru.matches(r) {
			owner := "another rule"
			if len(ru.tuples) > 0 {
				owner = "route " + targetGroupName(ru.tuples[0].arn)
			}
			return fmt.Errorf("%w: route %s: host %q path %q is already routed to %s", providers.ErrConflict, r.id, r.host, r.prefix, owner)
		}
	}
	if keep == nil {
		tuples := []tuple{{arn: tg.arn, weight: 100}}
		if len(mine) > 0 {
			tuples = mine[0].tuples // moving listeners: keep the sets and their weights
		}
		created, err := b.createRule(ctx, listener, all, tuples, r)
		if err != nil {
			return err
		}
		keep = &created
	} else {
		if i := slices.IndexFunc(keep.tuples, func(t tuple) bool { return targetGroupName(t.arn) == r.id }); keep.tuples[i].arn != tg.arn {
			// The default target group was re-created under its name.
			keep.tuples[i].arn = tg.arn
			if _, err := b.api.ModifyRule(ctx, &elbv2.ModifyRuleInput{RuleArn: aws.String(keep.arn), Actions: forward(keep.tuples)}); err != nil {
				return awserr.Wrap("modify rule of route "+r.id, err)
			}
		}
		if !keep.matches(r) {
			if _, err := b.api.ModifyRule(ctx, &elbv2.ModifyRuleInput{RuleArn: aws.String(keep.arn), Conditions: r.conditions()}); err != nil {
				return awserr.Wrap("modify rule of route "+r.id, err)
			}
		}
		if !r.inBand(keep.priority) {
			if err := b.reprioritize(ctx, listener, all, keep, r); err != nil {
				return err
			}
		}
	}
	for _, ru := range mine {
		if ru.arn != keep.arn {
			if err := b.deleteRule(ctx, ru.arn); err != nil {
				return err
			}
		}
	}
	b.mu.Lock()
	b.rules[r.id] = keep.arn
	b.mu.Unlock()
	return nil
}

// used returns the priorities in use on a listener.
func used(all []rule, listener string) map[int]bool {
	u := map[int]bool{}
	for _, ru := range all {
		if ru.listener == listener {
			u[ru.priority] = true
		}
	}
	return u
}

// maxPriorityRetries bounds the retries of a rule creation that lost a
// priority to a concurrent writer.
const maxPriorityRetries = 5

// createRule creates the rule of r on listener. When a concurrent writer
// takes the priority first (PriorityInUse), the listener's rules are read
// again and another priority is tried. After creating, the listener is
// read again: if a concurrent writer created a rule for the same route,
// every writer keeps the same one (lowest priority, then ARN) and deletes
// the others.
func (b *Balancer) createRule(ctx context.Context, listener string, all []rule, tuples []tuple, r route) (rule, error) {
	ls := []types.Listener{{ListenerArn: aws.String(listener)}}
	var err error
	for attempt := 1; ; attempt++ {
		p, ok := r.allocate(used(all, listener))
		if !ok {
			return rule{}, fmt.Errorf("%w: route %s: the listener has no free rule priority", providers.ErrInvalid, r.id)
		}
		_, err = b.api.CreateRule(ctx, &elbv2.CreateRuleInput{
			ListenerArn: aws.String(listener),
			Priority:    aws.Int32(int32(p)),
			Conditions:  r.conditions(),
			Actions:     forward(tuples),
			Tags:        b.tags(TagRoute, r.id, TagApp, r.app, TagProcess, r.process),
		})
		if err == nil {
			break
		}
		err = awserr.Wrap("create rule of route "+r.id, err)
		if awserr.Code(err) != "PriorityInUse" || attempt == maxPriorityRetries {
			return rule{}, err
		}
		if all, err = b.rulesOf(ctx, ls); err != nil {
			return rule{}, err
		}
	}
	again, err := b.rulesOf(ctx, ls)
	if err != nil {
		return rule{}, err
	}
	mine := routeRules(again, r.id)
	if len(mine) == 0 {
		return rule{}, fmt.Errorf("%w: route %s: the rule just created is not listed", providers.ErrUnavailable, r.id)
	}
	for _, dup := range mine[1:] {
		if err := b.deleteRule(ctx, dup.arn); err != nil {
			return rule{}, err
		}
	}
	return mine[0], nil
}

// reprioritize moves a rule whose conditions changed class into r's band.
func (b *Balancer) reprioritize(ctx context.Context, listener string, all []rule, ru *rule, r route) error {
	ls := []types.Listener{{ListenerArn: aws.String(listener)}}
	for attempt := 1; ; attempt++ {
		p, ok := r.allocate(used(all, listener))
		if !ok {
			return fmt.Errorf("%w: route %s: the listener has no free rule priority", providers.ErrInvalid, r.id)
		}
		_, err := b.api.SetRulePriorities(ctx, &elbv2.SetRulePrioritiesInput{
			RulePriorities: []types.RulePriorityPair{{RuleArn: aws.String(ru.arn), Priority: aws.Int32(int32(p))}},
		})
		if err == nil {
			ru.priority = p
			return nil
		}
		err = awserr.Wrap("set priority of route "+r.id, err)
		if awserr.Code(err) != "PriorityInUse" || attempt == maxPriorityRetries {
			return err
		}
		if all, err = b.rulesOf(ctx, ls); err != nil {
			return err
		}
	}
}

// deleteRule deletes a rule; a missing rule is not an error.
func (b *Balancer) deleteRule(ctx context.Context, arn string) error {
	_, err := b.api.DeleteRule(ctx, &elbv2.DeleteRuleInput{RuleArn: aws.String(arn)})
	if err = awserr.Wrap("delete rule", err); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// errNoRoute is the cause of ErrNotFound for an unknown route.
var errNoRoute = errors.New("no such route")

// found is a route as Health and the WeightShifter methods see it.
type found struct {
	rule *rule   // nil when the route has a target group but no rule
	sets []tuple // the default set first
}

// lookup finds route id: its rule through the cached rule ARN when it is
// still there, else by reading the listeners' rules; a route with a
// target group but no rule is found with the default set only. An unknown
// route is ErrNotFound.
func (b *Balancer) lookup(ctx context.Context, id string) (found, error) {
	if !validRouteID(id) {
		return found{}, fmt.Errorf("route %q: %w: %w", id, providers.ErrNotFound, errNoRoute)
	}
	b.mu.Lock()
	cached := b.rules[id]
	b.mu.Unlock()
	if cached != "" {
		out, err := b.api.DescribeRules(ctx, &elbv2.DescribeRulesInput{RuleArns: []string{cached}})
		err = awserr.Wrap("describe rule of route "+id, err)
		switch {
		case err == nil:
			for _, r := range out.Rules {
				if ru, ok := parseRule("", r); ok && ru.arn == cached && ru.forwardsTo(id) {
					return found{rule: &ru, sets: ordered(ru.tuples, id)}, nil
				}
			}
		case !isNotFound(err):
			return found{}, err
		}
		b.mu.Lock()
		delete(b.rules, id)
		b.mu.Unlock()
	}
	lb, err := b.loadBalancer(ctx, false)
	if err != nil {
		return found{}, err
	}
	if lb == nil {
		return found{}, fmt.Errorf("route %s: %w: %w", id, providers.ErrNotFound, errNoRoute)
	}
	ls, err := b.listeners(ctx, lb)
	if err != nil {
		return found{}, err
	}
	all, err := b.rulesOf(ctx, ls)
	if err != nil {
		return found{}, err
	}
	if mine := routeRules(all, id); len(mine) > 0 {
		ru := mine[0]
		b.mu.Lock()
		b.rules[id] = ru.arn
		b.mu.Unlock()
		return found{rule: &ru, sets: ordered(ru.tuples, id)}, nil
	}
	tg, err := b.describeTargetGroup(ctx, id)
	if err != nil {
		return found{}, err
	}
	if tg == nil {
		return found{}, fmt.Errorf("route %s: %w: %w", id, providers.ErrNotFound, errNoRoute)
	}
	// A target group of that name may belong to another load balancer's
	// route: then this balancer has no such route.
	if _, err := b.ownedBy(ctx, tg, lb, id, ""); errors.Is(err, providers.ErrConflict) {
		return found{}, fmt.Errorf("route %s: %w: %w", id, providers.ErrNotFound, errNoRoute)
	} else if err != nil {
		return found{}, err
	}
	return found{sets: []tuple{{arn: aws.ToString(tg.TargetGroupArn), weight: 1}}}, nil
}

// ordered returns the tuples with the default set first, then by set name.
func ordered(ts []tuple, id string) []tuple {
	out := slices.Clone(ts)
	slices.SortStableFunc(out, func(x, y tuple) int {
		return cmp.Compare(setName(id, x.arn), setName(id, y.arn))
	})
	return out
}

// setName returns the set of route id a target group ARN belongs to: ""
// for the default target group "<id>", "<set>" for "<id>-<set>", and the
// whole target group name for a target group of another name.
func setName(id, arn string) string {
	name := targetGroupName(arn)
	switch {
	case name == id:
		return ""
	case len(name) > len(id)+1 && name[:len(id)+1] == id+"-":
		return name[len(id)+1:]
	default:
		return name
	}
}
