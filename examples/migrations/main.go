// Command migrations runs the three migrations of the SDK on the local
// rack, with nothing installed but Go, checking at each step that users
// would not notice:
//
//		go run ./examples/migrations            # all three
//		go run ./examples/migrations registry   # or one: registry, balancer, logs
//
//	  - registry: an app deployed from a self-hosted Docker registry (here an
//	    in-process OCI distribution registry on 127.0.0.1) moves to the
//	    rack's own registry by digest; rollback still works afterwards.
//	  - balancer: an app moves from the balancer "elb" to "alb" while a load
//	    loop counts failed requests (there must be none).
//	  - logs: an app's logs move from one backend to another through a tee;
//	    reads span the switch.
//
// It exits 0 only if every migration behaved as described.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/goimage"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
	"github.com/convox-go/convox/providers/logtee"
	"github.com/convox-go/convox/providers/ociregistry"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	which := os.Args[1:]
	if len(which) == 0 {
		which = []string{"registry", "balancer", "logs"}
	}
	if err := run(ctx, os.Stdout, appDir(), which...); err != nil {
		fmt.Fprintln(os.Stderr, "migrations failed:", err)
		os.Exit(1)
	}
	fmt.Println("\nmigrations: every step behaved as described")
}

// appDir finds the quickstart's web app, which these migrations deploy.
func appDir() string {
	for _, d := range []string{"examples/quickstart/app", "../quickstart/app"} {
		if _, err := os.Stat(filepath.Join(d, "main.go")); err == nil {
			return d
		}
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "quickstart", "app")
}

// run runs the named migrations.
func run(ctx context.Context, out io.Writer, src string, which ...string) error {
	base, err := goimage.Build(ctx, src, nil)
	if err != nil {
		return err
	}
	for _, w := range which {
		var err error
		switch w {
		case "registry":
			err = registryMigration(ctx, out, base)
		case "balancer":
			err = balancerMigration(ctx, out, base)
		case "logs":
			err = logsMigration(ctx, out, base)
		default:
			err = fmt.Errorf("unknown migration %q: use registry, balancer or logs", w)
		}
		if err != nil {
			return fmt.Errorf("%s migration: %w", w, err)
		}
	}
	return nil
}

// version returns base with VERSION set in its configuration.
func version(base v1.Image, v string) (v1.Image, error) {
	return goimage.Configure(base, goimage.Config{Env: []string{"VERSION=" + v}})
}

