package convox

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/convox-go/convox/providers"
)

// DefaultName is the name of a provider given in a Rack's single-provider
// field (Rack.Registry, Rack.Balancer, ...).
const DefaultName = "default"

// Named is a provider registered under a name, so a rack can hold several
// of a kind (balancers "elb" and "alb", registries "docker" and "ecr") and
// each app can select one.
type Named[T any] struct {
	Name     string
	Provider T
}

// Rack is the bundle of providers a Client deploys on. The local and fake
// racks give theirs ready-made (local.Rack.ConvoxRack,
// fake.Rack.ConvoxRack); a rack on AWS lists its providers here.
//
// Each kind can be given once in its single field, or several times by name
// in its plural field; an app selects a named provider through AppSpec and
// gets the default otherwise. The default is the single field when it is
// set (under DefaultName), else the first named provider. Moving an app from
// one named provider to another is a change of AppSpec, and adding a
// provider to a rack is one line:
//
//	rack := convox.Rack{
//		Balancers: []convox.Named[providers.Balancer]{{"elb", elb}, {"alb", alb}},
//		...
//	}
type Rack struct {
	Registry  providers.Registry
	Scheduler providers.Scheduler
	Balancer  providers.Balancer
	Logs      providers.Logs
	// Store holds apps and release history. It is shared by every app.
	Store providers.Store
	// Notifiers receive deploy outcomes; a failing notifier never fails a deploy.
	Notifiers []providers.Notifier

	Registries  []Named[providers.Registry]
	Schedulers  []Named[providers.Scheduler]
	Balancers   []Named[providers.Balancer]
	LogBackends []Named[providers.Logs]
}

// Capability names an optional provider ability that an operation needs.
type Capability string

// Capabilities, named for the optional interface that provides them.
const (
	CapTaskRunner    Capability = "TaskRunner"    // scheduler: one-off processes
	CapCanceler      Capability = "Canceler"      // scheduler: stop an in-flight rollout
	CapBatchStatus   Capability = "BatchStatus"   // scheduler: many apps per call
	CapWeightShifter Capability = "WeightShifter" // balancer: weighted target sets (canary, blue/green)
	CapStager        Capability = "Stager"        // scheduler: a release staged beside the serving one (canary, blue/green)
	CapLogTailer     Capability = "LogTailer"     // logs: pushed tailing
	CapLogSubscriber Capability = "LogSubscriber" // logs: subscription filters (AppClient.Subscribe)
	CapImageLister   Capability = "ImageLister"   // registry: list images
	CapImageDeleter  Capability = "ImageDeleter"  // registry: delete images

	CapChangePlanner Capability = "ChangePlanner" // scheduler: resource changes in AppClient.Plan
	CapDriftDetector Capability = "DriftDetector" // scheduler: AppClient.Drift
	CapEventReporter Capability = "EventReporter" // scheduler: platform events during deploys
)

// Check reports, before any side effect, whether the rack's default
// providers offer every capability; with no capabilities it checks that the
// required providers are present. The error matches providers.ErrUnimplemented (a
// missing capability) or providers.ErrInvalid (a malformed rack).
func (r Rack) Check(caps ...Capability) error {
	rk, err := r.resolve()
	if err != nil {
		return wrapErr("Check", "", "", err)
	}
	sel, err := rk.selectFor(AppSpec{})
	if err != nil {
		return wrapErr("Check", "", "", err)
	}
	return wrapErr("Check", "", "", sel.check(caps...))
}

// named is one kind's providers in order, the first being the default.
type named[T any] struct {
	kind  string
	items []Named[T]
}

func (n named[T]) get(name string) (string, T, error) {
	var zero T
	if len(n.items) == 0 {
		return "", zero, providers.Invalidf("the rack has no %s", n.kind)
	}
	if name == "" {
		return n.items[0].Name, n.items[0].Provider, nil
	}
	for _, it := range n.items {
		if it.Name == name {
			return it.Name, it.Provider, nil
		}
	}
	names := make([]string, len(n.items))
	for i, it := range n.items {
		names[i] = it.Name
	}
	return "", zero, providers.Invalidf("the rack has no %s named %q (it has %s)", n.kind, name, strings.Join(names, ", "))
}

