package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/convox-go/convox/providers"
)

// BalancerName is the name of a rack's default balancer (Rack.Balancer):
// the Binding.Balancer of every binding it makes. Additional balancers
// (Options.Balancers) have names of their own.
const BalancerName = "local"

// maxBalancerName is the longest name of an additional balancer.
const maxBalancerName = 32

// Balancer is one of the rack's balancers (Rack.Balancer, the default, or
// Rack.BalancerNamed), a providers.Balancer and providers.WeightShifter:
// one HTTP reverse proxy per route, listening on 127.0.0.1 and speaking
// HTTP/1.1 and HTTP/2 without TLS (prior knowledge) to clients and
// HTTP/1.1 to targets.
//
// Each route has target sets: the default set "" and the sets made by
// EnsureTargetSet. A set's binding has Balancer set to the balancer's Name
// and Target providers.ResourceName(app, process, set); the scheduler of
// the same rack registers its tasks' addresses in the sets its Desired
// names, of this balancer or of any other balancer of the rack. Each
// balancer has routes and ports of its own, so two balancers may each
// serve a route of the same app and process, with the same route ID.
//
// The request path reads one atomic pointer to an immutable snapshot of the
// routable targets (healthy targets of sets with weight above zero), picks
// a set by weight and a target round-robin with atomic counters, and
// forwards the request on its own goroutine over one of the target's
// kept-alive connections (proxy_forward.go): no lock but the pool's and
// no allocation of its own. Websocket upgrades and Expect: 100-continue
// go through httputil.ReverseProxy over connections of the same target.
// Health checks, weight changes and draining build a new snapshot.
//
// Removing a target (draining) takes it out of the snapshot first and then
// waits until its in-flight requests finish (bounded by the route's
// DeregistrationDelay) before the scheduler stops the process, so a rolling
// update fails no request; websockets and streams still open when the
// delay ends are closed then. A set whose weight drops to zero drains the
// same way: its open connections go on for the delay and are closed after
// it, unless the set is weighted again first.
type Balancer struct {
	name      string
	stateFile string
	ports     map[string]int
	log       *slog.Logger
	probe     *http.Client

	mu     sync.Mutex
	routes map[string]*route
	sets   map[string]*targetSet // by binding target
	closed bool
}

var (
	_ providers.Balancer      = (*Balancer)(nil)
	_ providers.WeightShifter = (*Balancer)(nil)
)

// defaultDeregisterDelay is the deregistration delay of a RouteSpec that
// sets none.
const defaultDeregisterDelay = 30 * time.Second

// localHealthDefaults are the local rack's health-check defaults: shorter
// than providers.DefaultHealthCheck, since probes cost nothing on one
// machine and deploys should settle quickly.
var localHealthDefaults = providers.HealthCheck{
	Path:      providers.DefaultHealthPath,
	Interval:  2 * time.Second,
	Timeout:   time.Second,
	Healthy:   2,
	Unhealthy: 2,
}

// withHealthDefaults returns h with zero or negative fields (other than
// Grace) set to localHealthDefaults.
func withHealthDefaults(h providers.HealthCheck) providers.HealthCheck {
	h.Interval, h.Timeout = max(h.Interval, 0), max(h.Timeout, 0)
	h.Healthy, h.Unhealthy = max(h.Healthy, 0), max(h.Unhealthy, 0)
	return h.WithDefaults(localHealthDefaults)
}

type route struct {
	b    *Balancer
	id   string
	port int
	srv  *http.Server
	n    atomic.Uint64 // requests, for the weighted pick
	snap atomic.Pointer[snapshot]

	// guarded by b.mu
	spec    providers.RouteSpec
	sets    map[string]*targetSet
	weights map[string]int
	stop    chan struct{}
	done    chan struct{}
	kick    chan struct{}
}

type targetSet struct {
	name    string
	binding string
	route   *route
	rr      atomic.Uint64
	// guarded by b.mu
	targets map[string]*target
	drain   uint64 // generation of the set's weight changes, for drainSet
}

