// Package awshealth turns a route's providers.HealthCheck into the health
// check settings of an AWS load balancer, in the units its API takes, and
// refuses the values that load balancer would refuse, before any call.
//
// Both kinds of load balancer the AWS providers use take an interval of
// 5 to 300 seconds, a timeout of at least 2 seconds and shorter than the
// interval, and thresholds of 2 to 10; they differ in the longest path
// and the longest timeout (Bounds).
//
//	s, err := awshealth.Check("shop-web", spec.Health, awshealth.TargetGroup)
//	if err != nil {
//		return err // matches providers.ErrInvalid
//	}
//	in.HealthCheckIntervalSeconds = aws.Int32(s.Interval)
package awshealth

import (
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
)

// Bounds are the limits of one kind of load balancer's health check that
// differ between kinds.
type Bounds struct {
	// MaxPath is the longest health check path in bytes.
	MaxPath int
	// MaxTimeout is the longest timeout in whole seconds.
	MaxTimeout int64
}

// The bounds of each kind (the ELB API references: an ELBv2 target
// group's HealthCheckPath is at most 1024 characters and its
// HealthCheckTimeoutSeconds 2 to 120; a classic load balancer's health
// check target path is at most 1024 characters with the protocol and
// port, and its Timeout 2 to 60).
var (
	// TargetGroup bounds the health check of an ELBv2 target group.
	TargetGroup = Bounds{MaxPath: 1024, MaxTimeout: 120}
	// Classic bounds the health check of a classic load balancer; its
	// path leaves room for the "HTTP:<port>" the target begins with.
	Classic = Bounds{MaxPath: 1000, MaxTimeout: 60}
)

// Settings are a health check in the units the AWS APIs take.
type Settings struct {
	Path      string
	Interval  int32 // seconds
	Timeout   int32 // seconds
	Healthy   int32 // consecutive successes to become healthy
	Unhealthy int32 // consecutive failures to become unhealthy
}

// Seconds converts d to whole seconds, rounding up.
func Seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// Check fills h's defaults (providers.DefaultHealthCheck) and returns its
// settings, or an error matching providers.ErrInvalid that names route
// when a value is outside b or the bounds every kind shares.
func Check(route string, h providers.HealthCheck, b Bounds) (Settings, error) {
	h = h.WithDefaults(providers.DefaultHealthCheck())
	if !strings.HasPrefix(h.Path, "/") || len(h.Path) > b.MaxPath {
		return Settings{}, providers.Invalidf("route %s: health check path %q must start with / and have at most %d characters", route, h.Path, b.MaxPath)
	}
	interval, timeout := Seconds(h.Interval), Seconds(h.Timeout)
	healthy, unhealthy := int64(h.Healthy), int64(h.Unhealthy)
	switch {
	case interval < 5 || interval > 300:
		return Settings{}, providers.Invalidf("route %s: health check interval %ds is outside 5-300s", route, interval)
	case timeout < 2 || timeout > b.MaxTimeout:
		return Settings{}, providers.Invalidf("route %s: health check timeout %ds is outside 2-%ds", route, timeout, b.MaxTimeout)
	case timeout >= interval:
		return Settings{}, providers.Invalidf("route %s: health check timeout %ds must be shorter than the interval %ds", route, timeout, interval)
	case healthy < 2 || healthy > 10:
		return Settings{}, providers.Invalidf("route %s: healthy threshold %d is outside 2-10", route, healthy)
	case unhealthy < 2 || unhealthy > 10:
		return Settings{}, providers.Invalidf("route %s: unhealthy threshold %d is outside 2-10", route, unhealthy)
	}
	return Settings{Path: h.Path, Interval: int32(interval), Timeout: int32(timeout), Healthy: int32(healthy), Unhealthy: int32(unhealthy)}, nil
}
