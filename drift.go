package convox

import (
	"context"

	"github.com/convox-go/convox/providers"
)

// Drift detects changes made to the app's resources outside the SDK
// (a service scaled by hand, a rule deleted in the console) and returns
// the resources that differ from what the scheduler last applied, ordered
// by resource, with the paths of the properties that differ but never
// their values; an empty result means nothing drifted. It changes no
// resource. It needs a scheduler that implements providers.DriftDetector
// (CapDriftDetector); on any other the error matches
// providers.ErrUnimplemented before any call to a provider.
func (a *AppClient) Drift(ctx context.Context) ([]providers.ResourceDrift, error) {
	const op = "Drift"
	_, sel, err := a.load(ctx)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	if err := sel.check(CapDriftDetector); err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	dd, _ := sel.sched.driftDetector()
	out, err := dd.DetectDrift(ctx, a.name)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	return out, nil
}
