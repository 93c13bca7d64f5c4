// Command quickstart runs a real deploy on the local rack, with nothing
// installed but Go:
//
//	go run ./examples/quickstart
//
// It builds the web app in ./app into OCI images without Docker (a static
// go build wrapped by go-containerregistry), pushes them to a local rack
// in a temporary directory, and then, narrating each step:
//
//  1. deploys v1 and GETs it through the balancer;
//  2. deploys v2 and shows the new response;
//  3. deploys a broken v3 that crashes on start: the deploy fails, is
//     rolled back automatically, and the error shows the reason and the
//     crashing process's last log lines, while v2 keeps serving;
//  4. rolls back to v1 with one call;
//  5. shows the app's recent logs and its release history;
//  6. stops everything.
//
// It exits 0 only if every step behaved as described.
//
// The first run is slow before it prints much: "go run" compiles the
// quickstart with the SDK and go-containerregistry (about 265 packages),
// and step 0 compiles the web app with CGO disabled, which builds the
// standard library once more for that setting. Each takes a minute or more
// on a busy 2-core machine; both are cached, so later runs start in
// seconds. The quickstart says what it is about to do before each slow
// step and shows progress while it builds and pushes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/goimage"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, appDir()); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart failed:", err)
		os.Exit(1)
	}
	fmt.Println("\nquickstart: every step behaved as described")
}

// appDir finds ./app next to this file, from the repository root or this directory.
func appDir() string {
	for _, d := range []string{"examples/quickstart/app", "app"} {
		if _, err := os.Stat(filepath.Join(d, "main.go")); err == nil {
			return d
		}
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "app")
}

// step prints a numbered heading.
func step(out io.Writer, n int, title string) {
	fmt.Fprintf(out, "\n== %d. %s\n", n, title)
}

func run(ctx context.Context, out io.Writer, src string) (err error) {
	dir, err := os.MkdirTemp("", "convox-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step(out, 0, "open a local rack and build the app into images (no Docker)")
	fmt.Fprintf(out, "opening a local rack in %s: its registry, balancer and store listen on 127.0.0.1\n", dir)
	rack, err := local.Open(dir, nil)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rack.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	done := progress(out, "building the web app with go build, CGO disabled (the first time this compiles the standard library for it: a minute or more)", "building")
	base, err := goimage.Build(ctx, src, nil)
	if err != nil {
		return err
	}
	done("built")
	for _, v := range []struct{ tag, extra string }{{"v1", ""}, {"v2", ""}, {"v3", "STARTUP_CHECK=database"}} {
		env := []string{"VERSION=" + v.tag}
		if v.extra != "" {
			env = append(env, v.extra)
		}
		img, err := goimage.Configure(base, goimage.Config{Env: env})
		if err != nil {
			return err
		}
		done := progress(out, fmt.Sprintf("pushing web:%s to the rack's registry", v.tag), "pushing")
		pushed, err := rack.Registry().PushImage(ctx, "web", v.tag, img)
		if err != nil {
			return err
		}
		done("pushed as " + pushed.Digest)
	}

	// The deploys below take seconds each; bound them all.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := convox.New(rack.ConvoxRack(), &convox.Options{
		PollInterval: 200 * time.Millisecond, MaxPollInterval: time.Second,
		Timeout: time.Minute, CompensateTimeout: time.Minute,
		OnEvent: func(e convox.Event) { narrate(out, e) },
	})
	if err != nil {
		return err
	}
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		return err
	}
	web := c.App("web")
	spec := convox.ReleaseSpec{
		Image: "web:v1",
		Env:   map[string]string{"GREETING": "hello"},
		Processes: []convox.Process{{
			Name: "web", Count: 2, Port: 8080,
			Health: providers.HealthCheck{Path: "/health", Interval: 200 * time.Millisecond},
		}},
	}

	step(out, 1, "deploy v1")
	fmt.Fprintln(out, "starting 2 processes of v1 and waiting until the balancer's health checks pass (a few seconds)")
	if _, err := web.Deploy(ctx, spec, nil); err != nil {
		return fmt.Errorf("deploy v1: %w", err)
	}
	if err := expect(ctx, out, c, "hello from v1"); err != nil {
		return err
	}

	step(out, 2, "deploy v2")
	if _, err := web.Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
		return fmt.Errorf("deploy v2: %w", err)
	}
	if err := expect(ctx, out, c, "hello from v2"); err != nil {
		return err
	}

	step(out, 3, "deploy a broken v3 (it crashes on start)")
	fmt.Fprintln(out, "the deploy stops at the first crashes and puts v2 back (a few seconds)")
	_, err = web.Deploy(ctx, convox.ReleaseSpec{Image: "web:v3"}, nil)
	var de *convox.DeployError
	if !errors.As(err, &de) {
		return fmt.Errorf("deploy of the broken v3 returned %v, want a deploy error", err)
	}
	fmt.Fprintf(out, "deploy failed as expected:\n  %v\n  reason: %s\n", de, de.Reason)
	fmt.Fprintln(out, "  last log lines of the crashing process:")
	crashed := false
	for _, l := range de.LastLogLines {
		fmt.Fprintf(out, "    %s  %s\n", l.Stream, l.Message)
		crashed = crashed || strings.Contains(l.Message, "connection refused")
	}
	if !de.RolledBack || de.Previous != "R2" || !crashed {
		return fmt.Errorf("the failed deploy should be rolled back to R2 with the crash in its last log lines: %+v", de)
	}
	if err := expect(ctx, out, c, "hello from v2"); err != nil {
		return err
	}

	step(out, 4, "roll back to v1 with one call")
	rb, err := web.Rollback(ctx, convox.ToRelease("R1"), nil)
	if err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	fmt.Fprintf(out, "%s is a copy of %s and is %s\n", rb.ID, rb.Parent, rb.Status)
	if err := expect(ctx, out, c, "hello from v1"); err != nil {
		return err
	}

	step(out, 5, "recent logs and release history")
	n := 0
	for e, err := range web.Logs(ctx, convox.LogQuery{Since: 5 * time.Minute}) {
		if err != nil {
			return err
		}
		if e.Stream == "convox" || n < 12 {
			fmt.Fprintf(out, "  %s %-8s %-4s %s\n", e.Time.Format("15:04:05.000"), e.Process, e.Release, e.Message)
		}
		n++
	}
	if n == 0 {
		return errors.New("the app has no logs")
	}
	want := map[string]convox.ReleaseStatus{"R1": convox.StatusSuperseded, "R2": convox.StatusSuperseded, "R3": convox.StatusFailed, "R4": convox.StatusActive}
	for r, err := range web.Releases(ctx) {
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-3s %-10s %-7s %s %s\n", r.ID, r.Status, r.ImageRef, shortDigest(r.Image.Digest), r.Description)
		if want[r.ID] != r.Status {
			return fmt.Errorf("release %s is %s, want %s", r.ID, r.Status, want[r.ID])
		}
		delete(want, r.ID)
	}
	if len(want) > 0 {
		return fmt.Errorf("releases missing from history: %v", want)
	}

	step(out, 6, "stop everything")
	return nil
}

