package convox_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// keepingScheduler is the fake scheduler with a secret service: it keeps
// values under references "ref-N", or answers ErrUnimplemented when off.
type keepingScheduler struct {
	providers.Scheduler
	off bool

	mu      sync.Mutex
	kept    []string // values, by reference number
	applied []providers.Desired
}

func (k *keepingScheduler) KeepSecret(_ context.Context, app, name, value string) (string, error) {
	if k.off {
		return "", fmt.Errorf("%w: no secret service", providers.ErrUnimplemented)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kept = append(k.kept, value)
	return fmt.Sprintf("ref-%d", len(k.kept)), nil
}

func (k *keepingScheduler) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	k.mu.Lock()
	k.applied = append(k.applied, d)
	k.mu.Unlock()
	return k.Scheduler.Apply(ctx, d)
}

func (k *keepingScheduler) last() providers.Desired {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.applied[len(k.applied)-1]
}

// TestSecretsKeptByTheSchedulerAreStoredAsReferences checks the root's
// side of providers.SecretKeeper: each value goes to KeepSecret once, the
// store and the scheduler see only its reference afterwards, and a
// scheduler without a secret service gets values as before.
func TestSecretsKeptByTheSchedulerAreStoredAsReferences(t *testing.T) {
	worker := []convox.Process{{Name: "worker", Count: 1}}
	tests := []struct {
		name       string
		off        bool
		steps      []func(ctx context.Context, a *convox.AppClient) error
		wantKept   []string
		wantEnv    map[string]string
		wantRefs   map[string]string
		wantStored bool // the value is in the store
	}{
		{
			name: "a secret is kept once and stored as its reference",
			steps: []func(ctx context.Context, a *convox.AppClient) error{
				func(ctx context.Context, a *convox.AppClient) error {
					_, err := a.Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Env: map[string]string{"MODE": "a"}, Secrets: map[string]convox.Secret{"TOKEN": secretValue}, Processes: worker}, nil)
					return err
				},
			},
			wantKept: []string{secretValue}, wantEnv: map[string]string{"MODE": "a"}, wantRefs: map[string]string{"TOKEN": "ref-1"},
		},
		{
			name: "a secret copied by a plain change or passed back unchanged keeps its reference",
			steps: []func(ctx context.Context, a *convox.AppClient) error{
				func(ctx context.Context, a *convox.AppClient) error {
					_, err := a.Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Secrets: map[string]convox.Secret{"TOKEN": secretValue}, Processes: worker}, nil)
					return err
				},
				func(ctx context.Context, a *convox.AppClient) error {
					_, err := a.SetEnv(ctx, map[string]string{"MODE": "b"}, nil, nil)
					return err
				},
				func(ctx context.Context, a *convox.AppClient) error {
					_, err := a.Deploy(ctx, convox.ReleaseSpec{Env: map[string]string{"MODE": "c"}}, nil)
					return err
				},
			},
			wantKept: []string{secretValue}, wantEnv: map[string]string{"MODE": "c"}, wantRefs: map[string]string{"TOKEN": "ref-1"},
		},
		{
			name: "a rollback reuses the reference of the release it copies",
			steps: []func(ctx context.Context, a *convox.AppClient) error{
				func(ctx context.Context, a *convox.AppClient) error {
					_, err := a.Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Secrets: map[string]convox.Secret{"TOKEN": secretValue}, Processes: worker}, nil)
					return err
				},
				func(ctx context.Context, a *convox.AppClient) error {
					_, err := a.SetEnv(ctx, nil, map[string]convox.Secret{"TOKEN": "second-value"}, nil)
					return err
				},
				func(ctx context.Context, a *convox.AppClient) error {
					_, err := a.Rollback(ctx, convox.Previous(), nil)
					return err
				},
			},
			wantKept: []string{secretValue, "second-value"}, wantEnv: map[string]string{}, wantRefs: map[string]string{"TOKEN": "ref-1"},
		},
		{
			name: "a scheduler without a secret service gets the value",
			off:  true,
			steps: []func(ctx context.Context, a *convox.AppClient) error{
				func(ctx context.Context, a *convox.AppClient) error {
					_, err := a.Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Secrets: map[string]convox.Secret{"TOKEN": secretValue}, Processes: worker}, nil)
					return err
				},
			},
			wantEnv: map[string]string{"TOKEN": secretValue}, wantStored: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := fake.New(nil)
				r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/worker"}})
				k := &keepingScheduler{Scheduler: r.Scheduler(), off: tt.off}
				c, err := convox.New(convox.Rack{Registry: r.Registry(), Scheduler: k, Logs: r.Logs(), Store: r.Store()},
					&convox.Options{PollInterval: time.Second, MaxPollInterval: 5 * time.Second, Timeout: 5 * time.Minute, CompensateTimeout: 5 * time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				ctx := t.Context()
				if _, err := c.CreateApp(ctx, "web", nil); err != nil {
					t.Fatal(err)
				}
				for i, s := range tt.steps {
					if err := s(ctx, c.App("web")); err != nil {
						t.Fatalf("step %d: %v", i+1, err)
					}
				}
				if diff := cmp.Diff(tt.wantKept, k.kept); diff != "" {
					t.Errorf("values kept (-want +got):\n%s", diff)
				}
				d := k.last()
				if diff := cmp.Diff(tt.wantEnv, d.Env); diff != "" {
					t.Errorf("applied environment (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.wantRefs, d.SecretRefs); diff != "" {
					t.Errorf("applied secret references (-want +got):\n%s", diff)
				}
				stored := false
				page, err := r.Store().List(ctx, "", providers.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for _, doc := range page.Docs {
					stored = stored || strings.Contains(string(doc.Value), secretValue)
				}
				if stored != tt.wantStored {
					t.Errorf("the store holds the secret value: %t, want %t", stored, tt.wantStored)
				}
			})
		})
	}
}