type target struct {
	addr     string
	log      *slog.Logger
	up       *upstream              // the target's connections
	proxy    *httputil.ReverseProxy // upgrades and Expect: 100-continue
	inflight atomic.Int64
	removed  atomic.Bool

	// guarded by b.mu
	state       providers.TargetState
	reason      string
	okRun, fail int
}

// snapshot is the immutable routing state of a route.
type snapshot struct {
	host, path string
	sets       []snapSet
	total      int
}

type snapSet struct {
	weight  int
	rr      *atomic.Uint64
	targets []*target
}

func (s *snapshot) pick(n uint64) *target {
	var set *snapSet
	switch len(s.sets) {
	case 0:
		return nil
	case 1:
		set = &s.sets[0]
	default:
		w := int(n % uint64(s.total))
		for i := range s.sets {
			if w < s.sets[i].weight {
				set = &s.sets[i]
				break
			}
			w -= s.sets[i].weight
		}
	}
	return set.targets[set.rr.Add(1)%uint64(len(set.targets))]
}

func newBalancer(name, stateFile string, ports map[string]int, log *slog.Logger) *Balancer {
	return &Balancer{
		name:      name,
		stateFile: stateFile,
		ports:     ports,
		log:       log,
		probe:     &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		routes:    map[string]*route{},
		sets:      map[string]*targetSet{},
	}
}

// ServeHTTP routes one request to a target of the route.
func (r *route) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s := r.snap.Load()
	if (s.host != "" && stripPort(req.Host) != s.host) || (s.path != "" && !strings.HasPrefix(req.URL.Path, s.path)) {
		http.NotFound(w, req)
		return
	}
	for range 3 {
		t := s.pick(r.n.Add(1))
		if t == nil {
			break
		}
		// Count the request before checking removal: a drainer sets removed
		// before reading inflight, so one of the two sees the other.
		t.inflight.Add(1)
		if t.removed.Load() {
			t.inflight.Add(-1)
			s = r.snap.Load()
			continue
		}
		serve(t, w, req)
		return
	}
	http.Error(w, "no healthy targets", http.StatusServiceUnavailable)
}

func serve(t *target, w http.ResponseWriter, req *http.Request) {
	defer t.inflight.Add(-1)
	t.forward(w, req)
}

func stripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

func (b *Balancer) newTarget(addr string) *target {
	t := &target{addr: addr, log: b.log, up: newUpstream(addr), state: providers.TargetInitial}
	t.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addr
			pr.SetXForwarded()
		},
		// Its connections are the target's, cut with the others when a
		// drain ends.
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           t.up.dialContext,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       upstreamIdleTimeout,
			ExpectContinueTimeout: time.Second,
		},
		BufferPool: bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			b.log.Debug("proxy error", "target", addr, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return t
}

// rebuild publishes a new snapshot of the route; b.mu is held.
func (r *route) rebuild() {
	s := &snapshot{host: r.spec.Host, path: r.spec.Path}
	names := make([]string, 0, len(r.sets))
	for n := range r.sets {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		set, w := r.sets[n], r.weights[n]
		if w <= 0 {
			continue
		}
		var ts []*target
		for _, t := range set.targets {
			if t.state == providers.TargetHealthy && !t.removed.Load() {
				ts = append(ts, t)
			}
		}
		if len(ts) == 0 {
			continue
		}
		slices.SortFunc(ts, func(a, b *target) int { return strings.Compare(a.addr, b.addr) })
		s.sets = append(s.sets, snapSet{weight: w, rr: &set.rr, targets: ts})
		s.total += w
	}
	r.snap.Store(s)
}

// Name returns the balancer's name: the Binding.Balancer of its bindings.
func (b *Balancer) Name() string { return b.name }

func (b *Balancer) binding(r *route, set string) providers.Binding {
	return providers.Binding{Balancer: b.name, Kind: providers.BindingLocal, Target: providers.ResourceName(r.spec.App, r.spec.Process, set), Port: r.spec.Port}
}

func (b *Balancer) routeInfo(r *route) providers.Route {
	return providers.Route{ID: r.id, Endpoint: "http://127.0.0.1:" + strconv.Itoa(r.port), Binding: b.binding(r, "")}
}