// progress says what a slow step is about to do, then every 10 seconds
// that it still goes on; the function it returns ends the step with a
// result line and the time it took.
func progress(out io.Writer, what, verb string) (done func(result string)) {
	start := time.Now()
	fmt.Fprintf(out, "%s...\n", what)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(out, "  still %s: %s\n", verb, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func(result string) {
		close(stop)
		<-stopped
		fmt.Fprintf(out, "  %s (%s)\n", result, time.Since(start).Round(100*time.Millisecond))
	}
}

// expect GETs the app's endpoint and checks the response.
func expect(ctx context.Context, out io.Writer, c *convox.Client, want string) error {
	app, err := c.App("web").Get(ctx)
	if err != nil {
		return err
	}
	url := app.Endpoints["web"]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	got := strings.TrimSpace(string(body))
	fmt.Fprintf(out, "GET %s -> %d %q\n", url, resp.StatusCode, got)
	if resp.StatusCode != http.StatusOK || got != want {
		return fmt.Errorf("GET %s = %d %q, want 200 %q", url, resp.StatusCode, got, want)
	}
	return nil
}

// narrate prints deploy events worth a line.
func narrate(out io.Writer, e convox.Event) {
	switch e.Type {
	case convox.EventWaiting:
		fmt.Fprintf(out, "  %s %s: %s (%s)\n", e.Release, e.Step, e.Message, e.Progress)
	case convox.EventDeployStarted, convox.EventDeploySucceeded, convox.EventDeployFailed,
		convox.EventCompensating, convox.EventRolledBack, convox.EventRollback, convox.EventRetry:
		line := fmt.Sprintf("  %s %s: %s", e.Release, e.Type, e.Message)
		if e.Reason != "" {
			line += ": " + e.Reason
		}
		fmt.Fprintln(out, line)
	}
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
