// Package localtest holds test helpers for the local rack and code that
// deploys to it: images built once per test binary (with package goimage,
// which programs use directly) and the registry's credential as a
// go-containerregistry option.
//
//	img := localtest.BuildGoImage(t, "testdata/server")
//	pinned, err := rack.Registry().PushImage(ctx, "web", "v1", img)
//
// Pushing over the registry's OCI distribution API instead, as standard
// tooling does, needs the rack's credential:
//
//	err := remote.Write(ref, img, localtest.Auth(t, rack.Registry()))
package localtest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/goimage"
	"github.com/convox-go/convox/providers"
)

// Auth returns the go-containerregistry remote option that authenticates
// to reg with the credentials reg hands out (Registry.Credentials), for
// remote.Write, remote.Image and the like; a failure ends the test.
func Auth(t testing.TB, reg providers.Registry) remote.Option {
	t.Helper()
	c, err := reg.Credentials(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password}))
}

// BinaryPath is where BuildGoImage puts the binary inside the image; it is
// the image's entrypoint.
const BinaryPath = goimage.BinaryPath

var (
	mu     sync.Mutex
	images = map[string]v1.Image{}
)

// BuildGoImage builds the Go main package in srcDir (a directory of the
// current module, relative to the test's working directory or absolute)
// with goimage.Build and default configuration. The image is built once per
// directory and test binary; failures end the test. Programs use package
// goimage directly.
func BuildGoImage(t testing.TB, srcDir string) v1.Image {
	t.Helper()
	abs, err := filepath.Abs(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if img, ok := images[abs]; ok {
		return img
	}
	img, err := goimage.Build(context.Background(), abs, nil)
	if err != nil {
		t.Fatal(err)
	}
	images[abs] = img
	return img
}

// ImagePusher pushes an image to a registry as repo:tag; the local rack's
// Registry is one.
type ImagePusher interface {
	PushImage(ctx context.Context, repo, tag string, img v1.Image) (providers.Image, error)
}

// PushVariants pushes to reg, as repo:TAG for each tag, a variant of img
// whose environment adds KEY=TAG (the variants share img's layers), so that
// a test app can tell which image it runs; a failure ends the test.
func PushVariants(t testing.TB, ctx context.Context, reg ImagePusher, repo string, img v1.Image, key string, tags ...string) {
	t.Helper()
	for _, tag := range tags {
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg = cfg.DeepCopy()
		cfg.Config.Env = append(cfg.Config.Env, key+"="+tag)
		variant, err := mutate.ConfigFile(img, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.PushImage(ctx, repo, tag, variant); err != nil {
			t.Fatal(err)
		}
	}
}

// Settle polls the scheduler's status of app until a release is rolled
// out and no rollout is in progress, for at most within, and returns the
// last status; after within it returns an error describing that status.
func Settle(ctx context.Context, s providers.Scheduler, app string, within time.Duration) (providers.AppStatus, error) {
	deadline := time.Now().Add(within)
	for {
		st, err := s.Status(ctx, app)
		if err == nil && st.Release != "" && !slices.ContainsFunc(st.Rollouts, func(r providers.Rollout) bool {
			return r.State == providers.RolloutInProgress
		}) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("the rollout did not settle in %v (last status %+v, err %v)", within, st, err)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
