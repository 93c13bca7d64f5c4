package convox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers/fake"
)

// benchClient returns a client over a fake rack polling without pauses.
func benchClient(b *testing.B) (*convox.Client, *fake.Rack) {
	r := fake.New(nil)
	c, err := convox.New(r.ConvoxRack(), &convox.Options{PollInterval: 1, MaxPollInterval: 1, RateLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	r.Push("web", "v1", &fake.ImageConfig{Entrypoint: []string{"/a"}})
	r.Push("web", "v2", &fake.ImageConfig{Entrypoint: []string{"/b"}})
	if _, err := c.CreateApp(context.Background(), "web", nil); err != nil {
		b.Fatal(err)
	}
	return c, r
}

// BenchmarkDeploy measures one full deploy (create, promote, wait,
// activate) on the fake rack.
func BenchmarkDeploy(b *testing.B) {
	c, _ := benchClient(b)
	ctx := context.Background()
	if _, err := c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err != nil {
		b.Fatal(err)
	}
	tags := []string{"web:v1", "web:v2"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: tags[i%2]}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRollback measures a rollback to the previous release with 10 and
// with 10,000 releases of history: the cost must not grow with history.
func BenchmarkRollback(b *testing.B) {
	for _, history := range []int{10, 10000} {
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			c, _ := benchClient(b)
			ctx := context.Background()
			if _, err := c.App("web").Deploy(ctx, webSpec("web:v1"), nil); err != nil {
				b.Fatal(err)
			}
			if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v2"}, nil); err != nil {
				b.Fatal(err)
			}
			// Pad the history with releases that were never promoted.
			for len := 2; len < history; len++ {
				if _, err := c.App("web").CreateRelease(ctx, convox.ReleaseSpec{Image: "web:v2"}); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{Image: "web:v1"}, nil); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.App("web").Rollback(ctx, convox.Previous(), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
