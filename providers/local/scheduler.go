package local

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/providers"
)

// Scheduler is the rack's providers.Scheduler, with BindingAcceptor
// (providers.BindingLocal only), TaskRunner, Canceler, BatchStatus and
// Stager (a staged release runs beside the serving one, typically bound
// to a weighted target set of the balancer, for blue/green and canary).
//
// It accepts the bindings of every balancer of its rack (the default one
// and those of Options.Balancers): a process bound to several target sets,
// of one balancer or of several, has each of its tasks registered in all
// of them and drained from all of them before the task stops.
//
// Each process instance is a supervised slot: it starts the process from
// the image's unpacked root file system with the release environment plus
// PORT (a free port on 127.0.0.1), waits until it is healthy (HTTP GET of
// the health path on that port; a process without a port once it has
// stayed up for Health.Grace; a task that has not bound its port yet is
// starting, and its failed checks count only after the longer of
// Health.Grace and 30 seconds), joins the balancer's target sets, and
// restarts the process with exponential backoff whenever it exits.
//
// A rollout starts new slots for every process type whose release, image,
// command, environment, port or health check changed (and extra slots
// when only the count grew), waits until all of them are healthy, then
// registers them, drains the old slots from the balancer and stops them
// (SIGTERM to the process group, SIGKILL after the grace period). If the
// new slots fail to start FailureThreshold times for a process type, or
// the rollout is canceled or superseded before they are healthy, the new
// slots are stopped and the old ones, which never stopped serving, stay.
//
// Bindings are not part of what a slot runs: applying a Desired that
// changes only the bindings of a process (a route of a second balancer
// added, or the first one's removed, as in a balancer migration) restarts
// nothing. The running tasks are attached in place: each joins its new
// target sets at once as a healthy target (it already passed its health
// checks), then leaves the sets it no longer has, drained like a stopping
// task (out of rotation first, then its in-flight requests finish, bounded
// by the route's DeregistrationDelay). The rollout completes once those
// drains have finished. No in-flight request fails, and a target set the
// new bindings keep never loses the task; a route the task leaves answers
// 503 once it has no target left, so clients move off it first.
//
// Each app's last completed Desired and its recent rollouts are persisted,
// so a reopened rack starts the same processes again; every task has a pid
// file so that processes left by a crashed run are killed first.
type Scheduler struct {
	dir     string
	pidDir  string
	reg     *Registry
	bal     *Balancer            // the default balancer; probes health
	bals    map[string]*Balancer // every balancer of the rack by name
	logs    *Logs
	rootfs  *rootfsCache
	ports   *portAllocator
	opts    schedulerOptions
	log     *slog.Logger
	closing chan struct{}

	mu     sync.Mutex
	apps   map[string]*app
	oneOff map[string]map[string]*oneOffTask // app -> task id
	tokens map[string]string                 // app + "\x00" + run token -> task id
	closed bool
	wg     sync.WaitGroup
}

var (
	_ providers.Scheduler       = (*Scheduler)(nil)
	_ providers.BindingAcceptor = (*Scheduler)(nil)
	_ providers.TaskRunner      = (*Scheduler)(nil)
	_ providers.Canceler        = (*Scheduler)(nil)
	_ providers.BatchStatus     = (*Scheduler)(nil)
	_ providers.Stager          = (*Scheduler)(nil)
)

type schedulerOptions struct {
	grace, backoff, maxBackoff time.Duration
	threshold                  int
	limits                     providers.Limits
}

// History kept per app.
const (
	keepRollouts = 20
	keepStopped  = 20
	keepOneOffs  = 50
)

// app is the scheduler's state of one app; fields are guarded by s.mu.
type app struct {
	name     string
	active   *providers.Desired // last completed
	release  string
	seq      int
	rollouts []*rolloutRec // newest first
	slots    map[string][]*slot
	stopped  []providers.Task // newest first
	starting []*slot          // slots of the in-flight rollout not yet switched to
	staged   *stageRec        // a release running beside the serving one (Stager)
	draining []*slot          // replaced slots being stopped outside a rollout
	pending  *rolloutRec
	cur      *rolloutRec
	wake     chan struct{}
	changed  chan struct{}
	deleted  bool
	loopDone chan struct{}
	// corrupt is why the app's persisted state could not be read at
	// Open: Status reports it until an Apply replaces the state.
	corrupt error
}

type rolloutRec struct {
	providers.Rollout
	desired  providers.Desired
	internal bool // a recovery or revert, not started by Apply
	cancel   context.CancelFunc
	phase2   bool
	canceled string // why a cancel was requested
}

