package local

import "github.com/convox-go/convox/providers"

var _ providers.Bounded = (*Scheduler)(nil)

// Limits implements providers.Bounded: Options.Limits with the defaults
// of providers.Limits, sized for one machine. Apply, Stage and RunTask
// refuse input beyond them with ErrInvalid before any change, so a count
// of a billion never reaches the process table.
func (s *Scheduler) Limits() providers.Limits { return s.opts.limits.WithDefaults() }
