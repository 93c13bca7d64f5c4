package convox_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
)

// TestReleaseDescriptions checks that every release says what made it:
// the caller's description when given, else one written by the call that
// created the release.
func TestReleaseDescriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		w := newWorld(t, nil)
		w.deployV1(ctx) // R1
		w.push("v2")
		web := w.c.App("web")
		steps := []struct {
			name string
			do   func(context.Context) (*convox.Release, error)
		}{
			{"deploy an image", func(ctx context.Context) (*convox.Release, error) {
				return web.Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
			}},
			{"deploy without an image", func(ctx context.Context) (*convox.Release, error) {
				return web.Deploy(ctx, convox.ReleaseSpec{Env: map[string]string{"MODE": "test"}}, nil)
			}},
			{"deploy with a description", func(ctx context.Context) (*convox.Release, error) {
				return web.Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Description: "hotfix 42"}, nil)
			}},
			{"scale", func(ctx context.Context) (*convox.Release, error) { return web.Scale(ctx, "web", 3, nil) }},
			{"set variables", func(ctx context.Context) (*convox.Release, error) {
				return web.SetEnv(ctx, map[string]string{"B": "1", "A": "2"}, map[string]convox.Secret{"TOKEN": "s3cret"}, nil)
			}},
			{"unset variables", func(ctx context.Context) (*convox.Release, error) {
				return web.UnsetEnv(ctx, []string{"A", "TOKEN"}, nil)
			}},
			{"roll back", func(ctx context.Context) (*convox.Release, error) {
				return web.Rollback(ctx, convox.ToRelease("R1"), nil)
			}},
		}
		for _, s := range steps {
			if _, err := s.do(ctx); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		var got []string
		for r, err := range web.Releases(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r.ID+" "+r.Description)
		}
		want := []string{
			"R8 rollback to R1", "R7 env unset A TOKEN", "R6 env set A B TOKEN", "R5 scale web=3",
			"R4 hotfix 42", "R3 update of R2", "R2 deploy web:v2", "R1 deploy web:v1",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("descriptions (-want +got):\n%s", diff)
		}
	})
}