// slotSpec is what a slot runs; it is shared by the slots of one process
// type and release.
type slotSpec struct {
	app     string
	release string
	image   providers.Image
	proc    providers.Process
	env     map[string]string
	hash    string
}

// bindingRef names a target set of one of the rack's balancers.
type bindingRef struct {
	balancer string
	target   string
}

// bindingRefs returns the target sets named by bindings, sorted and
// without duplicates.
func bindingRefs(bs []providers.Binding) []bindingRef {
	refs := make([]bindingRef, 0, len(bs))
	for _, b := range bs {
		refs = append(refs, bindingRef{balancer: b.Balancer, target: b.Target})
	}
	slices.SortFunc(refs, func(x, y bindingRef) int {
		return cmp.Or(strings.Compare(x.balancer, y.balancer), strings.Compare(x.target, y.target))
	})
	return slices.Compact(refs)
}

// slot is one supervised instance; mutable fields are guarded by s.mu.
type slot struct {
	spec     *slotSpec
	bindings []bindingRef
	live     bool // joined the balancer: registers whenever ready
	task     *providers.Task
	p        *proc
	ready    bool
	failures int
	lastFail string
	stopping bool
	stopCh   chan struct{}
	done     chan struct{}
}

type oneOffTask struct {
	task providers.Task
	p    *proc
}

func newScheduler(dir string, reg *Registry, bal *Balancer, bals map[string]*Balancer, logs *Logs, opts schedulerOptions, log *slog.Logger) (*Scheduler, error) {
	s := &Scheduler{
		dir:     dir,
		pidDir:  filepath.Join(dir, "tasks"),
		reg:     reg,
		bal:     bal,
		bals:    bals,
		logs:    logs,
		rootfs:  &rootfsCache{dir: filepath.Join(filepath.Dir(dir), "rootfs"), locks: map[string]*sync.Mutex{}, bad: map[string]error{}},
		ports:   newPortAllocator(),
		opts:    opts,
		log:     log,
		closing: make(chan struct{}),
		apps:    map[string]*app{},
		oneOff:  map[string]map[string]*oneOffTask{},
		tokens:  map[string]string{},
	}
	for _, d := range []string{filepath.Join(dir, "apps"), s.pidDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fsError("open scheduler", err)
		}
	}
	return s, nil
}

// AcceptsBinding reports whether the scheduler attaches tasks to a binding
// kind: it accepts providers.BindingLocal only, of any balancer of the rack.
func (s *Scheduler) AcceptsBinding(kind string) bool { return kind == providers.BindingLocal }

// byBalancer groups binding references by balancer; references to a
// balancer the rack does not serve are skipped.
func (s *Scheduler) byBalancer(refs []bindingRef) map[*Balancer][]string {
	out := map[*Balancer][]string{}
	for _, ref := range refs {
		if b := s.bals[ref.balancer]; b != nil {
			out[b] = append(out[b], ref.target)
		}
	}
	return out
}

// register adds addr to the target sets refs name, in every balancer.
func (s *Scheduler) register(refs []bindingRef, addr string, healthy bool) {
	for b, targets := range s.byBalancer(refs) {
		b.register(targets, addr, healthy)
	}
}

// deregister drains addr from the target sets refs name, from every
// balancer at once, and returns when all the drains have finished.
func (s *Scheduler) deregister(ctx context.Context, refs []bindingRef, addr string) {
	var wg sync.WaitGroup
	for b, targets := range s.byBalancer(refs) {
		wg.Go(func() { b.deregister(ctx, targets, addr) })
	}
	wg.Wait()
}

// dropTarget forgets addr in the target sets refs name without draining.
func (s *Scheduler) dropTarget(refs []bindingRef, addr string) {
	for b, targets := range s.byBalancer(refs) {
		b.dropTarget(targets, addr)
	}
}

