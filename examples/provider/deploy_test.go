package sqlitestore_test

import (
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/fake"
)

// TestDeployOnThisStore plugs the store into a rack whose other providers
// are the SDK's fakes, and runs a deploy, a failed deploy and its rollback
// through a real Client: the release history, the app's state and the
// deploy lease all live in SQLite.
func TestDeployOnThisStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // the client's polls run on the bubble's fake time
		ctx := t.Context()
		path := filepath.Join(t.TempDir(), "store.db")
		store := open(t, path)
		r := fake.New(nil)
		rack := r.ConvoxRack()
		rack.Store = store
		c, err := convox.New(rack, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateApp(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
		r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"V=2"}})
		spec := func(image string) convox.ReleaseSpec {
			return convox.ReleaseSpec{Image: image, Processes: []convox.Process{{Name: "web", Count: 2, Port: 8080}}}
		}
		if _, err := c.App("web").Deploy(ctx, spec("web:v1"), nil); err != nil {
			t.Fatalf("Deploy v1: %v", err)
		}
		r.CrashLoop("R2")
		_, err = c.App("web").Deploy(ctx, spec("web:v2"), nil)
		var de *convox.DeployError
		if !errors.As(err, &de) || !de.RolledBack {
			t.Fatalf("Deploy v2 = %v, want a rolled-back *DeployError", err)
		}

		// A second Client on the same file sees the same history.
		again := open(t, path)
		rack.Store = again
		c2, err := convox.New(rack, nil)
		if err != nil {
			t.Fatal(err)
		}
		app, err := c2.App("web").Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if app.Active != "R1" || app.Deploying != "" {
			t.Errorf("app = active %q, deploying %q; want R1 active and no deploy in flight", app.Active, app.Deploying)
		}
	})
}
