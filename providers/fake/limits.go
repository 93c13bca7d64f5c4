package fake

import "github.com/convox-go/convox/providers"

var _ providers.Bounded = (*Scheduler)(nil)

// Limits implements providers.Bounded: Options.Limits with defaults. Apply,
// Stage and RunTask validate their input against them
// (providers.Desired.Validate, providers.RunSpec.Validate) and refuse what
// exceeds them with ErrInvalid before any change.
func (s *Scheduler) Limits() providers.Limits { return s.r.limits }
