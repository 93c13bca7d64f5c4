package ecsscheduler

import (
	"math"

	"github.com/convox-go/convox/providers"
)

var _ providers.Bounded = (*Scheduler)(nil)

// ECS bounds (Options.Limits defaults). A service's desired count is an
// int32 on the wire and ECS runs at most 5,000 tasks per service; a task
// definition is at most 64 KiB, so the environment gets half of it.
const (
	DefaultMaxCount    = 5000
	DefaultMaxTasks    = 20000
	DefaultMaxEnvBytes = 32 << 10
	DefaultMaxEnvValue = 32 << 10
)

// withECSDefaults fills l's zero fields with the ECS defaults, then the
// generic ones.
func withECSDefaults(l providers.Limits) providers.Limits {
	if l.MaxCount <= 0 {
		l.MaxCount = DefaultMaxCount
	}
	if l.MaxTasks <= 0 {
		l.MaxTasks = max(DefaultMaxTasks, l.MaxCount)
	}
	if l.MaxEnvBytes <= 0 {
		l.MaxEnvBytes = DefaultMaxEnvBytes
	}
	if l.MaxEnvValue <= 0 {
		l.MaxEnvValue = DefaultMaxEnvValue
	}
	return l.WithDefaults()
}

// Limits implements providers.Bounded: Options.Limits with the ECS
// defaults. Apply, Stage and RunTask refuse input beyond them with
// ErrInvalid before any ECS call.
func (s *Scheduler) Limits() providers.Limits { return s.opts.Limits }

// desiredCount converts a process's count to the int32 a service's
// desired count is, refusing what does not fit (never truncating).
func desiredCount(p providers.Process, lim providers.Limits) (int32, error) {
	if p.Count < 0 || p.Count > lim.MaxCount || p.Count > math.MaxInt32 {
		return 0, providers.Invalidf("process %s: count %d is not between 0 and %d", p.Name, p.Count, min(lim.MaxCount, math.MaxInt32))
	}
	return int32(p.Count), nil
}
