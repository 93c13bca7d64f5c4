package local

import "github.com/convox-go/convox/providers"

// storedDesired is the form in which the scheduler persists an app's
// desired state, in scheduler/apps/<app>.json (mode 0600, in the rack
// directory). providers.Desired redacts secret values in every encoding;
// this type, defined on the same struct, has none of its methods, so the
// file keeps the real values and a reopened rack restarts the app's
// processes with them. That file — and the environment of the running
// processes — is where the local rack's secret values rest; the rack's
// owner (and root) can read them.
type storedDesired providers.Desired
