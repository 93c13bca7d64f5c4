package dynamostore_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
)

// TestConcurrentPromotesThroughDynamoDB races promoters of one app whose
// state lives in DynamoDB: each round exactly one wins the deploy lease,
// every other gets ErrConflict, and no release is lost from the history.
func TestConcurrentPromotesThroughDynamoDB(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		const rounds, racers = 4, 50
		store := newStore(t, e)
		r := fake.New(nil)
		c, err := convox.New(convox.Rack{
			Registry: r.Registry(), Scheduler: r.Scheduler(), Balancer: r.Balancer(), Logs: r.Logs(), Store: store,
		}, &convox.Options{PollInterval: 10 * time.Millisecond, MaxPollInterval: 50 * time.Millisecond, RateLimit: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		if _, err := c.CreateApp(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		app := c.App("web")
		var created []string
		for round := 1; round <= rounds; round++ {
			tag := fmt.Sprintf("v%d", round)
			r.Push("web", tag, &fake.ImageConfig{Entrypoint: []string{"/x"}})
			spec := convox.ReleaseSpec{Image: "web:" + tag}
			if round == 1 {
				spec.Processes = []convox.Process{{Name: "web", Count: 1, Port: 80}}
			}
			rel, err := app.CreateRelease(ctx, spec)
			if err != nil {
				t.Fatalf("round %d: CreateRelease: %v", round, err)
			}
			created = append(created, rel.ID)

			var wg sync.WaitGroup
			deps := make([]*convox.Deployment, racers)
			errs := make([]error, racers)
			for i := range racers {
				wg.Go(func() { deps[i], errs[i] = app.Promote(ctx, rel.ID, nil) })
			}
			wg.Wait()
			var winners []*convox.Deployment
			for i, err := range errs {
				switch {
				case err == nil:
					winners = append(winners, deps[i])
				case !errors.Is(err, providers.ErrConflict):
					t.Errorf("round %d: racer %d: %v, want success or an error matching ErrConflict", round, i, err)
				}
			}
			if len(winners) != 1 {
				t.Fatalf("round %d: %d racers won, want exactly 1", round, len(winners))
			}
			if err := winners[0].Wait(ctx); err != nil {
				t.Fatalf("round %d: the winner's deploy: %v", round, err)
			}
		}

		type entry struct {
			ID     string
			Status convox.ReleaseStatus
		}
		var got []entry
		for rel, err := range app.Releases(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, entry{rel.ID, rel.Status})
		}
		var want []entry
		for i := len(created) - 1; i >= 0; i-- {
			status := convox.StatusSuperseded
			if i == len(created)-1 {
				status = convox.StatusActive
			}
			want = append(want, entry{created[i], status})
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("release history, newest first (-want +got):\n%s", diff)
		}
	})
}
