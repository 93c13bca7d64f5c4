// Command testing shows how a caller tests its own deploy logic with the
// fake rack: deploybot_test.go injects a crash loop and checks that the
// bot reports the rollback. Run it with `go test ./examples/testing`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/fake"
)

// ShipIt is the caller's deploy logic: deploy the image and turn the
// outcome into a chat message.
func ShipIt(ctx context.Context, c *convox.Client, app, image string) string {
	rel, err := c.App(app).Deploy(ctx, convox.ReleaseSpec{Image: image}, nil)
	var de *convox.DeployError
	switch {
	case errors.As(err, &de) && de.RolledBack:
		return fmt.Sprintf("%s failed (%s); %s is serving again", de.Release, de.Reason, de.Previous)
	case err != nil:
		return "deploy failed: " + err.Error()
	}
	return rel.ID + " is live"
}

func main() {
	r := fake.New(nil)
	c, err := convox.New(convox.Rack{Registry: r.Registry(), Scheduler: r.Scheduler(), Balancer: r.Balancer(), Logs: r.Logs(), Store: r.Store()},
		&convox.Options{PollInterval: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/server"}})
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, err = c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: []convox.Process{{Name: "web", Count: 1, Port: 80}}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ShipIt(ctx, c, "web", "web:v1"))
}