func (n named[T]) byName() map[string]T {
	m := make(map[string]T, len(n.items))
	for _, it := range n.items {
		m[it.Name] = it.Provider
	}
	return m
}

func mkNamed[T comparable](kind string, single T, list []Named[T], required bool) (named[T], error) {
	var zero T
	n := named[T]{kind: kind}
	if single != zero {
		n.items = append(n.items, Named[T]{Name: DefaultName, Provider: single})
	}
	seen := map[string]bool{}
	if single != zero {
		seen[DefaultName] = true
	}
	for _, it := range list {
		if it.Name == "" {
			return n, providers.Invalidf("a %s in the rack has an empty name", kind)
		}
		if seen[it.Name] {
			return n, providers.Invalidf("two %ss in the rack are named %q", kind, it.Name)
		}
		if it.Provider == zero {
			return n, providers.Invalidf("%s %q in the rack is nil", kind, it.Name)
		}
		seen[it.Name] = true
		n.items = append(n.items, it)
	}
	if required && len(n.items) == 0 {
		return n, providers.Invalidf("the rack needs a %s", kind)
	}
	return n, nil
}

// rack is a validated Rack.
type rack struct {
	registries named[providers.Registry]
	schedulers named[providers.Scheduler]
	balancers  named[providers.Balancer]
	logs       named[providers.Logs]
	store      providers.Store
	notifiers  []providers.Notifier
	// schedChains are the chains of the schedulers, by name; nil for a
	// rack only checked (Rack.Check), whose providers are never called.
	schedChains map[string]*chain
}

// wrap makes every provider of the rack call through its own chain of c
// (chain.go), once, when c is made: the registries, balancers, logs
// backends, store and notifiers are replaced by wrappers with the same
// capabilities; the schedulers keep their own value, and each selection
// calls them through their chain (schedulerCalls).
func (rk *rack) wrap(c *Client) {
	for i, it := range rk.registries.items {
		rk.registries.items[i].Provider = wrapRegistry(c.newChain(KindRegistry, it.Name), it.Provider)
	}
	rk.schedChains = map[string]*chain{}
	for _, it := range rk.schedulers.items {
		rk.schedChains[it.Name] = c.newChain(KindScheduler, it.Name)
	}
	for i, it := range rk.balancers.items {
		rk.balancers.items[i].Provider = wrapBalancer(c.newChain(KindBalancer, it.Name), it.Provider)
	}
	for i, it := range rk.logs.items {
		rk.logs.items[i].Provider = wrapLogs(c.newChain(KindLogs, it.Name), it.Provider)
	}
	rk.store = storeCalls{ch: c.newChain(KindStore, DefaultName), s: rk.store}
	notifiers := make([]providers.Notifier, len(rk.notifiers))
	for i, n := range rk.notifiers {
		notifiers[i] = notifierCalls{ch: c.newChain(KindNotifier, strconv.Itoa(i)), n: n}
	}
	rk.notifiers = notifiers
}

func (r Rack) resolve() (rack, error) {
	var rk rack
	var err error
	if rk.registries, err = mkNamed("registry", r.Registry, r.Registries, true); err != nil {
		return rk, err
	}
	if rk.schedulers, err = mkNamed("scheduler", r.Scheduler, r.Schedulers, true); err != nil {
		return rk, err
	}
	if rk.balancers, err = mkNamed("balancer", r.Balancer, r.Balancers, false); err != nil {
		return rk, err
	}
	if rk.logs, err = mkNamed("logs backend", r.Logs, r.LogBackends, true); err != nil {
		return rk, err
	}
	if r.Store == nil {
		return rk, providers.Invalidf("the rack needs a store")
	}
	rk.store = r.Store
	for i, n := range r.Notifiers {
		if n == nil {
			return rk, providers.Invalidf("notifier %d in the rack is nil", i)
		}
	}
	rk.notifiers = r.Notifiers
	return rk, nil
}

