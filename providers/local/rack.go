package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	// RoutePorts fixes the listening port of routes, keyed by
	// "app/process"; other routes get a port from the OS (kept across
	// reopens when it is still free).
	RoutePorts map[string]int
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
	// Logger receives the rack's diagnostics. Default: discarded.
	Logger *slog.Logger
}

// Rack is a local rack rooted at a directory. Its providers share state:
// the scheduler runs images of the registry and registers its tasks in the
// balancer's target sets, and process output goes to the logs.
type Rack struct {
	dir       string
	lock      *os.File
	store     *Store
	logs      *Logs
	registry  *Registry
	balancer  *Balancer
	scheduler *Scheduler
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
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fsError("open rack", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fsError("open rack directory", err)
	}
	r := &Rack{dir: abs}
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
	if r.registry, err = newRegistry(filepath.Join(abs, "registry")); err != nil {
		return nil, err
	}
	if err := r.serveRegistry(o.RegistryAddr); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(abs, "balancer"), 0o700); err != nil {
		return nil, fsError("open balancer", err)
	}
	r.balancer = newBalancer(filepath.Join(abs, "balancer", "routes.json"), o.RoutePorts, o.Logger)
	if err := r.balancer.restore(); err != nil {
		return nil, err
	}
	sopts := schedulerOptions{grace: o.StopGrace, backoff: o.RestartBackoff, maxBackoff: o.MaxRestartBackoff, threshold: o.FailureThreshold}
	if r.scheduler, err = newScheduler(filepath.Join(abs, "scheduler"), r.registry, r.balancer, r.logs, sopts, o.Logger); err != nil {
		return nil, err
	}
	if err := r.scheduler.restore(); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
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
	_ = readJSON(stateFile, &st)
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
	r.regSrv = &http.Server{Handler: r.registry, ReadHeaderTimeout: 30 * time.Second, ErrorLog: discardLogger}
	go r.regSrv.Serve(ln)
	return nil
}

// Dir returns the rack's directory.
func (r *Rack) Dir() string { return r.dir }

// Registry returns the rack's image registry.
func (r *Rack) Registry() *Registry { return r.registry }

// Scheduler returns the rack's scheduler.
func (r *Rack) Scheduler() *Scheduler { return r.scheduler }

// Balancer returns the rack's HTTP balancer.
func (r *Rack) Balancer() *Balancer { return r.balancer }

// Logs returns the rack's log store.
func (r *Rack) Logs() *Logs { return r.logs }

// Store returns the rack's document store.
func (r *Rack) Store() *Store { return r.store }

// Close stops every process gracefully (draining their targets first),
// then the routes and the registry, and releases the directory. Persisted
// state stays: reopening the directory brings the same apps back. Close is
// safe to call more than once.
func (r *Rack) Close() error {
	r.closeOnce.Do(func() {
		if r.scheduler != nil {
			r.scheduler.close()
		}
		if r.balancer != nil {
			r.balancer.close()
		}
		if r.regSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.regSrv.Shutdown(ctx)
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
