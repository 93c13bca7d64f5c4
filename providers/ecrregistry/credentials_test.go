package ecrregistry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecrregistry"
)

// tokens is an ECR API whose GetAuthorizationToken blocks until released
// and counts its calls; the other methods are not used here.
type tokens struct {
	ecrregistry.API
	release chan struct{}
	mu      sync.Mutex
	calls   int
	ctxErr  error // the context error seen by the last call when it returned
}

func (s *tokens) GetAuthorizationToken(ctx context.Context, _ *ecr.GetAuthorizationTokenInput, _ ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	<-s.release
	s.mu.Lock()
	s.ctxErr = ctx.Err()
	s.mu.Unlock()
	token := base64.StdEncoding.EncodeToString([]byte("AWS:password-" + string(rune('0'+n))))
	return &ecr.GetAuthorizationTokenOutput{AuthorizationData: []types.AuthorizationData{{
		AuthorizationToken: aws.String(token),
		ProxyEndpoint:      aws.String("https://123456789012.dkr.ecr.us-east-1.amazonaws.com"),
		ExpiresAt:          aws.Time(time.Now().Add(12 * time.Hour)),
	}}}, nil
}

func (s *tokens) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestConcurrentCallersShareOneTokenCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &tokens{release: make(chan struct{})}
		reg := ecrregistry.New(api, nil)
		const callers = 8
		got := make([]providers.Credentials, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				var err error
				if got[i], err = reg.Credentials(t.Context(), "web"); err != nil {
					t.Errorf("caller %d: %v", i, err)
				}
			})
		}
		synctest.Wait() // every caller waits on the one call in flight
		close(api.release)
		wg.Wait()
		if api.count() != 1 {
			t.Errorf("GetAuthorizationToken calls = %d, want 1", api.count())
		}
		want := providers.Credentials{Registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Password: "password-1", Expires: time.Now().Add(12 * time.Hour)}
		for i := range callers {
			if diff := cmp.Diff(want, got[i]); diff != "" {
				t.Errorf("caller %d (-want +got):\n%s", i, diff)
			}
		}
	})
}

func TestTheFirstCallersCancellationDoesNotFailTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &tokens{release: make(chan struct{})}
		reg := ecrregistry.New(api, nil)
		first, cancel := context.WithCancel(t.Context())
		firstErr := make(chan error, 1)
		go func() { _, err := reg.Credentials(first, "web"); firstErr <- err }()
		synctest.Wait()
		secondErr := make(chan error, 1)
		go func() { _, err := reg.Credentials(t.Context(), "web"); secondErr <- err }()
		synctest.Wait()
		cancel()
		if err := <-firstErr; !errors.Is(err, context.Canceled) {
			t.Errorf("canceled caller: %v, want context.Canceled", err)
		}
		close(api.release)
		if err := <-secondErr; err != nil {
			t.Errorf("second caller: %v, want the credentials", err)
		}
		if api.ctxErr != nil {
			t.Errorf("the token call saw its context end (%v): it must be detached from the first caller", api.ctxErr)
		}
	})
}

func TestCredentialsAreRenewedShortlyBeforeTheyExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &tokens{release: make(chan struct{})}
		close(api.release)
		reg := ecrregistry.New(api, &ecrregistry.Options{RefreshBefore: 10 * time.Minute})
		steps := []struct {
			after     time.Duration
			wantCalls int
		}{
			{0, 1},
			{11*time.Hour + 49*time.Minute, 1}, // 11 minutes left: still cached
			{2 * time.Minute, 2},               // 9 minutes left: renewed
			{time.Hour, 2},
		}
		for i, s := range steps {
			time.Sleep(s.after)
			if _, err := reg.Credentials(t.Context(), "web"); err != nil {
				t.Fatal(err)
			}
			if api.count() != s.wantCalls {
				t.Errorf("step %d: GetAuthorizationToken calls = %d, want %d", i, api.count(), s.wantCalls)
			}
		}
	})
}
