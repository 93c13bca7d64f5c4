package cfnstack

import (
	"context"
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
)

// The stack mode's optional capabilities.
var (
	_ providers.ChangePlanner = (*Stack)(nil)
	_ providers.DriftDetector = (*Stack)(nil)
	_ providers.EventReporter = (*Stack)(nil)
)

// PlanChanges implements providers.ChangePlanner with Changes: a change
// set of the template a deploy of d would leave (Apply's, with the routes
// the deploy would make first), deleted before it returns.
func (s *Stack) PlanChanges(ctx context.Context, d providers.Desired) ([]providers.ResourceChange, error) {
	changes, err := s.Changes(ctx, d)
	if err != nil {
		return nil, err
	}
	out := make([]providers.ResourceChange, 0, len(changes))
	for _, c := range changes {
		out = append(out, providers.ResourceChange{
			Resource: c.Resource, Type: c.Type,
			Action:      providers.ChangeAction(strings.ToLower(c.Action)),
			Replacement: replacement(c.Replacement),
			Scopes:      c.Scopes,
		})
	}
	return out, nil
}

// replacement maps CloudFormation's "True", "False" and "Conditional".
func replacement(r string) providers.Replacement {
	switch r {
	case "True":
		return providers.ReplacementYes
	case "False":
		return providers.ReplacementNo
	case "Conditional":
		return providers.ReplacementConditional
	}
	return providers.ReplacementNone
}

// DetectDrift implements providers.DriftDetector with Drift.
func (s *Stack) DetectDrift(ctx context.Context, app string) ([]providers.ResourceDrift, error) {
	drifts, err := s.Drift(ctx, app)
	if err != nil {
		return nil, err
	}
	out := make([]providers.ResourceDrift, 0, len(drifts))
	for _, d := range drifts {
		out = append(out, providers.ResourceDrift(d))
	}
	return out, nil
}

// RolloutEvents implements providers.EventReporter with Events: the
// stack's events at or after since, oldest first.
func (s *Stack) RolloutEvents(ctx context.Context, app string, since time.Time) ([]providers.PlatformEvent, error) {
	events, err := s.Events(ctx, app, since)
	if err != nil {
		return nil, err
	}
	out := make([]providers.PlatformEvent, 0, len(events))
	for _, e := range events {
		out = append(out, providers.PlatformEvent{Time: e.Time, Resource: e.Resource, Type: e.Type, Status: e.Status, Reason: e.Reason})
	}
	return out, nil
}
