package convoxtest_test

import (
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/convoxtest"
	"github.com/convox-go/convox/providers/fake"
)

func TestNewClientDeploys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // the client's polls run on the bubble's fake time
		r := fake.New(nil)
		c := convoxtest.NewClient(t, r, nil)
		ctx := t.Context()
		if _, err := c.CreateApp(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/app/server"}})
		rel, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1", Processes: []convox.Process{{Name: "worker", Count: 1}}}, nil)
		if err != nil {
			t.Fatalf("Deploy: %v", err)
		}
		app, err := c.App("web").Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rel.ID, app.Active); diff != "" {
			t.Errorf("active release (-want +got):\n%s", diff)
		}
	})
}
