package convox_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/goimage"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/local"
)

// The first program of the package doc: build a Go program into images,
// deploy two releases on a local rack and roll back to the first. It is
// compiled, not run, by the tests (it needs ./cmd/web).
func Example_localRack() {
	ctx := context.Background()
	rack, err := local.Open("rack", nil) // state lives in ./rack
	if err != nil {
		log.Fatal(err)
	}
	defer rack.Close()
	c, err := convox.New(rack.ConvoxRack(), nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		img, err := goimage.Build(ctx, "./cmd/web", &goimage.Config{Env: []string{"VERSION=" + v}})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := rack.Registry().PushImage(ctx, "web", v, img); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		log.Fatal(err)
	}
	web := []convox.Process{{Name: "web", Count: 2, Port: 8080}}
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: web}, nil); err != nil {
		log.Fatal(err)
	}
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
		log.Fatal(err) // a *convox.DeployError; v1 serves again if v2 failed
	}
	rel, err := c.App("web").Rollback(ctx, convox.Previous(), nil)
	if err != nil {
		log.Fatal(err)
	}
	app, err := c.App("web").Get(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rel.ID, "copies", rel.Parent, "and serves at", app.Endpoints["web"])
}

// The second program of the package doc: the same deploys on the fake
// rack.
func Example_fakeRack() {
	r := fake.New(nil)
	c, err := convox.New(r.ConvoxRack(), &convox.Options{PollInterval: time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
	r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/app/server", "--v2"}})
	ctx := context.Background()
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		log.Fatal(err)
	}
	web := []convox.Process{{Name: "web", Count: 2, Port: 8080}}
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: web}, nil); err != nil {
		log.Fatal(err)
	}
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
		log.Fatal(err)
	}
	rel, err := c.App("web").Rollback(ctx, convox.Previous(), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rel.ID, "copies", rel.Parent)
	// Output:
	// R3 copies R1
}

// A deploy refused before it changed anything says so, and which step
// refused it.
func ExampleDeployError_nothingChanged() {
	c, _ := exampleClient()
	_, err := c.App("web").Deploy(context.Background(), convox.ReleaseSpec{
		Image: "web:v9", Processes: []convox.Process{{Name: "web", Count: 1}},
	}, nil)
	var de *convox.DeployError
	if errors.As(err, &de) {
		fmt.Println(de.Step, de.Changed, errors.Is(err, providers.ErrNotFound))
	}
	// Output:
	// resolve false true
}

// Promote starts a deploy and returns at once; Wait reports how it ended.
func ExampleAppClient_Promote() {
	c, _ := exampleClient()
	ctx := context.Background()
	rel, err := c.App("web").CreateRelease(ctx, convox.ReleaseSpec{
		Image: "web:v1", Processes: []convox.Process{{Name: "web", Count: 1, Port: 8080}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	dep, err := c.App("web").Promote(ctx, rel.ID, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("promoting", dep.Release)
	if err := dep.Wait(ctx); err != nil {
		fmt.Println(err)
		return
	}
	app, _ := c.App("web").Get(ctx)
	fmt.Println("active:", app.Active)
	// Output:
	// promoting R1
	// active: R1
}

// Tasks lists what runs, running tasks first.
func ExampleAppClient_Tasks() {
	c, _ := exampleClient()
	ctx := context.Background()
	procs := []convox.Process{{Name: "web", Count: 2, Port: 8080}, {Name: "worker", Count: 1}}
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: procs}, nil); err != nil {
		fmt.Println(err)
		return
	}
	for t, err := range c.App("web").Tasks(ctx) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(t.Process, t.Release, t.State)
	}
	// Output:
	// web R1 running
	// web R1 running
	// worker R1 running
}

// Logs yields an app's log lines; the platform's own events are in the
// stream "convox".
func ExampleAppClient_Logs() {
	c, _ := exampleClient()
	ctx := context.Background()
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: []convox.Process{{Name: "web", Count: 1}}}, nil); err != nil {
		fmt.Println(err)
		return
	}
	for e, err := range c.App("web").Logs(ctx, convox.LogQuery{Stream: "convox"}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(e.Message)
	}
	// Output:
	// promoting R1
	// R1 is active and healthy
}

// LastHealthy repairs an app whose failed deploy could not be rolled back
// automatically: it restores the last release known to serve.
func ExampleLastHealthy() {
	c, _ := exampleClient()
	ctx := context.Background()
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: []convox.Process{{Name: "web", Count: 1}}}, nil); err != nil {
		fmt.Println(err)
		return
	}
	rel, err := c.App("web").Rollback(ctx, convox.LastHealthy(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rel.ID, "copies", rel.Parent)
	// Output:
	// R2 copies R1
}

