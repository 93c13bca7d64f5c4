package providertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/convox-go/convox/providers"
)

// TestNotifier checks the providers.Notifier contract: every kind of
// notification is delivered without error, concurrently too, and a
// canceled context fails promptly. newNotifier is called once per case
// and may return a shared notifier; what a delivery looks like at its
// destination is the provider's own tests' business.
func TestNotifier(t *testing.T, newNotifier func(t *testing.T) providers.Notifier) {
	note := func(kind providers.NotificationKind) providers.Notification {
		return providers.Notification{
			Kind: kind, App: uniqueName(), Release: "r2", Previous: "r1",
			Summary: "image web:v2, 3 processes", Time: time.Now(),
		}
	}
	kinds := []providers.NotificationKind{providers.NotifyDeployStarted, providers.NotifyDeploySucceeded, providers.NotifyDeployFailed, providers.NotifyRollback}

	t.Run("Notify/every kind of notification is delivered", func(t *testing.T) {
		n := newNotifier(t)
		for _, kind := range kinds {
			nt := note(kind)
			if kind == providers.NotifyDeployFailed || kind == providers.NotifyRollback {
				nt.Reason, nt.RolledBack = "health checks failed", true
			}
			if err := n.Notify(t.Context(), nt); err != nil {
				t.Errorf("Notify %s: %v", kind, err)
			}
		}
	})

	t.Run("Concurrency/concurrent notifications are all delivered", func(t *testing.T) {
		n := newNotifier(t)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if err := n.Notify(t.Context(), note(kinds[i%len(kinds)])); err != nil {
					t.Errorf("Notify %d: %v", i, err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("Context/canceled context fails Notify with context.Canceled", func(t *testing.T) {
		n := newNotifier(t)
		checkCanceled(t, func(ctx context.Context) error { return n.Notify(ctx, note(providers.NotifyDeployStarted)) })
	})
}
