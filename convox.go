// Package convox deploys containerized apps by composing existing services.
//
// A release is an immutable snapshot of an image (pinned by digest), its
// environment, its process formation and its balancer settings. Promoting a
// release makes the rack's scheduler and balancer converge to it; rolling
// back is one call that promotes an earlier snapshot again. Every backing
// service sits behind a small interface of package providers, so a rack can
// run on one machine (providers/local), on AWS (ECR, ECS, ELB/ALB,
// CloudWatch Logs or Kinesis, DynamoDB) or in memory for tests
// (providers/fake).
//
// # A first program, on the local rack
//
// The local rack runs apps as processes of this machine behind a real HTTP
// proxy, with no cloud account. This program builds the Go program in
// ./cmd/web (any main package listening on $PORT) into an image, deploys
// it, deploys a second release, and rolls back to the first:
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"log"
//
//		"github.com/convox-go/convox"
//		"github.com/convox-go/convox/goimage"
//		"github.com/convox-go/convox/providers/local"
//	)
//
//	func main() {
//		ctx := context.Background()
//		rack, err := local.Open("rack", nil) // state lives in ./rack
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer rack.Close()
//		c, err := convox.New(rack.ConvoxRack(), nil)
//		if err != nil {
//			log.Fatal(err)
//		}
//		for _, v := range []string{"v1", "v2"} {
//			img, err := goimage.Build(ctx, "./cmd/web", &goimage.Config{Env: []string{"VERSION=" + v}})
//			if err != nil {
//				log.Fatal(err)
//			}
//			if _, err := rack.Registry().PushImage(ctx, "web", v, img); err != nil {
//				log.Fatal(err)
//			}
//		}
//		if _, err := c.CreateApp(ctx, "web", nil); err != nil {
//			log.Fatal(err)
//		}
//		web := []convox.Process{{Name: "web", Count: 2, Port: 8080}}
//		if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: web}, nil); err != nil {
//			log.Fatal(err)
//		}
//		if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
//			log.Fatal(err) // a *convox.DeployError; v1 serves again if v2 failed
//		}
//		rel, err := c.App("web").Rollback(ctx, convox.Previous(), nil)
//		if err != nil {
//			log.Fatal(err)
//		}
//		app, err := c.App("web").Get(ctx)
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(rel.ID, "copies", rel.Parent, "and serves at", app.Endpoints["web"])
//	}
//
// The same program is Example_localRack, which the package's tests compile.
//
// # The same on the fake rack, for tests
//
// Package providers/fake is an in-memory rack with fault injection; run
// under testing/synctest its waits take no real time. Example_fakeRack is
// this program, run by the tests:
//
//	r := fake.New(nil)
//	c, err := convox.New(r.ConvoxRack(), nil)
//	if err != nil {
//		log.Fatal(err)
//	}
//	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
//	r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/app/server", "--v2"}})
//	ctx := context.Background()
//	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
//		log.Fatal(err)
//	}
//	web := []convox.Process{{Name: "web", Count: 2, Port: 8080}}
//	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: web}, nil); err != nil {
//		log.Fatal(err)
//	}
//	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
//		log.Fatal(err)
//	}
//	rel, err := c.App("web").Rollback(ctx, convox.Previous(), nil)
//	if err != nil {
//		log.Fatal(err)
//	}
//	fmt.Println(rel.ID, "copies", rel.Parent) // R3 copies R1
//
// On AWS the Rack is built from the AWS providers (see examples/aws).
//
// # Types
//
// One rule relates this package's types to package providers: a value a
// provider reports or takes is used as it is, from package providers
// (providers.Image, providers.Task, providers.LogEntry,
// providers.HealthCheck, providers.AppStatus, the sentinel errors); this
// package declares a type only for what has no provider counterpart or
// means something else to a caller: the records it keeps (App, Release),
// the requests it validates and fills with defaults (ReleaseSpec, Process,
// RouteConfig, LogQuery with its relative Since and Follow), and its
// workflow (Deployment, DeployError, Event, Strategy, RollbackTarget).
// There are no aliases. Every listing is an iter.Seq2 that yields its
// error once, last (Apps, Releases, Tasks, Logs).
//
// # Deploys and contexts
//
// Promote takes the app's deploy lease and starts the deployment in the
// background, detached from the caller's ctx: canceling ctx, or the caller
// returning, does not stop it. It runs until it succeeds or fails and is
// compensated, bounded by DeployOptions.Timeout (Options.Timeout, 10
// minutes by default) plus Options.CompensateTimeout for restoring the
// previous release. Deploy, Rollback, Scale, SetEnv and UnsetEnv promote
// and then wait with ctx: when ctx ends first they return a *DeployError
// with InProgress set while the deploy goes on. Deployment.Cancel and
// AppClient.Cancel stop a deploy and restore the previous release. If the
// program exits mid-deploy, the lease expires (Options.LeaseTTL, or at once
// for a program on the same host) and the next Promote, Cancel or
// Client.Recover compensates it.
//
// # Errors
//
// Failures are classified by the sentinel errors of package providers,
// the one vocabulary of the SDK: every error a Client returns wraps the
// sentinel of its cause (providers.ErrNotFound, ErrConflict, ErrInvalid,
// ErrUnhealthy, ...) or a context error, and the provider's raw cause (a
// smithy.APIError on AWS) stays reachable with errors.As:
//
//	errors.Is(err, providers.ErrConflict)  // another deploy holds the app
//	providers.IsTemporary(err)             // throttled or unavailable: retry later
//	errors.Is(err, context.Canceled)       // the deploy was canceled
//
// The deploy calls (Deploy, Promote, Rollback, Scale, SetEnv, UnsetEnv,
// Deployment.Wait, and each result of DeployMany) fail with a
// *DeployError: the step it stopped at, the reason, and whether anything
// changed. DeployError.Changed false means nothing that serves or routes
// the app was touched, so the call can be repeated as is; otherwise
// RolledBack says whether the previous release serves again. Every other
// call fails with an *Error naming the call and its app.
//
// # Retries
//
// The Client makes every call to a provider through one chain per
// provider, built by New: the chain waits for the provider's rate limit,
// makes the call, counts it (# Calls) and retries it by the policy of its
// kind. A retry is for an error that providers.IsTemporary reports
// (throttled, unavailable), never another, and the last error is returned
// when the chain gives up:
//
//   - Store calls and Registry.Resolve: up to 8 attempts, backing off from
//     100ms to 2s, within the caller's ctx.
//   - The calls that make a deploy's changes (Balancer.EnsureRoute,
//     EnsureTargetSet and SetWeights; Scheduler.Apply, Stage, PromoteStage
//     and DiscardStage; the Apply or Delete that restores the previous
//     release): until the deploy's ctx ends (DeployOptions.Timeout; for a
//     compensation, its attempt's bound), backing off from
//     Options.PollInterval to Options.MaxPollInterval; each retry is an
//     EventRetry. An error that is not temporary stops the deploy at once,
//     which then compensates.
//   - The reads of a following Logs iteration: until its ctx ends,
//     silently. A one-shot Logs read is not retried.
//   - Every other call runs once: notifiers (a notification that failed
//     may have been delivered; a failure is an EventNotifyFailed and never
//     fails the deploy), logs writes, subscriptions, the registry's other
//     calls, and the scheduler's calls outside a deploy step (plans,
//     drift, rollout events, canceling a rollout, stopping a task).
//
// The polls and compensation are not the chain's retries. The waits of a
// deploy and of its compensation poll Scheduler.Status (or StatusMany)
// and Balancer.Health until the release converges or the deploy's timeout
// passes; an observation that fails with a temporary error is one that
// saw nothing, reported as an EventRetry, and the next poll observes
// again. An error that is not temporary stops the wait. AppClient.Run
// polls its task's output and state the same way, until the task stops
// or ctx ends. Compensation (restoring the previous release after a
// failure) retries its whole sequence of calls on every error but
// providers.ErrInvalid, until Options.CompensateTimeout.
//
// Every call to a provider first waits for that provider's rate limiter,
// shared by every deploy of the client: Options.RateLimit (20 calls per
// second by default) for each scheduler and balancer, and
// Options.RateLimits for any kind; stores, registries, logs backends and
// notifiers are not limited unless RateLimits says so.
//
// # Calls
//
// Client.Calls reports, per provider (its kind and its name in the rack)
// and operation, how many calls the client made, how many returned an
// error, how many were retries of a temporary error, and the time spent in
// them:
//
//	for _, s := range c.Calls() {
//		fmt.Printf("%s %s %s: %d calls, %d errors, %d retries, %s\n",
//			s.Kind, s.Provider, s.Op, s.Calls, s.Errors, s.Retries, s.Time)
//	}
//
// The counters are atomic and fixed when New builds the chains, so
// counting takes no lock and no allocation per call. A call is one
// request to a provider's method: what a provider does inside it (an AWS
// SDK's own retries) is not seen, nor are the image copies of
// MigrateRegistry, which go over the registries' OCI data path, nor the
// methods that describe a scheduler rather than call it
// (providers.Bounded, providers.BindingAcceptor).
//
// # Store layout
//
// Apps and their release history live in the rack's Store as JSON
// documents, under keys a Store lists in byte order:
//
//	app/<app>                       the app: providers, active, last healthy and latest
//	                                release, routes, the deploy lease, history (50 IDs)
//	release/<app>/<sequence %016d>  one release: image, variables (secret ones in
//	                                clear), processes, description, status marks
//
// App names have at most providers.MaxAppName (20) characters and keys at
// most 46 bytes. A release document is immutable but for its status marks;
// typically a few KiB, it is at most about 2.3 MiB under the default
// providers.Limits (an environment of 64 KiB and 32 process types, each
// with a command of up to 64 KiB), plus the image configuration the
// registry reports. An app document is typically under 4 KiB and at most
// about 200 KiB (32 routed processes on two balancers during a balancer
// migration). A Store whose backend limits item sizes (a DynamoDB item
// holds at most 400 KB) must hold values of these sizes or refuse larger
// ones with providers.ErrInvalid. The app document is the single truth of which
// release is active; it is written with compare-and-swap on every change.
//
// # Events
//
// Progress is reported as typed Events delivered synchronously to
// Options.OnEvent, in order for each app; events of different apps may be
// delivered concurrently (see Options.OnEvent). SlogEvents adapts a
// *slog.Logger. Platform events are
// also written into the app's logs under the stream "convox", so an app's
// logs explain what happened to it. Secret values never appear in events,
// errors, logs or String output.
package convox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/convox-go/convox/internal/poll"
)

