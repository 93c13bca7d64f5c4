package convox

import (
	"context"
	"time"

	"github.com/convox-go/convox/internal/holder"
	"github.com/convox-go/convox/providers"
)

// Internals the external tests of the lease reach.

// LeaseTTL returns the client's lease TTL.
func LeaseTTL(c *Client) time.Duration { return c.opts.LeaseTTL }

// LoadApp reads an app document.
func LoadApp(ctx context.Context, c *Client, app string) (*appDoc, error) { return c.loadApp(ctx, app) }

// ReleaseKey is the store key of a release.
func ReleaseKey(app string, seq int64) string { return releaseKey(app, seq) }

// LeaveCrashedLease leaves the lease a deployer that died mid-deploy of
// release would leave (held, naming proc as its process) and returns what
// that deployer applied to the scheduler.
func LeaveCrashedLease(ctx context.Context, c *Client, app, release string, proc *holder.ID) (providers.Desired, error) {
	doc, err := c.loadApp(ctx, app)
	if err != nil {
		return providers.Desired{}, err
	}
	now := time.Now()
	doc.Lease = &leaseDoc{Token: "dead", Holder: "crashed:1", Process: proc, Release: release, Previous: doc.Active, Started: now, Expires: now.Add(c.opts.LeaseTTL)}
	if err := c.saveApp(ctx, doc); err != nil {
		return providers.Desired{}, err
	}
	rel, err := c.loadRelease(ctx, app, release)
	if err != nil {
		return providers.Desired{}, err
	}
	return rel.desired("dead", nil), nil
}
