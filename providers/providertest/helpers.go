package providertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
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

// Races. A rule that checks that an operation is atomic runs racers
// goroutines, each repeating the operation for up to raceRounds rounds;
// it ends at raceTime for a slow backend. A window of a few instructions
// between a check and a write is found because a racer is preempted (by
// the Go scheduler or the operating system) inside it now and then, while
// another racer runs the same round: with thousands of rounds that
// happens several times. The rule's time is bounded by the rounds and
// raceTime; raceTime is a budget, never an assertion.
const (
	raceRounds = 50000
	raceTime   = 5 * time.Second
	racers     = 4
)

// parallel makes sure goroutines of the calling test run in parallel:
// it raises GOMAXPROCS to 2 for the rest of the test when it is lower.
func parallel(t *testing.T) {
	if prev := runtime.GOMAXPROCS(0); prev < 2 {
		runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
}

// race runs f(ctx, racer, round) in racers goroutines released together,
// each for rounds 0, 1, ... until f returns false, rounds rounds are done
// or raceTime has passed, and returns when every racer has stopped. ctx
// is the test's context.
func race(t *testing.T, rounds int, f func(ctx context.Context, racer, round int) bool) {
	raceWith(t, t.Context(), rounds, f)
}

// raceYielding is race with a yieldingContext: racers also interleave
// wherever the provider consults its context. It suits a race of few
// rounds (each an expensive call) over a window that spans a provider's
// own calls; a race of many cheap rounds is better served by race, whose
// racers the scheduler preempts at arbitrary instructions.
func raceYielding(t *testing.T, rounds int, f func(ctx context.Context, racer, round int) bool) {
	raceWith(t, yieldingContext{t.Context()}, rounds, f)
}

func raceWith(t *testing.T, ctx context.Context, rounds int, f func(ctx context.Context, racer, round int) bool) {
	parallel(t)
	deadline := time.Now().Add(raceTime)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for r := range racers {
		wg.Go(func() {
			<-start
			for round := 0; round < rounds && (round%64 != 0 || time.Now().Before(deadline)); round++ {
				if !f(ctx, r, round) {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
}

// yieldingContext is a context whose Done and Err yield the processor
// before they answer, so that another racer runs at every point where a
// provider consults its context, as it may on a busy machine.
type yieldingContext struct{ context.Context }

// Done implements context.Context.
func (c yieldingContext) Done() <-chan struct{} {
	runtime.Gosched()
	return c.Context.Done()
}

// Err implements context.Context.
func (c yieldingContext) Err() error {
	runtime.Gosched()
	return c.Context.Err()
}

// failures collects the failures of racing goroutines, which must not
// call t.Fatal; the first few are reported.
type failures struct {
	mu   sync.Mutex
	msgs []string
	n    int
}

// add records a failure and returns false, to stop the racer.
func (f *failures) add(format string, args ...any) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.msgs) < 5 {
		f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	}
	return false
}

// none reports whether no failure was recorded: racers stop at the first.
func (f *failures) none() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n == 0
}

// report fails t with the recorded failures.
func (f *failures) report(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > 0 {
		t.Errorf("%d failures, the first:\n%s", f.n, indent(f.msgs))
	}
}