// EnsureRoute creates the route's proxy (listening on the port configured
// for the balancer and "app/process" in Options.RoutePorts, or one the OS
// picks) or updates the existing one. The route ID is providers.ResourceName(app, process, "").
// A configured port that another program holds returns ErrConflict (one
// the rack may not bind, ErrPermission);
// HTTPS and HTTP2 return ErrUnimplemented.
func (b *Balancer) EnsureRoute(ctx context.Context, spec providers.RouteSpec) (providers.Route, error) {
	if err := ctx.Err(); err != nil {
		return providers.Route{}, err
	}
	if err := providers.ValidateAppProcess(spec.App, spec.Process); err != nil {
		return providers.Route{}, err
	}
	switch {
	case spec.Port <= 0 || spec.Port > 65535:
		return providers.Route{}, providers.Invalidf("route %s/%s: port %d is not 1-65535", spec.App, spec.Process, spec.Port)
	case spec.Protocol == providers.HTTPS || spec.Protocol == providers.HTTP2:
		return providers.Route{}, fmt.Errorf("route %s/%s: the local balancer serves plain HTTP, not %s: %w", spec.App, spec.Process, spec.Protocol, providers.ErrUnimplemented)
	case spec.Protocol != "" && spec.Protocol != providers.HTTP:
		return providers.Route{}, providers.Invalidf("route %s/%s: unknown protocol %q", spec.App, spec.Process, spec.Protocol)
	case spec.Path != "" && !strings.HasPrefix(spec.Path, "/"):
		return providers.Route{}, providers.Invalidf("route %s/%s: path %q must start with /", spec.App, spec.Process, spec.Path)
	case spec.DeregistrationDelay < 0:
		return providers.Route{}, providers.Invalidf("route %s/%s: negative deregistration delay", spec.App, spec.Process)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return providers.Route{}, fmt.Errorf("balancer is closed: %w", providers.ErrUnavailable)
	}
	id := providers.ResourceName(spec.App, spec.Process, "")
	if r := b.routes[id]; r != nil {
		r.spec = spec
		r.rebuild()
		if err := b.save(); err != nil {
			return providers.Route{}, err
		}
		r.kickHealth()
		return b.routeInfo(r), nil
	}
	port := b.ports[spec.App+"/"+spec.Process]
	r, err := b.startRoute(id, spec, port, map[string]int{"": 100}, []string{""})
	if err != nil {
		return providers.Route{}, err
	}
	if err := b.save(); err != nil {
		b.stopRoute(r)
		return providers.Route{}, err
	}
	return b.routeInfo(r), nil
}

// startRoute listens and serves a route; b.mu is held.
func (b *Balancer) startRoute(id string, spec providers.RouteSpec, port int, weights map[string]int, sets []string) (*route, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		// A held port stays held until somebody frees it: that is a
		// conflict to report at once, not a fault to retry.
		sentinel := providers.ErrInvalid
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			sentinel = providers.ErrConflict
		case errors.Is(err, syscall.EACCES):
			sentinel = providers.ErrPermission
		}
		return nil, fmt.Errorf("route %s of balancer %s: listen on 127.0.0.1:%d: %w: %w", id, b.name, port, sentinel, err)
	}
	r := &route{
		b: b, id: id, spec: spec, port: ln.Addr().(*net.TCPAddr).Port,
		sets: map[string]*targetSet{}, weights: weights,
		stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1),
	}
	for _, name := range sets {
		set := &targetSet{name: name, route: r, binding: providers.ResourceName(spec.App, spec.Process, name), targets: map[string]*target{}}
		r.sets[name] = set
		b.sets[set.binding] = set
	}
	r.rebuild()
	// Clients may speak HTTP/1.1 or HTTP/2 without TLS (prior knowledge).
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	r.srv = &http.Server{Handler: r, Protocols: &protocols, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: discardLogger}
	go r.srv.Serve(ln)
	go r.healthLoop()
	b.routes[id] = r
	return r, nil
}

