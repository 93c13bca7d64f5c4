package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/convox-go/convox/providers"
)

// Options configure a rack. Every zero field takes its default.
type Options struct {
	// RegistryAddr is where the registry's OCI distribution API listens.
	// Empty means 127.0.0.1 on the port the rack used last time, or one the
	// OS picks.
	RegistryAddr string
	// RegistryMaxBlobBytes bounds each blob (layer, configuration) pushed
	// to the registry; a larger one is refused with 413 (ErrInvalid from
	// PushImage). Default DefaultRegistryMaxBlobBytes (10 GiB).
	RegistryMaxBlobBytes int64
	// RoutePorts fixes the listening port of routes. A key
	// "app/process" (or "local/app/process") is a route of the default
	// balancer, "balancer/app/process" one of the named additional
	// balancer; Open refuses a key of another shape, or naming a balancer
	// the rack lacks, with ErrInvalid. Other routes get a port from the OS
	// (kept across reopens when it is still free).
	RoutePorts map[string]int
	// Balancers names additional balancers of the rack beside the default
	// one (BalancerName): each serves reverse-proxy routes of its own on
	// 127.0.0.1, persisted in the directory like the default one's, and
	// the rack's Scheduler attaches tasks to bindings of any of them, so
	// one process can be served by two balancers at once while an app
	// moves from one to the other. A name is 1 to 32 lowercase letters,
	// digits and single hyphens, starting with a letter; a bad or repeated
	// name, or BalancerName itself, returns ErrInvalid. A balancer of an
	// earlier Open that still has routes is served again even when
	// Balancers omits it, so that a reopened rack serves the same routes.
	Balancers []string
	// LogMaxBytes is the log budget of each app; the oldest segments are
	// dropped beyond it. Default 64 MiB.
	LogMaxBytes int64
	// StopGrace is how long a stopping process has between SIGTERM and
	// SIGKILL. Default 10 seconds.
	StopGrace time.Duration
	// RestartBackoff is the first delay before restarting an exited
	// process; it doubles on each consecutive failure up to
	// MaxRestartBackoff. Defaults 100 milliseconds and 10 seconds.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// FailureThreshold is how many failed starts of a process type's new
	// tasks fail a rollout. Default 3.
	FailureThreshold int
	// StoreLockTimeout bounds the wait for another program's store
	// transaction. Default 10 seconds.
	StoreLockTimeout time.Duration
	// Logger receives the rack's diagnostics: warnings and errors such as
	// a corrupt state file the rack serves on without. Default:
	// slog.Default(), so that they are visible.
	Logger *slog.Logger
	// Limits bound what the scheduler runs (providers.Bounded): instances
	// per process type and per app, variables and their sizes. Zero fields
	// take the defaults of providers.Limits, sized for one machine.
	Limits providers.Limits
}

// Rack is a local rack rooted at a directory. Its providers share state:
// the scheduler runs images of the registry and registers its tasks in the
// target sets of the rack's balancers, and process output goes to the logs.
type Rack struct {
	dir       string
	lock      *os.File
	store     *Store
	logs      *Logs
	registry  *Registry
	balancer  *Balancer            // the default balancer
	balancers map[string]*Balancer // every balancer by name, the default included
	scheduler *Scheduler
	log       *slog.Logger
	regSrv    *http.Server
	closeOnce sync.Once
	closeErr  error
}

// rackState is the rack's own persisted state.
type rackState struct {
	RegistryAddr string `json:"registryAddr"`
}

