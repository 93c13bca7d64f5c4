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
// # Quick start
//
//	rack := convox.Rack{Registry: reg, Scheduler: sch, Balancer: bal, Logs: logs, Store: store}
//	c, err := convox.New(rack, &convox.Options{OnEvent: convox.SlogEvents(logger)})
//	if err != nil { ... }
//	if _, err := c.CreateApp(ctx, "web", nil); err != nil { ... }
//	rel, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{
//		Image:     "web:v2",
//		Env:       map[string]string{"MODE": "production"},
//		Secrets:   map[string]convox.Secret{"DB_PASSWORD": "..."},
//		Processes: []convox.Process{{Name: "web", Count: 2, Port: 8080}},
//	}, nil)
//	// rel is active and healthy here; otherwise err is a *DeployError and
//	// the previous release is serving again.
//	_, err = c.App("web").Rollback(ctx, convox.Previous(), nil)
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
// The Client retries provider errors that providers.IsTemporary reports
// (throttled, unavailable), never others, and returns the last error when
// it gives up:
//
//   - Store calls and Registry.Resolve: up to 8 attempts, backing off from
//     100ms to 2s, within the caller's ctx.
//   - Inside a deploy (Balancer.EnsureRoute, Scheduler.Apply, and the
//     Scheduler.Status and Balancer.Health observations of its wait):
//     until the deploy's timeout (DeployOptions.Timeout), backing off from
//     Options.PollInterval to Options.MaxPollInterval; each retry is an
//     EventRetry. An error that is not temporary stops the deploy at once,
//     which then compensates.
//   - Compensation (restoring the previous release after a failure):
//     every error but providers.ErrInvalid, until Options.CompensateTimeout.
//   - Logs reads: a following Logs iteration retries temporary errors
//     until its ctx ends; a one-shot read does not retry.
//
// Calls made by the Client's waits draw on one rate limiter per provider
// (Options.RateLimit), shared by all its deploys.
//
// # Events
//
// Progress is reported as typed Events delivered synchronously and in order
// to Options.OnEvent; SlogEvents adapts a *slog.Logger. Platform events are
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

	"github.com/convox-go/convox/internal/limiter"
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
	// OnEvent receives every Event synchronously and in order. It must not block for long.
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
	// RateLimit bounds the calls per second that the client's waits make to
	// each provider, shared by every deploy of the client; RateBurst is the
	// burst. Defaults: 20 and 20. A negative RateLimit disables the limit.
	RateLimit float64
	RateBurst int
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

	eventMu sync.Mutex // serializes OnEvent

	mu       sync.Mutex
	inflight map[string]*Deployment      // by app, deploys driven by this client
	limiters map[string]*limiter.Limiter // by provider kind and name
	batchers map[string]*statusBatcher   // by scheduler name
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
	return &Client{
		rack: rk, opts: o, log: o.Logger, inflight: map[string]*Deployment{},
		limiters: map[string]*limiter.Limiter{}, batchers: map[string]*statusBatcher{},
	}, nil
}

// emit delivers an event to Options.OnEvent, serialized.
func (c *Client) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	c.log.Debug("convox event", "type", e.Type, "app", e.App, "release", e.Release, "step", e.Step, "message", e.Message)
	if c.opts.OnEvent == nil {
		return
	}
	c.eventMu.Lock()
	defer c.eventMu.Unlock()
	c.opts.OnEvent(e)
}

// newToken returns a random identifier for leases and apply attempts.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