// openRack opens a local rack in a temporary directory; done closes and removes it.
func openRack(opts *local.Options) (rack *local.Rack, done func(), err error) {
	dir, err := os.MkdirTemp("", "convox-migrations-")
	if err != nil {
		return nil, nil, err
	}
	rack, err = local.Open(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return rack, func() { rack.Close(); os.RemoveAll(dir) }, nil
}

var webProcess = []convox.Process{{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health", Interval: 100 * time.Millisecond}}}

var fast = &convox.Options{PollInterval: 100 * time.Millisecond, MaxPollInterval: 500 * time.Millisecond}

// get returns the trimmed body of a GET.
func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), err
}

func expect(ctx context.Context, out io.Writer, url, want string) error {
	got, err := get(ctx, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  GET %s -> %q\n", url, got)
	if got != want {
		return fmt.Errorf("GET %s = %q, want %q", url, got, want)
	}
	return nil
}

func registryMigration(ctx context.Context, out io.Writer, base v1.Image) error {
	fmt.Fprintln(out, "\n== registry: self-hosted Docker registry → the rack's registry, by digest")
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	docker, err := ociregistry.New(host, &ociregistry.Options{Insecure: true})
	if err != nil {
		return err
	}
	for _, v := range []string{"v1", "v2"} {
		img, err := version(base, v)
		if err != nil {
			return err
		}
		ref, err := name.ParseReference(host+"/web:"+v, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
			return err
		}
	}
	rack, done, err := openRack(nil)
	if err != nil {
		return err
	}
	defer done()
	opts := *fast
	opts.OnEvent = func(e convox.Event) {
		if e.Type == convox.EventMigration || e.Type == convox.EventMigrated {
			fmt.Fprintf(out, "  %s\n", e.Message)
		}
	}
	c, err := convox.New(convox.Rack{
		Registries: []convox.Named[providers.Registry]{{Name: "docker", Provider: docker}, {Name: "local", Provider: rack.Registry()}},
		Scheduler:  rack.Scheduler(), Balancer: rack.Balancer(), Logs: rack.Logs(), Store: rack.Store(),
	}, &opts)
	if err != nil {
		return err
	}
	web := c.App("web")
	if _, err := c.CreateApp(ctx, "web", &convox.AppSpec{Registry: "docker"}); err != nil {
		return err
	}
	for _, v := range []string{"v1", "v2"} {
		if _, err := web.Deploy(ctx, convox.ReleaseSpec{Image: "web:" + v, Processes: webProcess}, nil); err != nil {
			return err
		}
	}
	rep, err := web.MigrateRegistry(ctx, "local", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d images, %d copied, %d bytes, %d releases rewritten\n", rep.Images, rep.Copied, rep.BlobBytes, rep.Releases)
	again, err := web.MigrateRegistry(ctx, "local", nil)
	if err != nil || again.Images != 0 {
		return fmt.Errorf("running the finished migration again: %+v, %v", again, err)
	}
	for r, err := range web.Releases(ctx) {
		if err != nil {
			return err
		}
		if r.Registry != "local" {
			return fmt.Errorf("release %s still points at %s", r.ID, r.Registry)
		}
	}
	// The old registry is gone; rollback must still work.
	srv.Close()
	rb, err := web.Rollback(ctx, convox.Previous(), nil)
	if err != nil {
		return fmt.Errorf("rollback after the migration: %w", err)
	}
	fmt.Fprintf(out, "  rolled back to %s as %s with the old registry shut down\n", rb.Parent, rb.ID)
	app, err := web.Get(ctx)
	if err != nil {
		return err
	}
	return expect(ctx, out, app.Endpoints["web"], "hello from v1")
}

// load GETs url from 4 workers until stop is closed.
func load(url string, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err == nil && resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return ok, failed, wg.Wait
}

func balancerMigration(ctx context.Context, out io.Writer, base v1.Image) error {
	fmt.Fprintln(out, "\n== balancer: \"elb\" → \"alb\" with traffic flowing")
	rack, done, err := openRack(&local.Options{Balancers: []string{"alb"}})
	if err != nil {
		return err
	}
	defer done()
	alb, err := rack.BalancerNamed("alb")
	if err != nil {
		return err
	}
	c, err := convox.New(convox.Rack{
		Registry: rack.Registry(), Scheduler: rack.Scheduler(), Logs: rack.Logs(), Store: rack.Store(),
		Balancers: []convox.Named[providers.Balancer]{{Name: "elb", Provider: rack.Balancer()}, {Name: "alb", Provider: alb}},
	}, fast)
	if err != nil {
		return err
	}
	img, err := version(base, "v1")
	if err != nil {
		return err
	}
	if _, err := rack.Registry().PushImage(ctx, "web", "v1", img); err != nil {
		return err
	}
	web := c.App("web")
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		return err
	}
	if _, err := web.Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: webProcess}, nil); err != nil {
		return err
	}
	app, err := web.Get(ctx)
	if err != nil {
		return err
	}
	stopOld := make(chan struct{})
	oldOK, oldFailed, waitOld := load(app.Endpoints["web"], stopOld)
	m, err := web.StartBalancerMigration(ctx, "alb", nil)
	if err != nil {
		close(stopOld)
		waitOld()
		return err
	}
	fmt.Fprintf(out, "  serving on both: %s (elb) and %s (alb)\n", m.OldEndpoints["web"], m.Endpoints["web"])
	stopNew := make(chan struct{})
	newOK, newFailed, waitNew := load(m.Endpoints["web"], stopNew)
	time.Sleep(500 * time.Millisecond)
	// Clients move to the new endpoint (a DNS change, say); then finish.
	close(stopOld)
	waitOld()
	_, ferr := web.FinishBalancerMigration(ctx, nil)
	time.Sleep(300 * time.Millisecond)
	close(stopNew)
	waitNew()
	if ferr != nil {
		return ferr
	}
	fmt.Fprintf(out, "  old endpoint: %d requests, %d failed; new endpoint: %d requests, %d failed\n", oldOK.Load()+oldFailed.Load(), oldFailed.Load(), newOK.Load()+newFailed.Load(), newFailed.Load())
	if oldFailed.Load() != 0 || newFailed.Load() != 0 {
		return errors.New("requests failed during the migration")
	}
	if app, err = web.Get(ctx); err != nil {
		return err
	}
	if app.Providers.Balancer != "alb" {
		return fmt.Errorf("the app is on balancer %s, want alb", app.Providers.Balancer)
	}
	return expect(ctx, out, app.Endpoints["web"], "hello from v1")
}