// stopRoute stops serving a route and forgets it; b.mu is held.
func (b *Balancer) stopRoute(r *route) {
	close(r.stop)
	r.srv.Close()
	for _, set := range r.sets {
		for _, t := range set.targets {
			t.removed.Store(true)
			t.up.closeAll(true)
		}
		delete(b.sets, set.binding)
	}
	delete(b.routes, r.id)
}

func (b *Balancer) get(routeID string) (*route, error) {
	r := b.routes[routeID]
	if r == nil {
		return nil, fmt.Errorf("route %q of balancer %s: %w", routeID, b.name, providers.ErrNotFound)
	}
	return r, nil
}

// Health returns the targets of every set of the route ordered by set then
// target; removed targets still draining are reported as draining.
func (b *Balancer) Health(ctx context.Context, routeID string) ([]providers.TargetHealth, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.get(routeID)
	if err != nil {
		return nil, err
	}
	out := []providers.TargetHealth{}
	for name, set := range r.sets {
		for _, t := range set.targets {
			st := t.state
			if t.removed.Load() {
				st = providers.TargetDraining
			}
			out = append(out, providers.TargetHealth{Target: t.addr, Set: name, State: st, Reason: t.reason})
		}
	}
	slices.SortFunc(out, func(x, y providers.TargetHealth) int {
		return cmp.Or(strings.Compare(x.Set, y.Set), strings.Compare(x.Target, y.Target))
	})
	return out, nil
}

// DeleteRoute stops the route's proxy and removes its target sets.
func (b *Balancer) DeleteRoute(ctx context.Context, routeID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.routes[routeID]
	if r == nil {
		return nil
	}
	b.stopRoute(r)
	return b.save()
}

