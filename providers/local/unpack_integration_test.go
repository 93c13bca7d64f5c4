package local_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local/localtest"
)

// TestDeployOfACorruptLayerFailsFast deploys an image whose extra layer
// was corrupted on disk after the push: the deploy fails at once with the
// layer's digest in its error (not after retries or a timeout), the
// compensation ends, no process of the corrupt image ever starts, and the
// previous release (or nothing, on a first deploy) is what serves.
func TestDeployOfACorruptLayerFailsFast(t *testing.T) {
	tests := []struct {
		name  string
		first bool // the corrupt image is the app's first deploy
	}{
		{name: "over a serving release, which serves on"},
		{name: "as the first deploy, which leaves nothing running", first: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := openRack(t, nil)
			ctx := t.Context()
			if !tt.first {
				tr.deploy(t, webSpec("web:v1", "one"), nil)
			}
			extra := static.NewLayer([]byte(strings.Repeat("corrupt me ", 1000)), types.OCIUncompressedLayer)
			img, err := mutate.AppendLayers(localtest.BuildGoImage(t, "testdata/server"), extra)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.rack.Registry().PushImage(ctx, "web", "v2", img); err != nil {
				t.Fatal(err)
			}
			layer, _ := extra.Digest()
			blobs, _ := filepath.Glob(filepath.Join(tr.rack.Dir(), "registry", "*", "blobs", layer.Algorithm, layer.Hex))
			if len(blobs) != 1 {
				t.Fatalf("layer blob %s: found %q", layer, blobs)
			}
			b, err := os.ReadFile(blobs[0])
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(blobs[0], b, 0o600); err != nil {
				t.Fatal(err)
			}

			_, err = tr.web.Deploy(ctx, webSpec("web:v2", "two"), nil)
			var de *convox.DeployError
			if !errors.As(err, &de) {
				t.Fatalf("deploy of a corrupt layer = %v, want a *DeployError", err)
			}
			if !strings.Contains(err.Error(), "blob "+layer.String()+" is corrupt") || !errors.As(err, new(*convox.DeployError)) {
				t.Errorf("deploy error %q: want the rollout's failure naming the corrupt blob %s", err, layer)
			}
			if !de.RolledBack {
				t.Errorf("deploy error %v: compensation did not end with the app restored", err)
			}
			app, err := tr.web.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if app.Deploying != "" {
				t.Errorf("a deploy of %s is still in flight", app.Deploying)
			}
			for task, err := range tr.web.Tasks(ctx) {
				if err != nil {
					t.Fatal(err)
				}
				if task.Release == de.Release {
					t.Errorf("task %s of the corrupt release %s: %s (%s)", task.ID, de.Release, task.State, task.Reason)
				}
				if task.State != providers.TaskStopped && tt.first {
					t.Errorf("task %s of %s runs after a failed first deploy", task.ID, task.Release)
				}
			}
			if !tt.first {
				tr.expectServing(t, app.Active, "one")
			}
		})
	}
}
