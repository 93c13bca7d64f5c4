package local_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/convox-go/convox/goimage"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
)

// Open a rack, push an app's image, route to it, run two instances and
// call it through the balancer.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rack-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	rack, err := local.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer rack.Close() // stops every process gracefully

	// A static Go HTTP server wrapped into an image; crane or any OCI tool
	// could push one to rack.Registry().Host() instead.
	image, err := goimage.Build(ctx, "./testdata/server", nil)
	if err != nil {
		log.Fatal(err)
	}
	img, err := rack.Registry().PushImage(ctx, "web", "v1", image)
	if err != nil {
		log.Fatal(err)
	}
	route, err := rack.Balancer().EnsureRoute(ctx, providers.RouteSpec{App: "web", Process: "web", Port: 8080})
	if err != nil {
		log.Fatal(err)
	}
	rollout, err := rack.Scheduler().Apply(ctx, providers.Desired{
		App: "web", Release: "R1", Token: "deploy-1", Image: img,
		Env:       map[string]string{"MESSAGE": "hello from R1"},
		Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080, Health: providers.HealthCheck{Path: "/health"}}},
		Bindings:  map[string][]providers.Binding{"web": {route.Binding}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for {
		st, err := rack.Scheduler().Status(ctx, "web")
		if err != nil {
			log.Fatal(err)
		}
		if st.Rollouts[0].ID == rollout.ID && st.Rollouts[0].State != providers.RolloutInProgress {
			fmt.Println("rollout", st.Rollouts[0].State)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get(route.Endpoint)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
	// Output:
	// rollout completed
	// hello from R1
}