func logsMigration(ctx context.Context, out io.Writer, base v1.Image) error {
	fmt.Fprintln(out, "\n== logs: one backend → another through a tee")
	rack, done, err := openRack(nil)
	if err != nil {
		return err
	}
	defer done()
	// The new backend: another local rack's log files, standing in for
	// CloudWatch Logs (Kinesis → CloudWatch Logs on AWS).
	other, doneOther, err := openRack(nil)
	if err != nil {
		return err
	}
	defer doneOther()
	backends := []convox.Named[providers.Logs]{{Name: "old", Provider: rack.Logs()}, {Name: "new", Provider: other.Logs()}}
	client := func(backends []convox.Named[providers.Logs]) (*convox.Client, error) {
		return convox.New(convox.Rack{
			Registry: rack.Registry(), Scheduler: rack.Scheduler(), Balancer: rack.Balancer(), Store: rack.Store(),
			LogBackends: backends,
		}, fast)
	}
	c, err := client(backends)
	if err != nil {
		return err
	}
	img, err := version(base, "v1")
	if err != nil {
		return err
	}
	if _, err := rack.Registry().PushImage(ctx, "web", "v1", img); err != nil {
		return err
	}
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		return err
	}
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: webProcess}, nil); err != nil {
		return err
	}
	// The migration starts: the rack gains a tee from old to new.
	tee := logtee.New(rack.Logs(), other.Logs(), nil)
	if c, err = client(append(backends, convox.Named[providers.Logs]{Name: "tee", Provider: tee})); err != nil {
		return err
	}
	web := c.App("web")
	platform := func() ([]string, error) {
		var msgs []string
		for e, err := range web.Logs(ctx, convox.LogQuery{Stream: providers.StreamPlatform}) {
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, e.Message)
		}
		return msgs, nil
	}
	// 1. Write to both, read across both.
	if err := web.SwitchLogs(ctx, "tee"); err != nil {
		return err
	}
	if _, err := web.Scale(ctx, "web", 3, nil); err != nil {
		return err
	}
	// 2. Cut over: new lines go to the new backend only.
	tee.Cutover()
	if _, err := web.Scale(ctx, "web", 2, nil); err != nil {
		return err
	}
	msgs, err := platform()
	if err != nil {
		return err
	}
	for _, m := range msgs {
		fmt.Fprintf(out, "  %s\n", m)
	}
	want := []string{"promoting R1", "R1 is active and healthy", "promoting R2 (active: R1)", "R2 is active and healthy", "promoting R3 (active: R2)", "R3 is active and healthy"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		return fmt.Errorf("reads through the tee = %q, want %q", msgs, want)
	}
	// 3. Once the old lines have aged out, drop the tee.
	if err := web.SwitchLogs(ctx, "new"); err != nil {
		return err
	}
	newOnly, err := platform()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  after the switch the new backend holds the %d lines written since the tee started\n", len(newOnly))
	if len(newOnly) != 4 {
		return fmt.Errorf("the new backend holds %d platform lines, want the 4 written since the tee", len(newOnly))
	}
	return nil
}
