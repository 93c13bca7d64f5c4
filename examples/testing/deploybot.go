// Command testing shows how a caller tests its own deploy logic with the
// fake rack. ShipIt below is the logic under test: it deploys an image and
// turns the outcome into a chat message. deploybot_test.go runs it against
// providers/fake with the three faults people ask for — a release that
// crash-loops, a scheduler that throttles and then recovers, and a
// rollback that fails — and checks what the bot says each time.
//
// Run the tests with:
//
//	go test ./examples/testing
//
// and the program itself (one successful deploy on a fake rack) with:
//
//	go run ./examples/testing
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/fake"
)

// ShipIt is the caller's deploy logic: deploy the image and turn the
// outcome into a chat message.
func ShipIt(ctx context.Context, c *convox.Client, app, image string) string {
	rel, err := c.App(app).Deploy(ctx, convox.ReleaseSpec{Image: image}, nil)
	if err == nil {
		return rel.ID + " is live"
	}
	// Every failure of Deploy is a *convox.DeployError.
	var de *convox.DeployError
	switch {
	case !errors.As(err, &de):
		return "deploy failed: " + err.Error()
	case !de.Changed:
		return fmt.Sprintf("deploy of %s refused at %s (%s); nothing changed", image, de.Step, de.Reason)
	case de.RolledBack:
		return fmt.Sprintf("%s failed (%s); %s is serving again", de.Release, de.Reason, de.Previous)
	default:
		// The deploy failed and the previous release could not be put
		// back: a person has to look.
		return fmt.Sprintf("%s failed (%s) and restoring %s failed too: check the app now", de.Release, de.Reason, orNone(de.Previous))
	}
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// newFakeClient returns a client on the fake rack r with options opts
// (nil for the defaults).
func newFakeClient(r *fake.Rack, opts *convox.Options) (*convox.Client, error) {
	return convox.New(r.ConvoxRack(), opts)
}

// setUp creates the app on r's client and deploys its first release, v1.
func setUp(ctx context.Context, r *fake.Rack, c *convox.Client) error {
	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/server"}})
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		return err
	}
	_, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{
		Image:     "web:v1",
		Processes: []convox.Process{{Name: "web", Count: 1, Port: 80}},
	}, nil)
	return err
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "testing:", err)
		os.Exit(1)
	}
}

// run deploys web:v1 and then web:v2 on a fake rack and writes what the
// bot says to out.
func run(ctx context.Context, out io.Writer) error {
	r := fake.New(nil)
	// The fake's rollouts advance one step per observation (see the
	// providers/fake package documentation), never with the clock: the
	// client's poll interval is only how long it sleeps between
	// observations. Here, on the real clock, 1ms (0 would mean the
	// default, 1s) makes this deploy take milliseconds. The tests keep the
	// defaults instead and run inside a testing/synctest bubble, where
	// sleeping costs no real time; a tiny interval there would make a
	// long wait (a failing rollback retries for minutes) take millions of
	// steps.
	c, err := newFakeClient(r, &convox.Options{PollInterval: time.Millisecond, MaxPollInterval: time.Millisecond})
	if err != nil {
		return err
	}
	if err := setUp(ctx, r, c); err != nil {
		return err
	}
	r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/server"}})
	fmt.Fprintln(out, ShipIt(ctx, c, "web", "web:v2"))
	return nil
}
