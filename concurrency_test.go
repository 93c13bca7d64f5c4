package convox_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/helperproc"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/local"
)

// Environment of the concurrent deploy helper process.
const (
	concurrentDirEnv = "CONVOX_CONCURRENT_DIR" // the local rack directory whose store is shared
	concurrentTagEnv = "CONVOX_CONCURRENT_TAG" // the image tag this process deploys
	concurrentLine   = "concurrent: "
)

// casCounter is a store that counts the writes it lost to a concurrent
// writer (ErrConflict from a conditional Put).
type casCounter struct {
	providers.Store
	conflicts atomic.Int64
}

func (s *casCounter) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	v, err := s.Store.Put(ctx, key, value, ifVersion)
	if errors.Is(err, providers.ErrConflict) {
		s.conflicts.Add(1)
	}
	return v, err
}

// concurrentSpec is the release each deploying process creates: one
// worker process of the image with the tag.
func concurrentSpec(tag string) convox.ReleaseSpec {
	return convox.ReleaseSpec{Image: "web:" + tag, Processes: []convox.Process{{Name: "worker", Count: 1}}}
}

// concurrentClient is a client on a local rack directory's store and
// an in-memory rack for everything else.
func concurrentClient(t *testing.T, store providers.Store, r *fake.Rack, holder string) *convox.Client {
	t.Helper()
	c, err := convox.New(convox.Rack{Registry: r.Registry(), Scheduler: r.Scheduler(), Logs: r.Logs(), Store: store},
		&convox.Options{PollInterval: 5 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond, Holder: holder})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTwoProcessesDeployHelperProcess is one of the two deploying processes
// of TestTwoProcessesDeploy. It opens only the store of the rack directory
// (local.OpenStore, which programs share), runs the rest of its rack in
// memory, and when told "go" on standard input deploys the image tagged
// $CONVOX_CONCURRENT_TAG. Its first scheduler Apply, which only the holder
// of the deploy lease reaches, reports "applying" and waits for "continue",
// so that the lease is held until the other process has tried to take it.
// It reports "won RELEASE", "lost CODE" or "failed MESSAGE", then how many
// store writes it lost to the other process.
func TestTwoProcessesDeployHelperProcess(t *testing.T) {
	dir, tag := os.Getenv(concurrentDirEnv), os.Getenv(concurrentTagEnv)
	if dir == "" {
		t.Skip("helper process of TestTwoProcessesDeploy; runs only when that test starts it")
	}
	in := bufio.NewReader(os.Stdin)
	await := func(want string) error {
		line, _ := in.ReadString('\n')
		if got := strings.TrimSpace(line); got != want {
			return fmt.Errorf("read %q on standard input, want %q", got, want)
		}
		return nil
	}
	st, err := local.OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	store := &casCounter{Store: st}
	var gate sync.Once
	r := fake.New(&fake.Options{Hooks: fake.Hooks{Scheduler: fake.SchedulerHooks{
		Apply: func(ctx context.Context, d providers.Desired, next func(context.Context, providers.Desired) (providers.Rollout, error)) (providers.Rollout, error) {
			var err error
			gate.Do(func() {
				fmt.Printf("%sapplying\n", concurrentLine)
				err = await("continue")
			})
			if err != nil {
				return providers.Rollout{}, err
			}
			return next(ctx, d)
		},
	}}})
	r.Push("web", tag, &fake.ImageConfig{Entrypoint: []string{"/app/server"}, Env: []string{"MESSAGE=" + tag}})
	c := concurrentClient(t, store, r, tag)
	fmt.Printf("%sready\n", concurrentLine)
	if err := await("go"); err != nil {
		t.Fatal(err)
	}
	rel, err := c.App("web").Deploy(context.Background(), concurrentSpec(tag), nil)
	switch {
	case err == nil:
		fmt.Printf("%swon %s\n", concurrentLine, rel.ID)
	case errors.Is(err, providers.ErrConflict):
		fmt.Printf("%slost conflict\n", concurrentLine)
	default:
		fmt.Printf("%sfailed %s\n", concurrentLine, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	fmt.Printf("%sconflicts %d\n", concurrentLine, store.conflicts.Load())
}

// TestTwoProcessesDeploy starts two OS processes at the same instant, each
// deploying a different release of one app through the same local rack
// directory's store, for several rounds. A local rack directory has one
// opener at a time, so each process opens only the store (local.OpenStore,
// safe across programs) and keeps its other providers in memory: what is
// shared is exactly what makes two deployers exclusive, the store's
// compare-and-swap and the deploy lease in it. Each round exactly one
// process wins and the other gets ErrConflict; afterwards no lease is held,
// the winner's release is the one active release, and the history holds
// every release both processes created.
func TestTwoProcessesDeploy(t *testing.T) {
	const rounds = 8
	ctx := t.Context()
	dir := t.TempDir()
	store, err := local.OpenStore(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := concurrentClient(t, store, fake.New(nil), "test")
	if _, err := c.CreateApp(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	web := c.App("web")

	want := map[string]convox.ReleaseStatus{} // by image tag
	wins := map[string]int{}
	conflicts := int64(0)
	lastWinner := ""
	for round := 1; round <= rounds; round++ {
		names := []string{"a", "b"}
		procs := map[string]*helperproc.Process{}
		for _, n := range names {
			procs[n] = helperproc.Start(t, "TestTwoProcessesDeployHelperProcess", concurrentLine,
				concurrentDirEnv+"="+dir, concurrentTagEnv+"="+n+strconv.Itoa(round))
		}
		timeout := time.After(time.Minute)
		for _, n := range names {
			if line, ok, timedOut := procs[n].Next(timeout); timedOut || !ok || line != "ready" {
				procs[n].Fatal(t, "round %d: process %s did not get ready (%q)", round, n, line)
			}
		}
		for _, n := range names {
			procs[n].Send("go")
		}

		// Collect both outcomes; the lease holder continues once the other
		// process has lost.
		type report struct{ name, line string }
		reports := make(chan report, 16)
		for _, n := range names {
			go func() {
				for line := range procs[n].Lines() {
					reports <- report{n, line}
				}
				reports <- report{n, "exited"}
			}()
		}
		holder, winner, loser := "", "", ""
		exited, continued := 0, false
		for exited < len(names) {
			var r report
			select {
			case r = <-reports:
			case <-timeout:
				for _, p := range procs {
					p.Kill()
				}
				t.Fatalf("round %d: no outcome within a minute (holder %q, winner %q, loser %q)", round, holder, winner, loser)
			}
			verb, arg, _ := strings.Cut(r.line, " ")
			switch verb {
			case "applying":
				if holder != "" {
					for _, p := range procs {
						p.Kill()
					}
					t.Fatalf("round %d: processes %s and %s both hold the deploy lease", round, holder, r.name)
				}
				holder = r.name
			case "won":
				if winner != "" {
					t.Errorf("round %d: processes %s and %s both won", round, winner, r.name)
				}
				winner = r.name
			case "lost":
				if arg != "conflict" {
					t.Errorf("round %d: process %s lost with %s, want conflict", round, r.name, arg)
				}
				loser = r.name
			case "conflicts":
				n, _ := strconv.ParseInt(arg, 10, 64)
				conflicts += n
			case "exited":
				exited++
			default:
				t.Errorf("round %d: process %s: %s", round, r.name, r.line)
			}
			if holder != "" && loser != "" && !continued {
				procs[holder].Send("continue")
				continued = true
			}
		}
		for _, n := range names {
			if err := procs[n].Wait(); err != nil {
				t.Errorf("round %d: process %s: %v\n%s", round, n, err, procs[n].Stderr())
			}
		}
		if winner == "" || loser == "" || winner != holder {
			t.Fatalf("round %d: holder %q, winner %q, loser %q; want one winner holding the lease and one loser", round, holder, winner, loser)
		}
		wins[winner]++
		lastWinner = winner + strconv.Itoa(round)
		for tag, st := range want {
			if st == convox.StatusActive {
				want[tag] = convox.StatusSuperseded
			}
		}
		want[winner+strconv.Itoa(round)] = convox.StatusActive
		want[loser+strconv.Itoa(round)] = convox.StatusCreated
		t.Logf("round %d: %s won, %s got ErrConflict", round, winner, loser)

		// Nothing is lost, one release is active and no lease is held.
		got := map[string]convox.ReleaseStatus{}
		ids := map[string]string{}
		for r, err := range web.Releases(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			tag := strings.TrimPrefix(r.ImageRef, "web:")
			if _, dup := got[tag]; dup {
				t.Errorf("round %d: two releases of %s", round, tag)
			}
			got[tag], ids[tag] = r.Status, r.ID
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round %d: release statuses by image tag (-want +got):\n%s", round, diff)
		}
		app, err := web.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if app.Active != ids[lastWinner] || app.Deploying != "" {
			t.Errorf("round %d: active %s, deploying %q; want %s (%s) and nothing in flight", round, app.Active, app.Deploying, ids[lastWinner], lastWinner)
		}
		if err := web.Cancel(ctx); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("round %d: Cancel = %v, want ErrNotFound: a deploy lease is left", round, err)
		}
	}
	t.Logf("%d rounds of two processes deploying at once: one winner each (a won %d, b won %d); %d store writes lost to the other process and retried",
		rounds, wins["a"], wins["b"], conflicts)
}