// selection is the providers one app uses.
type selection struct {
	spec     AppSpec // with every name resolved
	registry providers.Registry
	// scheduler is the scheduler itself, for capability checks and the
	// capabilities that describe it (providers.Bounded,
	// providers.BindingAcceptor); its calls go through sched.
	scheduler providers.Scheduler
	balancer  providers.Balancer // nil when the rack has none
	balancers map[string]providers.Balancer
	logs      providers.Logs
	sched     schedulerCalls // the scheduler's calls, through its chain
}

// selectFor resolves an app's provider names; empty names take defaults.
func (rk rack) selectFor(spec AppSpec) (selection, error) {
	var s selection
	var err error
	if s.spec.Registry, s.registry, err = rk.registries.get(spec.Registry); err != nil {
		return s, err
	}
	if s.spec.Scheduler, s.scheduler, err = rk.schedulers.get(spec.Scheduler); err != nil {
		return s, err
	}
	if s.spec.Logs, s.logs, err = rk.logs.get(spec.Logs); err != nil {
		return s, err
	}
	if len(rk.balancers.items) > 0 || spec.Balancer != "" {
		if s.spec.Balancer, s.balancer, err = rk.balancers.get(spec.Balancer); err != nil {
			return s, err
		}
	}
	s.balancers = rk.balancers.byName()
	s.sched = schedulerCalls{ch: rk.schedChains[s.spec.Scheduler], s: s.scheduler}
	return s, nil
}

// check reports the first missing capability of the selected providers.
func (s selection) check(caps ...Capability) error {
	for _, c := range caps {
		var ok bool
		var kind, name string
		switch c {
		case CapTaskRunner:
			_, ok = s.scheduler.(providers.TaskRunner)
			kind, name = "scheduler", s.spec.Scheduler
		case CapCanceler:
			_, ok = s.scheduler.(providers.Canceler)
			kind, name = "scheduler", s.spec.Scheduler
		case CapBatchStatus:
			_, ok = s.scheduler.(providers.BatchStatus)
			kind, name = "scheduler", s.spec.Scheduler
		case CapStager:
			_, ok = s.scheduler.(providers.Stager)
			kind, name = "scheduler", s.spec.Scheduler
		case CapWeightShifter:
			_, ok = s.balancer.(providers.WeightShifter)
			kind, name = "balancer", s.spec.Balancer
		case CapLogTailer:
			_, ok = s.logs.(providers.LogTailer)
			kind, name = "logs backend", s.spec.Logs
		case CapLogSubscriber:
			_, ok = s.logs.(providers.LogSubscriber)
			kind, name = "logs backend", s.spec.Logs
		case CapImageLister:
			_, ok = s.registry.(providers.ImageLister)
			kind, name = "registry", s.spec.Registry
		case CapImageDeleter:
			_, ok = s.registry.(providers.ImageDeleter)
			kind, name = "registry", s.spec.Registry
		case CapChangePlanner:
			_, ok = s.scheduler.(providers.ChangePlanner)
			kind, name = "scheduler", s.spec.Scheduler
		case CapDriftDetector:
			_, ok = s.scheduler.(providers.DriftDetector)
			kind, name = "scheduler", s.spec.Scheduler
		case CapEventReporter:
			_, ok = s.scheduler.(providers.EventReporter)
			kind, name = "scheduler", s.spec.Scheduler
		default:
			return providers.Invalidf("unknown capability %q", c)
		}
		if !ok {
			if name == "" {
				return fmt.Errorf("%w: the rack has no %s, which %s needs", providers.ErrUnimplemented, kind, c)
			}
			return fmt.Errorf("%w: %s %q does not implement %s", providers.ErrUnimplemented, kind, name, c)
		}
	}
	return nil
}