// EnsureTargetSet creates (or finds) a named set of the route with weight
// zero and returns its binding.
func (b *Balancer) EnsureTargetSet(ctx context.Context, routeID, set string) (providers.Binding, error) {
	if err := ctx.Err(); err != nil {
		return providers.Binding{}, err
	}
	if err := providers.ValidateName("target set", set, providers.MaxSetName); err != nil {
		return providers.Binding{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.get(routeID)
	if err != nil {
		return providers.Binding{}, err
	}
	if r.sets[set] == nil {
		ts := &targetSet{name: set, route: r, binding: providers.ResourceName(r.spec.App, r.spec.Process, set), targets: map[string]*target{}}
		r.sets[set] = ts
		r.weights[set] = 0
		b.sets[ts.binding] = ts
		if err := b.save(); err != nil {
			return providers.Binding{}, err
		}
	}
	return b.binding(r, set), nil
}

// SetWeights sets the weights of the route's sets; sets not named get
// weight zero.
func (b *Balancer) SetWeights(ctx context.Context, routeID string, weights map[string]int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.get(routeID)
	if err != nil {
		return err
	}
	sum := 0
	for set, w := range weights {
		if r.sets[set] == nil {
			return fmt.Errorf("route %q: target set %q: %w", routeID, set, providers.ErrNotFound)
		}
		if w < 0 || w > 100 {
			return providers.Invalidf("route %q: weight %d of set %q is not 0-100", routeID, w, set)
		}
		sum += w
	}
	if sum != 100 {
		return providers.Invalidf("route %q: weights sum to %d, not 100", routeID, sum)
	}
	for name, set := range r.sets {
		before, after := r.weights[name], weights[name]
		r.weights[name] = after
		switch {
		case after > 0:
			set.drain++ // a pending drain of the set ends here
		case before > 0:
			set.drain++
			r.drainSet(set, set.drain)
		}
	}
	r.rebuild()
	return b.save()
}

// drainSet lets the requests and connections of a set that lost its
// weight go on for the route's deregistration delay, then closes the
// connections still open (websockets, streams), unless the set got weight
// again meanwhile; b.mu is held.
func (r *route) drainSet(set *targetSet, gen uint64) {
	time.AfterFunc(r.drainDelay(), func() {
		r.b.mu.Lock()
		if set.drain != gen || (r.sets[set.name] == set && r.weights[set.name] > 0) {
			r.b.mu.Unlock()
			return
		}
		ts := make([]*target, 0, len(set.targets))
		for _, t := range set.targets {
			ts = append(ts, t)
		}
		r.b.mu.Unlock()
		for _, t := range ts {
			t.up.closeAll(false)
		}
	})
}

// drainDelay is how long removed targets drain; b.mu is held.
func (r *route) drainDelay() time.Duration {
	if d := r.spec.DeregistrationDelay; d > 0 {
		return d
	}
	return defaultDeregisterDelay
}

// Weights returns the weight of every set of the route.
func (b *Balancer) Weights(ctx context.Context, routeID string) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.get(routeID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(r.sets))
	for set := range r.sets {
		out[set] = r.weights[set]
	}
	return out, nil
}

// DeleteTargetSet removes a set with weight zero (ErrConflict when
// weighted); the default set cannot be deleted (ErrInvalid).
func (b *Balancer) DeleteTargetSet(ctx context.Context, routeID, set string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if set == "" {
		return providers.Invalidf("route %q: the default target set cannot be deleted", routeID)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.get(routeID)
	if err != nil {
		return err
	}
	ts := r.sets[set]
	if ts == nil {
		return nil
	}
	if r.weights[set] > 0 {
		return fmt.Errorf("route %q: target set %q has weight %d: %w", routeID, set, r.weights[set], providers.ErrConflict)
	}
	for _, t := range ts.targets {
		t.removed.Store(true)
	}
	delete(r.sets, set)
	delete(r.weights, set)
	delete(b.sets, ts.binding)
	r.rebuild()
	return b.save()
}

// hasTarget reports whether a binding target names a set of this balancer.
func (b *Balancer) hasTarget(binding string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sets[binding] != nil
}

// register adds addr to the sets named by bindings. A target the scheduler
// already found healthy joins the rotation at once; the route's health
// checks take over from there. Unknown sets are skipped.
func (b *Balancer) register(bindings []string, addr string, healthy bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bt := range bindings {
		set := b.sets[bt]
		if set == nil {
			continue
		}
		t := set.targets[addr]
		if t == nil || t.removed.Load() {
			t = b.newTarget(addr)
			set.targets[addr] = t
		}
		if healthy {
			t.state, t.reason, t.okRun, t.fail = providers.TargetHealthy, "", 0, 0
		}
		set.route.rebuild()
		set.route.kickHealth()
	}
}

// deregister takes addr out of the rotation of the sets named by bindings,
// waits until its in-flight requests finish (at most the route's
// deregistration delay, or until ctx ends) and forgets it.
func (b *Balancer) deregister(ctx context.Context, bindings []string, addr string) {
	type drain struct {
		set   *targetSet
		t     *target
		delay time.Duration
	}
	var drains []drain
	b.mu.Lock()
	for _, bt := range bindings {
		set := b.sets[bt]
		if set == nil || set.targets[addr] == nil {
			continue
		}
		t := set.targets[addr]
		t.removed.Store(true)
		set.route.rebuild()
		drains = append(drains, drain{set, t, set.route.drainDelay()})
	}
	b.mu.Unlock()
	for _, d := range drains {
		deadline := time.Now().Add(d.delay)
		for d.t.inflight.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		// What is still open after the delay (a websocket, a stream) is
		// closed now, before the scheduler stops the process.
		d.t.up.closeAll(true)
		b.mu.Lock()
		if d.set.targets[addr] == d.t {
			delete(d.set.targets, addr)
		}
		b.mu.Unlock()
	}
}

// dropTarget forgets addr in every set at once, without draining: its
// process is already gone.
func (b *Balancer) dropTarget(bindings []string, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bt := range bindings {
		set := b.sets[bt]
		if set == nil || set.targets[addr] == nil {
			continue
		}
		set.targets[addr].removed.Store(true)
		set.targets[addr].up.closeAll(true)
		delete(set.targets, addr)
		set.route.rebuild()
	}
}

func (r *route) kickHealth() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// healthLoop probes the route's targets every interval (and at once after
// a change) and publishes state changes.
func (r *route) healthLoop() {
	defer close(r.done)
	for {
		r.b.mu.Lock()
		h := withHealthDefaults(r.spec.Health)
		r.b.mu.Unlock()
		timer := time.NewTimer(h.Interval)
		select {
		case <-r.stop:
			timer.Stop()
			return
		case <-r.kick:
			timer.Stop()
		case <-timer.C:
		}
		r.checkOnce(h)
	}
}

func (r *route) checkOnce(h providers.HealthCheck) {
	type probe struct {
		t  *target
		ok bool
		re string
	}
	r.b.mu.Lock()
	var probes []*probe
	for _, set := range r.sets {
		for _, t := range set.targets {
			if !t.removed.Load() {
				probes = append(probes, &probe{t: t})
			}
		}
	}
	r.b.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() { p.ok, p.re = r.b.check(p.t.addr, h) })
	}
	wg.Wait()
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	changed := false
	for _, p := range probes {
		t, before := p.t, p.t.state
		if p.ok {
			t.fail = 0
			t.okRun++
			if t.okRun >= h.Healthy || t.state == providers.TargetHealthy {
				t.state, t.reason = providers.TargetHealthy, ""
			}
		} else {
			t.okRun = 0
			t.fail++
			t.reason = p.re
			if t.fail >= h.Unhealthy {
				t.state = providers.TargetUnhealthy
			}
		}
		changed = changed || t.state != before
	}
	if changed {
		r.rebuild()
	}
}

