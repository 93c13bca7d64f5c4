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
// Every error returned by a Client method is an *Error (or, for a failed
// deploy, a *DeployError) carrying the operation, the app and a Code. The
// provider sentinels are re-exported (ErrNotFound, ErrConflict, ...), so
//
//	errors.Is(err, convox.ErrConflict)     // another deploy holds the app
//	errors.As(err, &deployErr)             // step, reason, stopped tasks, last log lines
//	convox.IsTemporary(err)                // throttled or unavailable: retry later
//
// all work, and the provider's raw cause (a smithy.APIError on AWS) stays
// reachable with errors.As. Waits retry only temporary errors and stop at
// once on any other.
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
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/convox-go/convox/internal/limiter"
	"github.com/convox-go/convox/providers"
)

// Re-exported provider sentinels; test errors with errors.Is.
var (
	ErrNotFound      = providers.ErrNotFound
	ErrAlreadyExists = providers.ErrAlreadyExists
	ErrConflict      = providers.ErrConflict
	ErrInvalid       = providers.ErrInvalid
	ErrPermission    = providers.ErrPermission
	ErrThrottled     = providers.ErrThrottled
	ErrUnavailable   = providers.ErrUnavailable
	ErrUnimplemented = providers.ErrUnimplemented
)

// ErrDeployFailed matches every *DeployError.
var ErrDeployFailed = errors.New("deploy failed")

// IsTemporary reports whether err is worth retrying later (throttled or unavailable).
func IsTemporary(err error) bool { return providers.IsTemporary(err) }

// Code classifies an error.
type Code string

// Error codes.
const (
	CodeNotFound      Code = "not_found"
	CodeAlreadyExists Code = "already_exists"
	CodeConflict      Code = "conflict"
	CodeInvalid       Code = "invalid"
	CodePermission    Code = "permission"
	CodeThrottled     Code = "throttled"
	CodeUnavailable   Code = "unavailable"
	CodeUnimplemented Code = "unimplemented"
	CodeCanceled      Code = "canceled"
	CodeTimeout       Code = "timeout"
	CodeDeployFailed  Code = "deploy_failed"
	CodeUnknown       Code = "unknown"
)

// CodeOf returns the Code that classifies err.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrDeployFailed):
		return CodeDeployFailed
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrAlreadyExists):
		return CodeAlreadyExists
	case errors.Is(err, ErrConflict):
		return CodeConflict
	case errors.Is(err, ErrInvalid):
		return CodeInvalid
	case errors.Is(err, ErrPermission):
		return CodePermission
	case errors.Is(err, ErrThrottled):
		return CodeThrottled
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, ErrUnimplemented):
		return CodeUnimplemented
	}
	return CodeUnknown
}

// Error is the error returned by Client methods.
type Error struct {
	// Op is the method that failed ("CreateApp", "Promote", ...).
	Op string
	// App and Release name what it failed on, when known.
	App     string
	Release string
	// Code classifies the failure.
	Code Code
	// Err is the cause; it wraps a provider sentinel where one applies.
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
	return &Error{Op: op, App: app, Release: release, Code: CodeOf(err), Err: err}
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
