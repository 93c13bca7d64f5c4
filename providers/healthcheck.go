package providers

import "time"

// Health-check defaults of the AWS balancers, for the zero fields of a
// HealthCheck (see DefaultHealthCheck and HealthCheck.WithDefaults).
const (
	// DefaultHealthPath is the path probed when HealthCheck.Path is empty.
	DefaultHealthPath = "/"
	// DefaultHealthInterval is the time between probes when
	// HealthCheck.Interval is zero.
	DefaultHealthInterval = 10 * time.Second
	// DefaultHealthTimeout bounds one probe when HealthCheck.Timeout is
	// zero.
	DefaultHealthTimeout = 5 * time.Second
	// DefaultHealthyThreshold is the number of consecutive successes that
	// make a target healthy when HealthCheck.Healthy is zero.
	DefaultHealthyThreshold = 2
	// DefaultUnhealthyThreshold is the number of consecutive failures that
	// make a target unhealthy when HealthCheck.Unhealthy is zero.
	DefaultUnhealthyThreshold = 3
)

// DefaultHealthCheck returns the health-check defaults of the AWS
// balancers: DefaultHealthPath, DefaultHealthInterval,
// DefaultHealthTimeout, DefaultHealthyThreshold and
// DefaultUnhealthyThreshold, with no grace period.
func DefaultHealthCheck() HealthCheck {
	return HealthCheck{
		Path:      DefaultHealthPath,
		Interval:  DefaultHealthInterval,
		Timeout:   DefaultHealthTimeout,
		Healthy:   DefaultHealthyThreshold,
		Unhealthy: DefaultUnhealthyThreshold,
	}
}

// WithDefaults returns h with each zero field taken from def (usually
// DefaultHealthCheck, or a backend's own defaults). Negative fields are
// kept: they are invalid (see HealthCheck.Validate), and the backend
// reports them with its own limits.
func (h HealthCheck) WithDefaults(def HealthCheck) HealthCheck {
	if h.Path == "" {
		h.Path = def.Path
	}
	if h.Grace == 0 {
		h.Grace = def.Grace
	}
	if h.Interval == 0 {
		h.Interval = def.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = def.Timeout
	}
	if h.Healthy == 0 {
		h.Healthy = def.Healthy
	}
	if h.Unhealthy == 0 {
		h.Unhealthy = def.Unhealthy
	}
	return h
}