func specHash(d providers.Desired, p providers.Process) string {
	b, _ := json.Marshal(struct {
		Release, Digest string
		Env             map[string]string
		Proc            providers.Process
	}{d.Release, d.Image.Digest, d.Env, providers.Process{Name: p.Name, Command: p.Command, Port: p.Port, Health: p.Health, CPU: p.CPU, Memory: p.Memory}})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// validate checks a Desired before anything changes: the shared rules
// and the rack's limits (providers.Desired.Validate), then what the local
// scheduler requires beyond them: a command for every running process,
// bindings of the rack's balancers to processes with a port, and an image
// it can run.
func (s *Scheduler) validate(d providers.Desired) error {
	if err := d.Validate(s.Limits()); err != nil {
		return err
	}
	for _, p := range d.Processes {
		if p.Count > 0 {
			if _, err := imageCommand(d.Image, p.Command); err != nil {
				return fmt.Errorf("process %q: %w", p.Name, err)
			}
		}
	}
	for pname, bs := range d.Bindings {
		idx := slices.IndexFunc(d.Processes, func(p providers.Process) bool { return p.Name == pname }) // in the formation: Desired.Validate
		if len(bs) > 0 && d.Processes[idx].Port == 0 {
			return providers.Invalidf("process %q has bindings but no port", pname)
		}
		for _, b := range bs {
			bal := s.bals[b.Balancer]
			if b.Kind != providers.BindingLocal || bal == nil {
				return providers.Invalidf("process %q: the local scheduler accepts only %q bindings of the rack's balancers (%s), not kind %q of %q", pname, providers.BindingLocal, strings.Join(slices.Sorted(maps.Keys(s.bals)), ", "), b.Kind, b.Balancer)
			}
			if !bal.hasTarget(b.Target) {
				return fmt.Errorf("process %q: target set %q of balancer %s: %w", pname, b.Target, b.Balancer, providers.ErrNotFound)
			}
		}
	}
	if d.Image.Digest == "" {
		if len(d.Processes) > 0 {
			return providers.Invalidf("desired state of app %q has no image digest", d.App)
		}
		return nil
	}
	if _, err := v1.NewHash(d.Image.Digest); err != nil {
		return providers.Invalidf("image digest %q: %v", d.Image.Digest, err)
	}
	if s.isLocalImage(d.Image) {
		if _, err := s.reg.v1Image(d.Image); err != nil {
			return err
		}
	}
	if len(d.Processes) > 0 {
		return s.rootfs.refused(d.Image.Digest, func() (v1.Image, error) { return s.loadImage(context.Background(), d.Image) })
	}
	return nil
}

// isLocalImage reports whether an image lives in this rack's registry: its
// repository has no host, or this registry's host, or a loopback host
// (the registry may have had another port then) and the digest is in this
// registry. Other registries on the loopback interface are pulled from.
func (s *Scheduler) isLocalImage(img providers.Image) bool {
	host, _, ok := strings.Cut(img.Repository, "/")
	if !ok || host == s.reg.Host() {
		return true
	}
	if h := stripPort(host); h != "127.0.0.1" && h != "localhost" {
		return false
	}
	// An image this rack holds in a corrupt state is still its own: the
	// corruption is reported, rather than a pull from elsewhere tried.
	_, err := s.reg.v1Image(img)
	return err == nil || errors.Is(err, providers.ErrInvalid)
}

// loadImage returns the image to unpack: from this rack's registry, or
// pulled from its registry anonymously.
func (s *Scheduler) loadImage(ctx context.Context, img providers.Image) (v1.Image, error) {
	if s.isLocalImage(img) {
		return s.reg.v1Image(img)
	}
	ref, err := name.ParseReference(img.Ref())
	if err != nil {
		return nil, providers.Invalidf("image %q: %v", img.Ref(), err)
	}
	i, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("pull image %s: %w: %w", img.Ref(), providers.ErrUnavailable, err)
	}
	return i, nil
}

// Apply validates d, records a rollout and returns it; the app's
// goroutine converges to d. The same Token returns the same rollout.
func (s *Scheduler) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	return s.apply(ctx, d, false)
}