// check probes one target's health path.
func (b *Balancer) check(addr string, h providers.HealthCheck) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, (&url.URL{Scheme: "http", Host: addr, Path: h.Path}).String(), nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := b.probe.Do(req)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return false, "health check returned " + resp.Status
	}
	return true, ""
}

// routeState is the persisted form of a route.
type routeState struct {
	ID      string              `json:"id"`
	Spec    providers.RouteSpec `json:"spec"`
	Port    int                 `json:"port"`
	Weights map[string]int      `json:"weights"`
}

// save persists every route; b.mu is held.
func (b *Balancer) save() error {
	states := []routeState{}
	for _, r := range b.routes {
		states = append(states, routeState{ID: r.id, Spec: r.spec, Port: r.port, Weights: r.weights})
	}
	slices.SortFunc(states, func(x, y routeState) int { return strings.Compare(x.ID, y.ID) })
	if err := writeJSONAtomic(b.stateFile, states); err != nil {
		return fsError("save routes", err)
	}
	return nil
}

// restore serves the persisted routes again, on their old ports when they
// are free and on new ones otherwise.
func (b *Balancer) restore() error {
	var states []routeState
	if err := readJSON(b.stateFile, &states); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("routes file %s of balancer %s is unreadable: %w", b.stateFile, b.name, fsOrInvalid(err))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, st := range states {
		sets := make([]string, 0, len(st.Weights))
		for s := range st.Weights {
			sets = append(sets, s)
		}
		if st.Weights == nil {
			st.Weights, sets = map[string]int{"": 100}, []string{""}
		}
		if _, err := b.startRoute(st.ID, st.Spec, st.Port, st.Weights, sets); err != nil {
			b.log.Warn("route port is taken; serving the route on a new port", "balancer", b.name, "route", st.ID, "port", st.Port, "err", err)
			if _, err := b.startRoute(st.ID, st.Spec, 0, st.Weights, sets); err != nil {
				return err
			}
		}
	}
	return b.save()
}

// close stops every route's proxy and health checks.
func (b *Balancer) close() {
	b.mu.Lock()
	b.closed = true
	routes := make([]*route, 0, len(b.routes))
	for _, r := range b.routes {
		routes = append(routes, r)
	}
	for _, r := range routes {
		close(r.stop)
	}
	b.mu.Unlock()
	for _, r := range routes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.srv.Shutdown(ctx)
		cancel()
		<-r.done
	}
	// Shutdown does not wait for hijacked connections (websockets):
	// closing the targets' connections ends them.
	b.mu.Lock()
	var ups []*upstream
	for _, r := range routes {
		for _, set := range r.sets {
			for _, t := range set.targets {
				ups = append(ups, t.up)
			}
		}
	}
	b.mu.Unlock()
	for _, u := range ups {
		u.closeAll(true)
	}
}