// exampleClient returns a client over a fake rack with image web:v1 and app "web".
func exampleClient() (*convox.Client, *fake.Rack) {
	r := fake.New(nil)
	c, err := convox.New(r.ConvoxRack(), &convox.Options{PollInterval: time.Millisecond})
	if err != nil {
		panic(err)
	}
	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
	if _, err := c.CreateApp(context.Background(), "web", nil); err != nil {
		panic(err)
	}
	return c, r
}

func ExampleAppClient_Deploy() {
	c, _ := exampleClient()
	ctx := context.Background()
	rel, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{
		Image:     "web:v1",
		Env:       map[string]string{"MODE": "production"},
		Secrets:   map[string]convox.Secret{"DB_PASSWORD": "s3cret"},
		Processes: []convox.Process{{Name: "web", Count: 2, Port: 8080}},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rel.ID, rel.Status, rel.Healthy)
	fmt.Println(rel.Secrets)
	// Output:
	// R1 active true
	// map[DB_PASSWORD:<redacted>]
}

func ExampleDeployError() {
	c, r := exampleClient()
	ctx := context.Background()
	web := []convox.Process{{Name: "web", Count: 1, Port: 8080}}
	if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: web}, nil); err != nil {
		fmt.Println(err)
		return
	}
	broken := r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/app/broken"}})
	r.CrashLoop(broken.Digest)

	_, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)
	var de *convox.DeployError
	if errors.As(err, &de) {
		fmt.Println("step:", de.Step)
		fmt.Println("rolled back to:", de.Previous, de.RolledBack)
		fmt.Println("last line:", de.LastLogLines[len(de.LastLogLines)-1].Message)
	}
	app, _ := c.App("web").Get(ctx)
	fmt.Println("active:", app.Active)
	// Output:
	// step: wait
	// rolled back to: R1 true
	// last line: panic: boom
	// active: R1
}

func ExampleAppClient_Rollback() {
	c, r := exampleClient()
	ctx := context.Background()
	web := []convox.Process{{Name: "web", Count: 1, Port: 8080}}
	c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: web}, nil)
	r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/app/server", "--v2"}})
	c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil)

	rel, err := c.App("web").Rollback(ctx, convox.Previous(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s copies %s and is %s\n", rel.ID, rel.Parent, rel.Status)
	// Output:
	// R3 copies R1 and is active
}

func ExampleClient_Apps() {
	c, _ := exampleClient()
	ctx := context.Background()
	c.CreateApp(ctx, "api", nil)
	for app, err := range c.Apps(ctx) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(app.Name)
	}
	// Output:
	// api
	// web
}

func ExampleRack_Check() {
	r := fake.New(nil)
	rack := r.ConvoxRack()
	rack.Balancer = nil // a rack without a balancer cannot split traffic
	err := rack.Check(convox.CapWeightShifter)
	fmt.Println(errors.Is(err, providers.ErrUnimplemented))
	// Output:
	// true
}

func ExampleSecret() {
	s := convox.Secret("hunter2")
	fmt.Println(s, fmt.Sprintf("%q %#v", s, s))
	// Output:
	// <redacted> <redacted> <redacted>
}

// Calls counts the calls the client made to each operation of each
// provider: here a deploy whose first Apply was throttled and retried.
// (The status and health polls, whose number depends on timing, are left
// out of the output.)
func ExampleClient_Calls() {
	c, r := exampleClient()
	r.Throttle("Scheduler.Apply", 1)
	_, err := c.App("web").Deploy(context.Background(), convox.ReleaseSpec{
		Image: "web:v1", Processes: []convox.Process{{Name: "web", Count: 2, Port: 8080}},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range c.Calls() {
		switch s.Op {
		case "Apply", "EnsureRoute", "Notify", "Resolve":
			fmt.Printf("%s %s %s: %d calls, %d errors, %d retries\n", s.Kind, s.Provider, s.Op, s.Calls, s.Errors, s.Retries)
		}
	}
	// Output:
	// balancer default EnsureRoute: 1 calls, 0 errors, 0 retries
	// notifier 0 Notify: 2 calls, 0 errors, 0 retries
	// registry default Resolve: 1 calls, 0 errors, 0 retries
	// scheduler default Apply: 2 calls, 1 errors, 1 retries
}
