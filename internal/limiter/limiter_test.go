package limiter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestLimiterSpacesCallsAfterTheBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(10, 5)
		start := time.Now()
		var wg sync.WaitGroup
		for range 25 {
			wg.Go(func() {
				if err := l.Wait(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		// 5 tokens at once, then 20 more at 10 per second.
		if got, want := time.Since(start), 2*time.Second; got != want {
			t.Errorf("25 calls took %v of fake time, want %v", got, want)
		}
	})
}

func TestLimiterWaitEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(1, 1)
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait = %v, want DeadlineExceeded", err)
		}
	})
}

func TestNilLimiterNeverWaits(t *testing.T) {
	var l *Limiter = New(0, 0)
	if l != nil {
		t.Fatal("New(0, 0) is not nil")
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Error(err)
	}
}
