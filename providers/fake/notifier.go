package fake

import (
	"context"

	"github.com/convox-go/convox/providers"
)

// Notifier is the rack's providers.Notifier. It records every delivered
// notification; Rack.Notifications returns them.
type Notifier struct{ r *Rack }

var _ providers.Notifier = (*Notifier)(nil)

// Notify implements providers.Notifier. A notification without Kind or App
// returns ErrInvalid.
func (n *Notifier) Notify(ctx context.Context, note providers.Notification) error {
	c := Call{Provider: "Notifier", Method: "Notify", Key: note.App, Args: []any{note}}
	return do0(n.r, ctx, c, func(ctx context.Context) error {
		if h := n.r.currentHooks().Notifier.Notify; h != nil {
			return h(ctx, note, n.notify)
		}
		return n.notify(ctx, note)
	})
}

func (n *Notifier) notify(ctx context.Context, note providers.Notification) error {
	if err := n.r.enter(ctx, "Notifier.Notify"); err != nil {
		return err
	}
	if note.Kind == "" || note.App == "" {
		return providers.Invalidf("fake notifier: notification without kind or app")
	}
	n.r.mu.Lock()
	defer n.r.mu.Unlock()
	n.r.notes = append(n.r.notes, note)
	return nil
}