// apply is the one path of Apply and Stage, of the staged release when
// staged is true, else of the serving one: it validates d, finds the app
// (a serving rollout creates it and sets a corrupt state aside; a staged
// one needs a live, readable app), replays a known token, and then queues
// the serving rollout for the app's goroutine or starts the staged one.
func (s *Scheduler) apply(ctx context.Context, d providers.Desired, staged bool) (providers.Rollout, error) {
	if err := ctx.Err(); err != nil {
		return providers.Rollout{}, err
	}
	if err := s.validate(d); err != nil {
		return providers.Rollout{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return providers.Rollout{}, fmt.Errorf("scheduler is closed: %w", providers.ErrUnavailable)
	}
	a, err := s.appFor(d.App, staged)
	if err != nil {
		return providers.Rollout{}, err
	}
	if d.Token != "" {
		for _, r := range a.rollouts {
			if r.Token == d.Token && !r.internal {
				return r.Rollout, nil
			}
		}
	}
	if staged {
		return s.stage(a, d), nil
	}
	r := s.enqueue(a, d, false)
	if err := s.save(a); err != nil {
		return providers.Rollout{}, err
	}
	return r.Rollout, nil
}

// appFor returns the app a rollout changes (a staged one when staged is
// true); s.mu is held.
func (s *Scheduler) appFor(name string, staged bool) (*app, error) {
	a := s.apps[name]
	if staged {
		if a == nil || a.deleted {
			return nil, fmt.Errorf("stage app %q: %w", name, providers.ErrNotFound)
		}
		if a.corrupt != nil {
			return nil, fmt.Errorf("stage app %q: %w", name, a.corrupt)
		}
		return a, nil
	}
	if a == nil {
		a = s.newApp(name)
	}
	if a.deleted {
		return nil, fmt.Errorf("app %q is being deleted: %w", name, providers.ErrUnavailable)
	}
	if a.corrupt != nil {
		if err := s.setAsideCorrupt(a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// newApp creates an app and starts its goroutine; s.mu is held.
func (s *Scheduler) newApp(name string) *app {
	a := &app{name: name, slots: map[string][]*slot{}, wake: make(chan struct{}, 1), changed: make(chan struct{}), loopDone: make(chan struct{})}
	s.apps[name] = a
	s.wg.Add(1)
	go s.loop(a)
	return a
}

// enqueue records a rollout to d and wakes the app; s.mu is held.
func (s *Scheduler) enqueue(a *app, d providers.Desired, internal bool) *rolloutRec {
	a.seq++
	r := &rolloutRec{
		Rollout:  providers.Rollout{ID: "r" + strconv.Itoa(a.seq), Release: d.Release, Token: d.Token, State: providers.RolloutInProgress, Started: time.Now()},
		desired:  d,
		internal: internal,
	}
	if a.pending != nil {
		a.pending.State, a.pending.Reason = providers.RolloutCanceled, "superseded by rollout "+r.ID
	}
	if a.cur != nil && !a.cur.phase2 && a.cur.State == providers.RolloutInProgress {
		a.cur.canceled = "superseded by rollout " + r.ID
		a.cur.cancel()
	}
	a.pending = r
	a.rollouts = slices.Insert(a.rollouts, 0, r)
	if len(a.rollouts) > keepRollouts {
		a.rollouts = a.rollouts[:keepRollouts]
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return r
}

// loop runs the app's rollouts one after the other.
func (s *Scheduler) loop(a *app) {
	defer s.wg.Done()
	defer close(a.loopDone)
	for {
		select {
		case <-s.closing:
			return
		case <-a.wake:
		}
		s.mu.Lock()
		if a.deleted {
			s.mu.Unlock()
			return
		}
		r := a.pending
		a.pending = nil
		if r == nil {
			s.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		a.cur = r
		prev := a.active
		s.mu.Unlock()

		err := s.converge(ctx, a, r)
		cancel()

		s.mu.Lock()
		a.cur = nil
		closing := s.closed || a.deleted
		switch {
		case closing:
			// The rollout is interrupted, not failed: a reopened rack
			// reports it as interrupted and restarts the last completed state.
		case err == nil:
			r.State = providers.RolloutCompleted
			d := r.desired
			a.active, a.release = &d, d.Release
			if r.canceled != "" && !r.internal {
				// Canceled too late to stop: converge back to what ran before.
				r.State, r.Reason = providers.RolloutCanceled, r.canceled
				if prev != nil && a.pending == nil {
					back := *prev
					back.Token = ""
					s.enqueue(a, back, true)
				}
			}
		case r.canceled != "":
			r.State, r.Reason = providers.RolloutCanceled, r.canceled
		default:
			r.State, r.Reason = providers.RolloutFailed, err.Error()
		}
		if !closing {
			if err := s.save(a); err != nil {
				s.log.Error("save scheduler state", "app", a.name, "err", err)
			}
		}
		s.mu.Unlock()
		if closing {
			return
		}
	}
}

// converge brings the app from its current slots to r.desired.
func (s *Scheduler) converge(ctx context.Context, a *app, r *rolloutRec) error {
	d := r.desired
	type change struct {
		name     string
		spec     *slotSpec
		keep     []*slot // current slots that stay
		start    []*slot // new slots
		stop     []*slot // current slots to stop
		bindings []bindingRef
	}
	var plan []*change
	s.mu.Lock()
	want := map[string]bool{}
	for _, p := range d.Processes {
		want[p.Name] = true
		c := &change{name: p.Name, spec: &slotSpec{app: a.name, release: d.Release, image: d.Image, proc: p, env: d.Env, hash: specHash(d, p)}}
		c.bindings = bindingRefs(d.Bindings[p.Name])
		cur := a.slots[p.Name]
		if len(cur) > 0 && cur[0].spec.hash == c.spec.hash {
			n := min(len(cur), p.Count)
			c.keep, c.stop = cur[:n], cur[n:]
		} else {
			c.stop = cur
		}
		for range p.Count - len(c.keep) {
			c.start = append(c.start, &slot{spec: c.spec, bindings: c.bindings, stopCh: make(chan struct{}), done: make(chan struct{})})
		}
		plan = append(plan, c)
	}
	for pname, cur := range a.slots {
		if !want[pname] {
			plan = append(plan, &change{name: pname, stop: cur})
		}
	}
	s.mu.Unlock()

	// Phase 1: start the new slots and wait until all are healthy.
	var fresh []*slot
	for _, c := range plan {
		fresh = append(fresh, c.start...)
	}
	if len(fresh) > 0 {
		cmds := map[*slotSpec]command{}
		for _, c := range plan {
			if len(c.start) == 0 {
				continue
			}
			cmd, err := s.prepare(ctx, c.spec)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("process %q: %w", c.name, err)
			}
			cmds[c.spec] = cmd
		}
		s.mu.Lock()
		a.starting = fresh
		for _, sl := range fresh {
			s.wg.Add(1)
			go s.supervise(a, sl, cmds[sl.spec])
		}
		s.mu.Unlock()
		byProc := map[string][]*slot{}
		for _, c := range plan {
			if len(c.start) > 0 {
				byProc[c.name] = c.start
			}
		}
		if err := s.awaitReady(ctx, a, byProc); err != nil {
			s.stopSlots(fresh)
			s.mu.Lock()
			a.starting = nil
			s.mu.Unlock()
			return err
		}
	}

	// Phase 2: switch traffic and stop what is replaced. Not canceled.
	type drain struct {
		refs []bindingRef
		addr string
	}
	var drains []drain
	s.mu.Lock()
	r.phase2 = true
	a.starting = nil
	for _, c := range plan {
		for _, sl := range c.keep {
			if gone, addr := s.rebind(sl, c.bindings); len(gone) > 0 {
				drains = append(drains, drain{gone, addr})
			}
		}
		for _, sl := range c.start {
			sl.live = true
			if sl.ready && sl.task != nil {
				s.register(sl.bindings, sl.task.Address, true)
			}
		}
		a.slots[c.name] = append(slices.Clone(c.keep), c.start...)
		if len(a.slots[c.name]) == 0 {
			delete(a.slots, c.name)
		}
	}
	var old []*slot
	for _, c := range plan {
		old = append(old, c.stop...)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range drains {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s.deregister(ctx, d.refs, d.addr)
		})
	}
	s.stopSlots(old)
	wg.Wait()
	return nil
}

// rebind attaches a kept slot to new bindings in place: a ready slot's
// task joins its new target sets at once, as healthy. It returns the
// target sets the task must now be drained from, with its address; s.mu
// is held.
func (s *Scheduler) rebind(sl *slot, bindings []bindingRef) ([]bindingRef, string) {
	if slices.Equal(sl.bindings, bindings) {
		return nil, ""
	}
	var gone []bindingRef
	for _, b := range sl.bindings {
		if !slices.Contains(bindings, b) {
			gone = append(gone, b)
		}
	}
	sl.bindings = bindings
	if sl.task == nil || !sl.ready {
		return nil, ""
	}
	addr := sl.task.Address
	s.register(bindings, addr, true)
	return gone, addr
}

// prepare unpacks the image and resolves the command of a process type.
func (s *Scheduler) prepare(ctx context.Context, spec *slotSpec) (command, error) {
	argv, err := imageCommand(spec.image, spec.proc.Command)
	if err != nil {
		return command{}, err
	}
	root, err := s.rootfs.get(spec.image.Digest, func() (v1.Image, error) { return s.loadImage(ctx, spec.image) })
	if err != nil {
		return command{}, err
	}
	env := processEnv(spec.image, spec.env, 0)
	return resolveCommand(root, spec.image, argv, env)
}

// awaitReady waits until every slot is ready, or a process type's slots
// failed to start FailureThreshold times, or ctx ends.
func (s *Scheduler) awaitReady(ctx context.Context, a *app, byProc map[string][]*slot) error {
	for {
		s.mu.Lock()
		changed := a.changed
		all := true
		for pname, ss := range byProc {
			fails, last := 0, ""
			for _, sl := range ss {
				fails += sl.failures
				if sl.lastFail != "" {
					last = sl.lastFail
				}
				all = all && sl.ready
			}
			if fails >= s.opts.threshold {
				s.mu.Unlock()
				return fmt.Errorf("process %q failed to start %d times; last: %s", pname, fails, last)
			}
		}
		s.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// notify wakes every waiter of awaitReady: a.changed is closed and
// replaced.
func (s *Scheduler) notify(a *app) {
	s.mu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	s.mu.Unlock()
}

// stopSlots stops slots in parallel and waits for them; slots in the
// balancer drain first.
func (s *Scheduler) stopSlots(slots []*slot) {
	s.mu.Lock()
	for _, sl := range slots {
		if !sl.stopping {
			sl.stopping = true
			close(sl.stopCh)
		}
	}
	s.mu.Unlock()
	for _, sl := range slots {
		<-sl.done
	}
}

// supervise runs a slot: start, wait healthy, join the balancer, restart
// after exits with backoff, until the slot is stopped.
func (s *Scheduler) supervise(a *app, sl *slot, cmd command) {
	defer s.wg.Done()
	defer close(sl.done)
	backoff := s.opts.backoff
	wait := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, s.opts.maxBackoff)
		select {
		case <-sl.stopCh:
			return false
		case <-t.C:
			return true
		}
	}
	portConflicts := 0
	for {
		select {
		case <-sl.stopCh:
			return
		default:
		}
		t, p, err := s.startTask(a, sl, cmd)
		if err != nil {
			s.mu.Lock()
			sl.failures++
			sl.lastFail = err.Error()
			s.mu.Unlock()
			s.notify(a)
			if !wait() {
				return
			}
			continue
		}
		ok, reason := s.waitHealthy(sl, t, p)
		select {
		case <-sl.stopCh:
			s.finish(a, sl, p, false, "stopped by the scheduler")
			return
		default:
		}
		if !ok {
			died := !p.alive() // exited by itself, not stopped for failed checks
			p.terminate(s.opts.grace)
			if portConflicts < maxPortConflicts && t.Address != "" && portTakenByOther(addrPort(t.Address)) {
				// Another program bound the task's port before the task
				// did: not the app's fault. Start again on a new port.
				portConflicts++
				s.portTaken(a, sl, p, t)
				continue
			}
			portConflicts = 0
			if died {
				reason = withOutput(reason, p)
			}
			s.recordStop(a, sl, p, reason, true)
			if !wait() {
				return
			}
			continue
		}
		portConflicts = 0
		s.mu.Lock()
		sl.ready = true
		if sl.live {
			s.register(sl.bindings, t.Address, true)
		}
		s.mu.Unlock()
		s.notify(a)
		readyAt := time.Now()
		select {
		case <-p.exited:
			// Not ready from now on, under the lock that reads the
			// bindings, so that a rebind no longer registers the address.
			s.mu.Lock()
			bindings := sl.bindings
			sl.ready = false
			s.mu.Unlock()
			s.dropTarget(bindings, t.Address)
			reason, _ := p.exit()
			s.recordStop(a, sl, p, withOutput(reason, p), true)
			if time.Since(readyAt) > time.Minute {
				backoff = s.opts.backoff
			}
			if !wait() {
				return
			}
		case <-sl.stopCh:
			s.finish(a, sl, p, true, "stopped by the scheduler")
			return
		}
	}
}

// withOutput appends the last output lines of an exited process to the
// reason of its exit.
func withOutput(reason string, p *proc) string {
	<-p.exited
	if out := p.lastOutput(); out != "" {
		return reason + "; " + out
	}
	return reason
}

// maxPortConflicts bounds the restarts in a row a slot makes because
// another program took its task's port; beyond it the exit counts as a
// failed start.
const maxPortConflicts = 5

// portTaken forgets a task that exited because another program held its
// port: it is not a stopped task of the app and not a failed start. The
// app's log says what happened.
func (s *Scheduler) portTaken(a *app, sl *slot, p *proc, t providers.Task) {
	<-p.exited
	s.logLine(a.name, t.ID, t.Process, t.Release)(fmt.Sprintf("[convox] task %s exited while another program held its port %s; starting the process again on another port", t.ID, t.Address))
	s.log.Warn("task port taken by another program; restarting on another port", "app", a.name, "task", t.ID, "address", t.Address)
	s.mu.Lock()
	sl.task, sl.p, sl.ready = nil, nil, false
	s.mu.Unlock()
	s.notify(a)
}

// addrPort returns the port of a "host:port" address.
func addrPort(addr string) int {
	_, port, _ := strings.Cut(addr, ":")
	n, _ := strconv.Atoi(port)
	return n
}

// taskPort reserves a port for a task of a process with a port (0 for one
// without) and returns it with the function that gives it back.
func (s *Scheduler) taskPort(proc providers.Process) (int, func(), error) {
	if proc.Port <= 0 {
		return 0, func() {}, nil
	}
	port, err := s.ports.get()
	if err != nil {
		return 0, nil, err
	}
	return port, func() { s.ports.put(port) }, nil
}

// startTask starts a process for the slot.
func (s *Scheduler) startTask(a *app, sl *slot, cmd command) (providers.Task, *proc, error) {
	spec := sl.spec
	port, release, err := s.taskPort(spec.proc)
	if err != nil {
		return providers.Task{}, nil, err
	}
	cmd.env = processEnv(spec.image, spec.env, port)
	id := spec.proc.Name + "-" + randomHex(5)
	p, err := startProc(cmd, s.pidDir, a.name, id, s.logLine(a.name, id, spec.proc.Name, spec.release))
	if err != nil {
		release()
		return providers.Task{}, nil, err
	}
	s.wg.Go(func() {
		<-p.exited
		release()
	})
	t := providers.Task{ID: id, App: a.name, Process: spec.proc.Name, Release: spec.release, State: providers.TaskPending, Started: p.started}
	if port > 0 {
		t.Address = "127.0.0.1:" + strconv.Itoa(port)
	}
	s.mu.Lock()
	sl.task, sl.p, sl.ready = &t, p, false
	s.mu.Unlock()
	return t, p, nil
}

// logLine returns the writer of a task's output lines.
func (s *Scheduler) logLine(app, task, process, release string) func(string) {
	return func(line string) {
		err := s.logs.Write(context.Background(), []providers.LogEntry{{App: app, Stream: task, Process: process, Release: release, Message: line}})
		if err != nil {
			s.log.Warn("write task output", "app", app, "task", task, "err", err)
		}
	}
}

// startGrace is how long a task may take to bind its port before its
// failed health checks count, when its health grace period is shorter.
const startGrace = 30 * time.Second

// refused reports whether nothing listens on addr (connection refused).
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	c.Close()
	return false
}

// waitHealthy waits until the task is healthy. Probes run every 50ms (or
// the interval, if shorter) until Healthy consecutive successes; failures
// count once per interval after the grace period, and Unhealthy of them
// fail the task; while the task refuses connections (it has not bound
// its port yet) failures count only after the longer of the grace period
// and startGrace. A task without a port is healthy once it has stayed up
// for the grace period.
func (s *Scheduler) waitHealthy(sl *slot, t providers.Task, p *proc) (bool, string) {
	h := withHealthDefaults(sl.spec.proc.Health)
	if t.Address == "" {
		timer := time.NewTimer(sl.spec.proc.Health.Grace)
		defer timer.Stop()
		select {
		case <-p.exited:
			reason, _ := p.exit()
			return false, reason
		case <-sl.stopCh:
			return false, ""
		case <-timer.C:
			return true, ""
		}
	}
	tick := min(50*time.Millisecond, h.Interval)
	start := time.Now()
	var lastCounted time.Time
	okRun, fails := 0, 0
	listening := false
	for {
		timer := time.NewTimer(tick)
		select {
		case <-p.exited:
			timer.Stop()
			reason, _ := p.exit()
			return false, reason
		case <-sl.stopCh:
			timer.Stop()
			return false, ""
		case <-timer.C:
		}
		if !listening {
			// A task that has not bound its port yet is starting, not
			// unhealthy (a loaded machine can take seconds to get there).
			switch {
			case !refused(t.Address):
				listening = true
			case time.Since(start) < max(h.Grace, startGrace):
				continue
			}
		}
		ok, why := s.bal.check(t.Address, h)
		if ok {
			if okRun++; okRun >= h.Healthy {
				return true, ""
			}
			continue
		}
		okRun = 0
		now := time.Now()
		if now.Sub(start) >= h.Grace && (lastCounted.IsZero() || now.Sub(lastCounted) >= h.Interval) {
			lastCounted = now
			if fails++; fails >= h.Unhealthy {
				return false, fmt.Sprintf("failed %d health checks of %s: %s", fails, h.Path, why)
			}
		}
	}
}

// finish stops a slot's task: drain it from the balancer when it is
// registered, then SIGTERM and SIGKILL after the grace period.
func (s *Scheduler) finish(a *app, sl *slot, p *proc, registered bool, why string) {
	s.mu.Lock()
	bindings, addr := sl.bindings, ""
	if sl.task != nil {
		addr = sl.task.Address
	}
	live := sl.live
	s.mu.Unlock()
	if registered && live && addr != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		s.deregister(ctx, bindings, addr)
		cancel()
	}
	p.terminate(s.opts.grace)
	reason, _ := p.exit()
	s.recordStop(a, sl, p, why+" ("+reason+")", false)
}

// recordStop moves the slot's task to the app's stopped tasks.
func (s *Scheduler) recordStop(a *app, sl *slot, p *proc, reason string, failure bool) {
	<-p.exited
	exitReason, code := p.exit()
	if reason == "" {
		reason = exitReason
	}

	s.mu.Lock()
	if sl.task != nil {
		t := *sl.task
		t.State, t.Stopped, t.ExitCode, t.Reason = providers.TaskStopped, time.Now(), code, reason
		a.stopped = slices.Insert(a.stopped, 0, t)
		if len(a.stopped) > keepStopped {
			a.stopped = a.stopped[:keepStopped]
		}
	}
	sl.task, sl.p, sl.ready = nil, nil, false
	if failure && !sl.live {
		sl.failures++
		sl.lastFail = reason
	}
	s.mu.Unlock()
	s.notify(a)
}

// Status returns one observation of the app.
func (s *Scheduler) Status(ctx context.Context, app string) (providers.AppStatus, error) {
	if err := ctx.Err(); err != nil {
		return providers.AppStatus{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[app]
	if a == nil || a.deleted {
		return providers.AppStatus{}, fmt.Errorf("app %q: %w", app, providers.ErrNotFound)
	}
	if a.corrupt != nil {
		return providers.AppStatus{}, a.corrupt
	}
	return s.status(a), nil
}

// StatusMany returns the status of each of the apps that exists.
func (s *Scheduler) StatusMany(ctx context.Context, apps []string) (map[string]providers.AppStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]providers.AppStatus{}
	for _, name := range apps {
		// An app whose state is corrupt is left out; Status reports why.
		if a := s.apps[name]; a != nil && !a.deleted && a.corrupt == nil {
			out[name] = s.status(a)
		}
	}
	return out, nil
}

// status builds an AppStatus; s.mu is held.
func (s *Scheduler) status(a *app) providers.AppStatus {
	st := providers.AppStatus{App: a.name, Release: a.release, Rollouts: []providers.Rollout{}, Processes: []providers.ProcessStatus{}, Tasks: []providers.Task{}}
	for _, r := range a.rollouts {
		st.Rollouts = append(st.Rollouts, r.Rollout)
	}
	// The state being converged to: the in-flight or pending rollout, else
	// the last completed one.
	var target *providers.Desired
	for _, r := range []*rolloutRec{a.pending, a.cur} {
		if r != nil && target == nil {
			target = &r.desired
		}
	}
	if target == nil {
		target = a.active
	}
	all := map[string][]*slot{}
	for pname, ss := range a.slots {
		all[pname] = append(all[pname], ss...)
	}
	for _, sl := range slices.Concat(a.starting, a.draining) {
		all[sl.spec.proc.Name] = append(all[sl.spec.proc.Name], sl)
	}
	names := map[string]bool{}
	for pname := range all {
		names[pname] = true
	}
	if target != nil {
		for _, p := range target.Processes {
			names[p.Name] = true
		}
	}
	for _, pname := range slices.Sorted(maps.Keys(names)) {
		ps := providers.ProcessStatus{Name: pname}
		if target != nil {
			ps.Release = target.Release
			for _, p := range target.Processes {
				if p.Name == pname {
					ps.Desired = p.Count
				}
			}
		}
		for _, sl := range all[pname] {
			if sl.spec.release != ps.Release || sl.stopping {
				continue
			}
			if sl.ready {
				ps.Running++
			} else {
				ps.Pending++
			}
		}
		st.Processes = append(st.Processes, ps)
		if a.staged != nil {
			if ss, ok := a.staged.slots[pname]; ok || slices.ContainsFunc(a.staged.rec.desired.Processes, func(p providers.Process) bool { return p.Name == pname }) {
				sps := providers.ProcessStatus{Name: pname, Release: a.staged.rec.Release, Desired: len(ss)}
				for _, sl := range ss {
					if sl.ready {
						sps.Running++
					} else {
						sps.Pending++
					}
				}
				st.Processes = append(st.Processes, sps)
			}
		}
	}
	if a.staged != nil {
		for pname, ss := range a.staged.slots {
			all[pname] = append(all[pname], ss...)
		}
	}
	var running []providers.Task
	for _, ss := range all {
		for _, sl := range ss {
			if sl.task != nil {
				t := *sl.task
				if sl.ready {
					t.State = providers.TaskRunning
				}
				running = append(running, t)
			}
		}
	}
	var stopped []providers.Task
	for _, o := range s.oneOff[a.name] {
		if o.task.State == providers.TaskStopped {
			stopped = append(stopped, o.task)
		} else {
			running = append(running, o.task)
		}
	}
	slices.SortFunc(running, func(x, y providers.Task) int {
		return cmp.Or(strings.Compare(x.Process, y.Process), x.Started.Compare(y.Started), strings.Compare(x.ID, y.ID))
	})
	stopped = append(stopped, a.stopped...)
	slices.SortStableFunc(stopped, func(x, y providers.Task) int { return y.Stopped.Compare(x.Stopped) })
	st.Tasks = append(append(st.Tasks, running...), stopped...)
	return st
}