// Error is the error of a Client call outside the deploy calls (which
// return a *DeployError): it names the call, the app and the release it
// failed on. Classify it with errors.Is against the sentinels of package
// providers, which every cause wraps.
type Error struct {
	// Op is the method that failed ("CreateApp", "Logs", ...).
	Op string
	// App and Release name what it failed on, when known.
	App     string
	Release string
	// Err is the cause; it wraps a providers sentinel or a context error.
	Err error
}

// Error describes the failure.
func (e *Error) Error() string {
	s := "convox: " + e.Op
	if e.App != "" {
		s += " " + e.App
	}
	if e.Release != "" {
		s += " " + e.Release
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// wrapErr wraps err in an *Error unless it already is one (or a *DeployError).
func wrapErr(op, app, release string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	var d *DeployError
	if errors.As(err, &e) || errors.As(err, &d) {
		return err
	}
	return &Error{Op: op, App: app, Release: release, Err: err}
}

// Options configure a Client. The zero value (or nil) gives defaults.
type Options struct {
	// OnEvent receives every Event synchronously, in order per app: the
	// events of one app (and so of each of its deployments) are delivered
	// one at a time in the order they happened, and all of a deployment's
	// events are delivered before Deployment.Wait returns. Events of
	// different apps may be delivered concurrently. A callback that falls
	// behind blocks only the work that produced the event and later events
	// of the same app (its deployment waits for the callback to return);
	// it never delays other apps, and no event is dropped. OnEvent may be
	// called from several goroutines at once, for different apps.
	OnEvent func(Event)
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// PollInterval is the first interval between observations of a
	// rollout; it backs off to MaxPollInterval. Defaults: 1s and 10s.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// Timeout bounds a deploy's wait when DeployOptions.Timeout is zero. Default 10 minutes.
	Timeout time.Duration
	// CompensateTimeout bounds restoring the previous release after a
	// failed deploy. Default 5 minutes.
	CompensateTimeout time.Duration
	// LeaseTTL is how long a deploy lease outlives its last renewal; a
	// lease left by a crashed process can be taken over after it. The
	// holder renews it while waiting. Default 2 minutes.
	LeaseTTL time.Duration
	// NotifyTimeout bounds each notifier call. Default 10 seconds.
	NotifyTimeout time.Duration
	// Holder identifies this client in deploy leases. Default: host name and process id.
	Holder string
	// RateLimit bounds the calls per second that the client makes to each
	// balancer and scheduler (see the package doc, # Retries), shared by
	// every deploy of the client; RateBurst is the burst. Defaults: 20 and
	// 20. A negative RateLimit disables the limit.
	RateLimit float64
	RateBurst int
	// RateLimits sets the rate limit of each provider of a kind, by kind
	// (KindStore, KindRegistry, KindLogs, KindNotifier, or KindScheduler
	// and KindBalancer to replace RateLimit and RateBurst for them); a
	// Rate of zero turns the limit off. Stores, registries, logs backends
	// and notifiers not named here are not limited. New refuses an unknown
	// kind, a rate that is not finite and a burst over 1,048,576 with
	// providers.ErrInvalid.
	RateLimits map[string]Rate
	// BatchWindow is how long a status observation waits to be batched
	// with concurrent ones when the scheduler implements BatchStatus.
	// Default 10ms.
	BatchWindow time.Duration
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&r.PollInterval, time.Second)
	def(&r.MaxPollInterval, 10*time.Second)
	if r.MaxPollInterval < r.PollInterval {
		r.MaxPollInterval = r.PollInterval
	}
	def(&r.Timeout, 10*time.Minute)
	def(&r.CompensateTimeout, 5*time.Minute)
	def(&r.LeaseTTL, 2*time.Minute)
	def(&r.NotifyTimeout, 10*time.Second)
	if r.RateLimit == 0 {
		r.RateLimit = 20
	}
	if r.RateBurst <= 0 {
		r.RateBurst = int(max(r.RateLimit, 1))
	}
	def(&r.BatchWindow, 10*time.Millisecond)
	if r.Holder == "" {
		host, _ := os.Hostname()
		r.Holder = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	return r
}

// Client deploys apps on a rack. It is safe for concurrent use.
type Client struct {
	rack rack
	opts Options
	log  *slog.Logger

	eventMu    sync.Mutex            // guards eventLanes
	eventLanes map[string]*eventLane // by app, while an event of the app is being delivered

	mu       sync.Mutex
	inflight map[string]*Deployment    // by app, deploys driven by this client
	batchers map[string]*statusBatcher // by scheduler name

	chains []*chain // one per provider of the rack, set by New and then read only
}

// New returns a Client for the rack. It checks that the rack has every
// required provider (Registry, Scheduler, Logs and Store) and that provider
// names are unique.
func New(r Rack, opts *Options) (*Client, error) {
	rk, err := r.resolve()
	if err != nil {
		return nil, wrapErr("New", "", "", err)
	}
	o := opts.withDefaults()
	if err := o.checkRates(); err != nil {
		return nil, wrapErr("New", "", "", err)
	}
	c := &Client{
		opts: o, log: o.Logger, inflight: map[string]*Deployment{}, eventLanes: map[string]*eventLane{},
		batchers: map[string]*statusBatcher{},
	}
	rk.wrap(c)
	c.rack = rk
	return c, nil
}

// eventLane serializes the delivery of one app's events.
type eventLane struct {
	mu    sync.Mutex // held while an event of the app is delivered
	users int        // emitters holding or waiting for mu; guarded by Client.eventMu
}

// emit delivers an event to Options.OnEvent, serialized per app (see
// Options.OnEvent): a slow callback holds up the emitters of its app only.
func (c *Client) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	c.log.Debug("convox event", "type", e.Type, "app", e.App, "release", e.Release, "step", e.Step, "message", e.Message)
	if c.opts.OnEvent == nil {
		return
	}
	c.eventMu.Lock()
	lane := c.eventLanes[e.App]
	if lane == nil {
		lane = &eventLane{}
		c.eventLanes[e.App] = lane
	}
	lane.users++
	c.eventMu.Unlock()
	defer func() {
		c.eventMu.Lock()
		if lane.users--; lane.users == 0 {
			delete(c.eventLanes, e.App)
		}
		c.eventMu.Unlock()
	}()
	lane.mu.Lock()
	defer lane.mu.Unlock()
	c.opts.OnEvent(e)
}

// newToken returns a random identifier for leases and apply attempts.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pollBackoff returns the backoff between the observations and retries
// of a deploy: from Options.PollInterval up to Options.MaxPollInterval.
func (c *Client) pollBackoff() poll.Backoff {
	return poll.Backoff{Initial: c.opts.PollInterval, Max: c.opts.MaxPollInterval}
}
