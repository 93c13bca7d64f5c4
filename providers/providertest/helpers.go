package providertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convox-go/convox/providers"
)

// runID distinguishes the names of one test binary run from those of
// other runs against the same backend.
var runID = func() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}()

var nameSeq atomic.Int64

// uniqueName returns a name of lowercase letters, digits and one hyphen,
// starting with a letter, unique within and across runs: "ptxxxxx-N". It
// fits providers.MaxAppName.
func uniqueName() string {
	return fmt.Sprintf("pt%s-%d", runID, nameSeq.Add(1))
}

// promptly bounds how long a call with a canceled context may take.
const promptly = 5 * time.Second

// canceledContext returns a context that is already canceled.
func canceledContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// checkCanceled calls f with a canceled context and checks that it
// returns, within a generous bound, an error matching context.Canceled.
func checkCanceled(t *testing.T, f func(ctx context.Context) error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f(canceledContext(t)) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("with a canceled context: got error %v, want one matching context.Canceled", err)
		}
	case <-time.After(promptly):
		t.Errorf("with a canceled context: no return after %v", promptly)
	}
}

// wantErr checks that err matches target.
func wantErr(t *testing.T, op string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one matching %v", op, err, target)
	}
}

// must fails the test at once on an error.
func must(t *testing.T, op string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// cleanupContext is the context of cleanups, which run after t.Context
// is canceled.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// waiter polls an eventually consistent provider.
type waiter struct {
	interval time.Duration
	timeout  time.Duration
}

// maxQuickPolls bounds the observations of a wait without interval.
const maxQuickPolls = 200

func newWaiter(interval, timeout time.Duration) waiter {
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	return waiter{interval: interval, timeout: timeout}
}

// until calls check until it reports done, failing the test when the wait
// runs out (maxQuickPolls observations without interval, else the
// timeout) with the last observed state. Temporary errors are retried;
// any other error fails the test at once.
func (w waiter) until(t *testing.T, what string, check func(ctx context.Context) (done bool, state string, err error)) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(w.timeout)
	var last string
	for n := 1; ; n++ {
		done, state, err := check(ctx)
		switch {
		case err == nil:
			if done {
				return
			}
			last = state
		case providers.IsTemporary(err):
			last = "temporary error: " + err.Error()
		default:
			t.Fatalf("waiting for %s: %v (last observed: %s)", what, err, last)
		}
		if (w.interval == 0 && n >= maxQuickPolls) || time.Now().After(deadline) {
			t.Fatalf("waiting for %s: gave up after %d observations; last observed:\n%s", what, n, last)
		}
		if w.interval > 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			case <-time.After(w.interval):
			}
		}
	}
}

// indent formats lines for failure messages.
func indent(lines []string) string {
	return "\t" + strings.Join(lines, "\n\t")
}