// Open opens (creating if needed) the rack rooted at dir: it takes the
// directory's lock, serves the registry and the persisted routes, kills
// processes a crashed previous run left behind and starts converging every
// app to its last applied state. A directory another program has open
// returns ErrUnavailable; one that cannot be created or written returns
// ErrPermission (or ErrInvalid for a path that is not a directory).
func Open(dir string, opts *Options) (*Rack, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = 64 << 20
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.RestartBackoff <= 0 {
		o.RestartBackoff = 100 * time.Millisecond
	}
	if o.MaxRestartBackoff <= 0 {
		o.MaxRestartBackoff = 10 * time.Second
	}
	o.MaxRestartBackoff = max(o.MaxRestartBackoff, o.RestartBackoff)
	if o.FailureThreshold <= 0 {
		o.FailureThreshold = 3
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fsError("open rack", err)
	}
	if err := ensureRackDir(abs); err != nil {
		return nil, err
	}
	r := &Rack{dir: abs, log: o.Logger}
	if err := r.takeLock(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	if r.store, err = OpenStore(abs, o.StoreLockTimeout); err != nil {
		return nil, err
	}
	if r.logs, err = newLogs(filepath.Join(abs, "logs"), o.LogMaxBytes); err != nil {
		return nil, err
	}
	if r.registry, err = newRegistry(filepath.Join(abs, "registry"), o.RegistryMaxBlobBytes, o.Logger); err != nil {
		return nil, err
	}
	if err := r.serveRegistry(o.RegistryAddr); err != nil {
		return nil, err
	}
	if err := r.openBalancers(o); err != nil {
		return nil, err
	}
	sopts := schedulerOptions{grace: o.StopGrace, backoff: o.RestartBackoff, maxBackoff: o.MaxRestartBackoff, threshold: o.FailureThreshold, limits: o.Limits.WithDefaults()}
	if r.scheduler, err = newScheduler(filepath.Join(abs, "scheduler"), r.registry, r.balancer, r.balancers, r.logs, sopts, o.Logger); err != nil {
		return nil, err
	}
	if err := r.scheduler.restore(); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

// openBalancers serves the default balancer, the additional ones named in
// o.Balancers and those an earlier Open left with routes. The default
// balancer persists its routes in balancer/routes.json, another one in
// balancer/<name>/routes.json.
func (r *Rack) openBalancers(o Options) error {
	root := filepath.Join(r.dir, "balancer")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fsError("open balancer", err)
	}
	names := []string{}
	for _, name := range o.Balancers {
		if err := providers.ValidateName("balancer", name, maxBalancerName); err != nil {
			return err
		}
		if name == BalancerName {
			return providers.Invalidf("balancer name %q is the default balancer's; name only additional balancers", name)
		}
		if slices.Contains(names, name) {
			return providers.Invalidf("balancer name %q is given twice", name)
		}
		names = append(names, name)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return fsError("open balancer", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == BalancerName || slices.Contains(names, name) || providers.ValidateName("balancer", name, maxBalancerName) != nil {
			continue
		}
		var states []routeState
		if err := readJSON(filepath.Join(root, name, "routes.json"), &states); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				o.Logger.Error("skipping the unreadable routes of a balancer not named in the options", "balancer", name, "file", filepath.Join(root, name, "routes.json"), "err", err)
			}
			continue
		}
		if len(states) > 0 {
			names = append(names, name)
		}
	}
	ports, err := routePorts(o.RoutePorts, names)
	if err != nil {
		return err
	}
	r.balancers = map[string]*Balancer{}
	r.balancer = newBalancer(BalancerName, filepath.Join(root, "routes.json"), ports[BalancerName], o.Logger)
	r.balancers[BalancerName] = r.balancer
	for _, name := range names {
		if err := os.MkdirAll(filepath.Join(root, name), 0o700); err != nil {
			return fsError("open balancer "+name, err)
		}
		r.balancers[name] = newBalancer(name, filepath.Join(root, name, "routes.json"), ports[name], o.Logger)
	}
	for _, name := range append([]string{BalancerName}, names...) {
		if err := r.balancers[name].restore(); err != nil {
			return err
		}
	}
	return nil
}

// routePorts splits Options.RoutePorts by balancer into "app/process"
// keys: "app/process" and "local/app/process" are the default balancer's,
// "name/app/process" the additional balancer name's.
func routePorts(ports map[string]int, names []string) (map[string]map[string]int, error) {
	out := map[string]map[string]int{}
	for key, port := range ports {
		parts := strings.Split(key, "/")
		bal := BalancerName
		switch len(parts) {
		case 2:
		case 3:
			bal, parts = parts[0], parts[1:]
			if bal != BalancerName && !slices.Contains(names, bal) {
				return nil, providers.Invalidf("route port %q names balancer %q, which the rack does not have", key, bal)
			}
		default:
			return nil, providers.Invalidf("route port key %q is not \"app/process\" or \"balancer/app/process\"", key)
		}
		if out[bal] == nil {
			out[bal] = map[string]int{}
		}
		out[bal][parts[0]+"/"+parts[1]] = port
	}
	return out, nil
}

