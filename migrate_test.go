package convox_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/local"
	"github.com/convox-go/convox/providers/local/localtest"
	"github.com/convox-go/convox/providers/ociregistry"
)

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func TestMigrateRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes on a local rack")
	}
	ctx := t.Context()
	rack, err := local.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rack.Close() })
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	docker, err := ociregistry.New(strings.TrimPrefix(srv.URL, "http://"), &ociregistry.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	var copies int
	c, err := convox.New(convox.Rack{
		Registries: []convox.Named[providers.Registry]{{Name: "local", Provider: rack.Registry()}, {Name: "docker", Provider: docker}},
		Scheduler:  rack.Scheduler(), Balancer: rack.Balancer(), Logs: rack.Logs(), Store: rack.Store(),
	}, &convox.Options{PollInterval: 100 * time.Millisecond, MaxPollInterval: 500 * time.Millisecond, OnEvent: func(e convox.Event) {
		if e.Type == convox.EventMigration {
			copies++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	localtest.PushVariants(t, ctx, rack.Registry(), "web", localtest.BuildGoImage(t, "providers/local/testdata/server"), "MESSAGE", "one", "two")
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	web := c.App("web")
	spec := convox.ReleaseSpec{Image: "web:one", Processes: []convox.Process{{Name: "web", Count: 1, Port: 8080, Health: providers.HealthCheck{Path: "/health"}}}}
	if _, err := web.Deploy(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := web.Deploy(ctx, convox.ReleaseSpec{Image: "web:two"}, nil); err != nil {
		t.Fatal(err)
	}

	// Interrupted after the first image: nothing is rewritten yet.
	ictx, cancel := context.WithCancel(ctx)
	c2, _ := convox.New(convox.Rack{
		Registries: []convox.Named[providers.Registry]{{Name: "local", Provider: rack.Registry()}, {Name: "docker", Provider: docker}},
		Scheduler:  rack.Scheduler(), Balancer: rack.Balancer(), Logs: rack.Logs(), Store: rack.Store(),
	}, &convox.Options{OnEvent: func(e convox.Event) {
		if e.Type == convox.EventMigration {
			cancel()
		}
	}})
	if _, err := c2.App("web").MigrateRegistry(ictx, "docker", &convox.MigrateOptions{Concurrency: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted migration = %v, want context.Canceled", err)
	}
	if app, _ := web.Get(ctx); app.Providers.Registry != "local" {
		t.Errorf("an interrupted migration switched the registry to %s", app.Providers.Registry)
	}

	// Resumed: the image copied before is already present.
	rep, err := web.MigrateRegistry(ctx, "docker", nil)
	if err != nil {
		t.Fatalf("resumed migration: %v", err)
	}
	want := &convox.RegistryMigration{From: "local", To: "docker", Images: 2, Copied: 1, Present: 1, Releases: 2}
	got := *rep
	got.BlobBytes = 0
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if rep.BlobBytes == 0 || copies != 2 {
		t.Errorf("sent %d bytes in %d progress events; want bytes for one image and 2 events", rep.BlobBytes, copies)
	}
	for r, err := range web.Releases(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Registry != "docker" || !strings.HasPrefix(r.Image.Repository, strings.TrimPrefix(srv.URL, "http://")) {
			t.Errorf("release %s still points at %s (%s)", r.ID, r.Registry, r.Image.Repository)
		}
	}
	again, err := web.MigrateRegistry(ctx, "docker", nil)
	if err != nil || again.Images != 0 {
		t.Errorf("a finished migration run again = %+v, %v; want nothing to do", again, err)
	}

	// Rollback still works, resolving the old release in the new registry.
	rb, err := web.Rollback(ctx, convox.Previous(), nil)
	if err != nil {
		t.Fatalf("rollback after the migration: %v", err)
	}
	app, _ := web.Get(ctx)
	if rb.Parent != "R1" || app.Active != rb.ID || get(t, app.Endpoints["web"]) != "one" {
		t.Errorf("rollback %s of %s, active %s, serving %q; want R1's copy serving \"one\"", rb.ID, rb.Parent, app.Active, get(t, app.Endpoints["web"]))
	}
}

func TestPruneImages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, nil)
		ctx := t.Context()
		if _, err := w.c.CreateApp(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		var digests []string
		for i, tag := range []string{"v1", "v2", "v3", "v4", "v5"} {
			digests = append(digests, w.push(tag).Digest)
			spec := convox.ReleaseSpec{Image: "web:" + tag}
			if i == 0 {
				spec = webSpec("web:v1")
			}
			if _, err := w.c.App("web").Deploy(ctx, spec, nil); err != nil {
				t.Fatal(err)
			}
		}
		// R6 fails: R5 stays active and last healthy.
		w.rack.CrashLoop(w.push("v6").Digest)
		if _, err := w.c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v6"}, nil); err == nil {
			t.Fatal("crashing deploy succeeded")
		}
		dry, err := w.c.App("web").PruneImages(ctx, &convox.PruneOptions{Keep: 2, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		var gone []string
		for _, img := range dry.Deleted {
			gone = append(gone, img.Digest)
		}
		// Newest two are R6 and R5 (R5 also active and last healthy); R1–R4 go.
		if diff := cmp.Diff(digests[:4], gone); diff != "" {
			t.Errorf("dry run would delete (-want +got):\n%s", diff)
		}
		imgs, _ := w.rack.Registry().ListImages(ctx, "web")
		if len(imgs) != 6 {
			t.Errorf("dry run deleted images: %d left", len(imgs))
		}
		if _, err := w.c.App("web").PruneImages(ctx, &convox.PruneOptions{Keep: 2}); err != nil {
			t.Fatal(err)
		}
		imgs, _ = w.rack.Registry().ListImages(ctx, "web")
		if len(imgs) != 2 {
			t.Errorf("%d images left, want the 2 kept", len(imgs))
		}
		res, err := w.c.App("web").CheckRollback(ctx, convox.Previous())
		if err != nil || res.Ready() {
			t.Errorf("CheckRollback after pruning R4's image = %+v, %v; want not ready", res, err)
		}
	})

	t.Run("a registry that cannot delete is refused before anything", func(t *testing.T) {
		r := fake.New(nil)
		rk := r.ConvoxRack()
		rk.Registry = plainRegistry{r.Registry()}
		c, _ := convox.New(rk, nil)
		c.CreateApp(t.Context(), "web", nil)
		if _, err := c.App("web").PruneImages(t.Context(), nil); !errors.Is(err, providers.ErrUnimplemented) {
			t.Errorf("PruneImages = %v, want ErrUnimplemented", err)
		}
	})
}

// plainRegistry hides every optional interface of the registry it wraps.
type plainRegistry struct{ providers.Registry }
