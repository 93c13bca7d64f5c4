package convox_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// exampleClient returns a client over a fake rack with image web:v1 and app "web".
func exampleClient() (*convox.Client, *fake.Rack) {
	r := fake.New(nil)
	c, err := convox.New(convox.Rack{
		Registry: r.Registry(), Scheduler: r.Scheduler(), Balancer: r.Balancer(), Logs: r.Logs(), Store: r.Store(),
	}, &convox.Options{PollInterval: time.Millisecond})
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
	rack := convox.Rack{Registry: r.Registry(), Scheduler: r.Scheduler(), Logs: r.Logs(), Store: r.Store()}
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