// takeLock makes this rack the only one using the directory.
func (r *Rack) takeLock() error {
	f, err := os.OpenFile(filepath.Join(r.dir, "rack.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fsError("open rack", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("rack directory %s is in use by another program (pid %s): %w: %w", r.dir, string(pid), providers.ErrUnavailable, err)
		}
		return fsError("lock rack directory", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())), 0)
	r.lock = f
	return nil
}

func (r *Rack) serveRegistry(addr string) error {
	stateFile := filepath.Join(r.dir, "rack.json")
	var st rackState
	if err := readJSON(stateFile, &st); err != nil && !errors.Is(err, os.ErrNotExist) {
		// Only the registry's last address is lost: serve on a new one.
		r.log.Error("rack state file is unreadable; the registry listens on a new address", "file", stateFile, "err", err)
		st = rackState{}
	}
	var ln net.Listener
	var err error
	switch {
	case addr != "":
		ln, err = net.Listen("tcp", addr)
	case st.RegistryAddr != "":
		if ln, err = net.Listen("tcp", st.RegistryAddr); err != nil {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
		}
	default:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return fmt.Errorf("serve registry: %w: %w", providers.ErrUnavailable, err)
	}
	r.registry.host = ln.Addr().String()
	if st.RegistryAddr != r.registry.host {
		if err := writeJSONAtomic(stateFile, rackState{RegistryAddr: r.registry.host}); err != nil {
			ln.Close()
			return fsError("save rack state", err)
		}
	}
	r.regSrv = r.registry.server()
	go r.regSrv.Serve(ln)
	return nil
}

// Dir returns the rack's directory.
func (r *Rack) Dir() string { return r.dir }

// Registry returns the rack's image registry.
func (r *Rack) Registry() *Registry { return r.registry }

// Scheduler returns the rack's scheduler.
func (r *Rack) Scheduler() *Scheduler { return r.scheduler }

// Balancer returns the rack's default HTTP balancer, named BalancerName.
func (r *Rack) Balancer() *Balancer { return r.balancer }

// BalancerNamed returns the rack's balancer with the name: the default one
// for BalancerName, else an additional one (Options.Balancers). A name the
// rack does not serve returns ErrNotFound.
func (r *Rack) BalancerNamed(name string) (*Balancer, error) {
	b := r.balancers[name]
	if b == nil {
		return nil, fmt.Errorf("balancer %q: name it in Options.Balancers: %w", name, providers.ErrNotFound)
	}
	return b, nil
}

// BalancerNames returns the names of the balancers the rack serves:
// BalancerName first, then the additional ones in lexical order.
func (r *Rack) BalancerNames() []string {
	names := []string{}
	for name := range r.balancers {
		if name != BalancerName {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return append([]string{BalancerName}, names...)
}

// Logs returns the rack's log store.
func (r *Rack) Logs() *Logs { return r.logs }

// Store returns the rack's document store.
func (r *Rack) Store() *Store { return r.store }

// Close stops every process gracefully (draining their targets first),
// then the routes of every balancer and the registry, and releases the directory. Persisted
// state stays: reopening the directory brings the same apps back. Close is
// safe to call more than once.
func (r *Rack) Close() error {
	r.closeOnce.Do(func() {
		if r.scheduler != nil {
			r.scheduler.close()
		}
		for _, b := range r.balancers {
			b.close()
		}
		if r.regSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if r.regSrv.Shutdown(ctx) != nil {
				// Requests still running after the grace period (a stalled
				// upload, say) are cut off, so none outlives Close.
				r.regSrv.Close()
			}
			cancel()
		}
		if r.logs != nil {
			r.logs.close()
		}
		if r.lock != nil {
			r.closeErr = r.lock.Close()
		}
	})
	return r.closeErr
}

// fsOrInvalid wraps an error of readJSON: a file that does not decode is
// ErrInvalid (corrupt), a file system error is wrapped by its cause.
func fsOrInvalid(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: corrupt: %w", providers.ErrInvalid, err)
	}
	return fsError("read", err)
}
