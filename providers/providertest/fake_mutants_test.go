package providertest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/providertest"
)

// The Registry, Balancer and Scheduler mutants wrap the fake rack's
// providers, changing what one method returns.

// registryHarness runs the Registry suite on wrap(a fake registry).
func registryHarness(wrap func(*fake.Registry) providers.Registry) providertest.RegistryHarness {
	var pushes atomic.Int64
	return providertest.RegistryHarness{
		New: func(*testing.T) providers.Registry { return wrap(fake.New(nil).Registry()) },
		Push: func(t *testing.T, reg providers.Registry, repo, tag string) string {
			rack := reg.(interface{ Rack() *fake.Rack }).Rack()
			cfg := &fake.ImageConfig{Cmd: []string{"serve"}, Env: []string{fmt.Sprintf("PUSH=%d", pushes.Add(1))}}
			return rack.Push(repo, tag, cfg).Digest
		},
	}
}

func registryMutants() []mutant {
	rows := []struct{ bug, iface, caughtBy string }{
		{"registry-accepts-uppercase-names", "Registry", "EnsureRepository/invalid names return ErrInvalid"},
		{"resolve-reports-the-repository-name", "Registry", "Resolve/a tag resolves to the pushed image"},
		{"resolve-rejects-uri-references", "Registry", "Resolve/every reference form pins the same image"},
		{"resolve-caches-tags", "Registry", "Resolve/a re-pushed tag resolves to the new image"},
		{"resolve-missing-is-invalid", "Registry", "Resolve/missing repository, tag or digest returns ErrNotFound"},
		{"resolve-malformed-is-not-found", "Registry", "Resolve/malformed references return ErrInvalid"},
		{"credentials-already-expired", "Registry", "Credentials/an ensured repository has credentials that have not expired"},
		{"registry-ignores-canceled-context", "Registry", "Context/canceled context fails every method with context.Canceled"},
		{"list-images-in-reverse", "ImageLister", "ImageLister/ListImages/lists the repository's images ordered by digest"},
		{"list-images-of-missing-repository-empty", "ImageLister", "ImageLister/ListImages/missing repository returns ErrNotFound"},
		{"delete-image-keeps-it", "ImageDeleter", "ImageDeleter/DeleteImage/removes the image and its tags, and only them"},
		{"delete-missing-image-not-found", "ImageDeleter", "ImageDeleter/DeleteImage/deleting a missing image returns nil"},
	}
	var ms []mutant
	for _, r := range rows {
		ms = append(ms, mutant{name: r.bug, iface: r.iface, caughtBy: r.caughtBy, suite: func(t *testing.T) {
			providertest.TestRegistry(t, registryHarness(func(g *fake.Registry) providers.Registry {
				return &registryMutant{Registry: g, bug: r.bug, cache: map[string]providers.Image{}}
			}))
		}})
	}
	return ms
}

type registryMutant struct {
	*fake.Registry
	bug   string
	mu    sync.Mutex
	cache map[string]providers.Image
}

func (g *registryMutant) EnsureRepository(ctx context.Context, name string) (providers.Repository, error) {
	if g.bug == "registry-accepts-uppercase-names" {
		name = strings.ToLower(name)
	}
	return g.Registry.EnsureRepository(ctx, name)
}

func (g *registryMutant) Resolve(ctx context.Context, ref string) (providers.Image, error) {
	switch g.bug {
	case "registry-ignores-canceled-context":
		ctx = context.WithoutCancel(ctx)
	case "resolve-rejects-uri-references":
		if strings.Contains(ref, "/") {
			return providers.Image{}, providers.Invalidf("reference %q has a host", ref)
		}
	case "resolve-caches-tags":
		g.mu.Lock()
		defer g.mu.Unlock()
		if img, ok := g.cache[ref]; ok {
			return img, nil
		}
	}
	img, err := g.Registry.Resolve(ctx, ref)
	switch {
	case g.bug == "resolve-missing-is-invalid" && errors.Is(err, providers.ErrNotFound):
		return img, providers.Invalidf("resolve %q: no such image", ref)
	case g.bug == "resolve-malformed-is-not-found" && errors.Is(err, providers.ErrInvalid):
		return img, fmt.Errorf("resolve %q: %w", ref, providers.ErrNotFound)
	case err != nil:
		return img, err
	case g.bug == "resolve-reports-the-repository-name":
		_, img.Repository, _ = strings.Cut(img.Repository, "/")
	case g.bug == "resolve-caches-tags":
		g.cache[ref] = img
	}
	return img, nil
}

func (g *registryMutant) Credentials(ctx context.Context, repo string) (providers.Credentials, error) {
	c, err := g.Registry.Credentials(ctx, repo)
	if g.bug == "credentials-already-expired" {
		c.Expires = time.Now().Add(-time.Minute)
	}
	return c, err
}

func (g *registryMutant) ListImages(ctx context.Context, repo string) ([]providers.Image, error) {
	imgs, err := g.Registry.ListImages(ctx, repo)
	switch {
	case g.bug == "list-images-of-missing-repository-empty" && errors.Is(err, providers.ErrNotFound):
		return nil, nil
	case g.bug == "list-images-in-reverse":
		slices.Reverse(imgs)
	}
	return imgs, err
}

func (g *registryMutant) DeleteImage(ctx context.Context, repo, digest string) error {
	switch g.bug {
	case "delete-image-keeps-it":
		return ctx.Err()
	case "delete-missing-image-not-found":
		if _, err := g.Registry.Resolve(ctx, repo+"@"+digest); err != nil {
			return err
		}
	}
	return g.Registry.DeleteImage(ctx, repo, digest)
}

func balancerMutants() []mutant {
	rows := []struct{ bug, iface, caughtBy string }{
		{"route-without-endpoint", "Balancer", "EnsureRoute/the route has an ID, an endpoint and a binding to the process port"},
		{"route-binding-on-port-80", "Balancer", "EnsureRoute/the route has an ID, an endpoint and a binding to the process port"},
		{"routes-of-an-app-share-a-binding", "Balancer", "EnsureRoute/distinct processes get distinct routes and bindings"},
		{"balancer-repairs-invalid-specs", "Balancer", "EnsureRoute/invalid specs return ErrInvalid"},
		{"delete-missing-route-not-found", "Balancer", "DeleteRoute/is idempotent and leaves the route unknown"},
		{"balancer-ignores-canceled-context", "Balancer", "Context/canceled context fails every method with context.Canceled"},
		{"weights-normalized", "WeightShifter", "WeightShifter/SetWeights/weights out of 0-100 or not summing to 100 return ErrInvalid and change nothing"},
		{"weights-omit-unweighted-sets", "WeightShifter", "WeightShifter/EnsureTargetSet/is idempotent and binds a set of its own with no weight"},
		{"delete-weighted-target-set", "WeightShifter", "WeightShifter/DeleteTargetSet/a weighted set returns ErrConflict"},
		{"set-weights-drops-unknown-sets", "WeightShifter", "WeightShifter/SetWeights/an unknown set returns ErrNotFound"},
	}
	var ms []mutant
	for _, r := range rows {
		ms = append(ms, mutant{name: r.bug, iface: r.iface, caughtBy: r.caughtBy, suite: func(t *testing.T) {
			providertest.TestBalancer(t, providertest.BalancerHarness{New: func(*testing.T) providers.Balancer {
				return &balancerMutant{Balancer: fake.New(nil).Balancer(), bug: r.bug}
			}})
		}})
	}
	return ms
}

type balancerMutant struct {
	*fake.Balancer
	bug string
}

func (b *balancerMutant) EnsureRoute(ctx context.Context, spec providers.RouteSpec) (providers.Route, error) {
	if b.bug == "balancer-repairs-invalid-specs" {
		if spec.Port <= 0 || spec.Port > 65535 {
			spec.Port = 8080
		}
		if spec.Protocol != providers.HTTP {
			spec.Protocol = providers.HTTP
		}
	}
	rt, err := b.Balancer.EnsureRoute(ctx, spec)
	switch b.bug {
	case "route-without-endpoint":
		rt.Endpoint = ""
	case "route-binding-on-port-80":
		rt.Binding.Port = 80
	case "routes-of-an-app-share-a-binding":
		rt.Binding.Target = spec.App
	}
	return rt, err
}

func (b *balancerMutant) Health(ctx context.Context, routeID string) ([]providers.TargetHealth, error) {
	if b.bug == "balancer-ignores-canceled-context" {
		ctx = context.WithoutCancel(ctx)
	}
	return b.Balancer.Health(ctx, routeID)
}

func (b *balancerMutant) DeleteRoute(ctx context.Context, routeID string) error {
	if b.bug == "delete-missing-route-not-found" {
		if _, err := b.Balancer.Health(ctx, routeID); err != nil {
			return err
		}
	}
	return b.Balancer.DeleteRoute(ctx, routeID)
}

func (b *balancerMutant) SetWeights(ctx context.Context, routeID string, weights map[string]int) error {
	switch b.bug {
	case "weights-normalized":
		sum := 0
		for set, w := range weights {
			weights[set] = min(max(w, 0), 100)
			sum += weights[set]
		}
		if sum != 100 {
			weights = map[string]int{"": 100}
		}
	case "set-weights-drops-unknown-sets":
		current, err := b.Balancer.Weights(ctx, routeID)
		if err != nil {
			return err
		}
		known := map[string]int{}
		for set, w := range weights {
			if _, ok := current[set]; ok {
				known[set] = w
			}
		}
		weights = known
	}
	return b.Balancer.SetWeights(ctx, routeID, weights)
}

func (b *balancerMutant) Weights(ctx context.Context, routeID string) (map[string]int, error) {
	w, err := b.Balancer.Weights(ctx, routeID)
	if b.bug == "weights-omit-unweighted-sets" {
		weighted := map[string]int{}
		for set, n := range w {
			if n > 0 {
				weighted[set] = n
			}
		}
		return weighted, err
	}
	return w, err
}

func (b *balancerMutant) DeleteTargetSet(ctx context.Context, routeID, set string) error {
	if b.bug == "delete-weighted-target-set" {
		if err := b.Balancer.SetWeights(ctx, routeID, map[string]int{"": 100, set: 0}); err != nil {
			return err
		}
	}
	return b.Balancer.DeleteTargetSet(ctx, routeID, set)
}

// schedulerHarness runs the Scheduler suite on wrap(a fake scheduler).
func schedulerHarness(wrap func(*fake.Scheduler) providers.Scheduler) providertest.SchedulerHarness {
	return providertest.SchedulerHarness{New: func(*testing.T) providertest.SchedulerSetup {
		rack := fake.New(nil)
		img := rack.Push("app", "v1", &fake.ImageConfig{Cmd: []string{"serve"}})
		crash := rack.Push("app", "crash", &fake.ImageConfig{Cmd: []string{"crash"}})
		rack.CrashLoop(crash.Digest)
		rack.ExitCode("migrate --all", 3, "migrated 3 tables", "done")
		return providertest.SchedulerSetup{
			Scheduler: wrap(rack.Scheduler()),
			Image:     img,
			Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}, {Name: "worker", Count: 1}},
			Crash:     &crash,
			Balancer:  rack.Balancer(),
			Logs:      rack.Logs(),
			Run:       &providertest.RunCase{Command: []string{"migrate", "--all"}, Output: "done", ExitCode: 3},
		}
	}}
}

func schedulerMutants() []mutant {
	rows := []struct{ bug, iface, caughtBy string }{
		{"status-of-a-missing-app-is-empty", "Scheduler", "Status/an app never applied returns ErrNotFound"},
		{"rollouts-oldest-first", "Scheduler", "Apply/a new release converges and replaces the old release's tasks"},
		{"status-shows-a-secret", "Scheduler", "Apply/secret values never appear in status"},
		{"processes-in-reverse-order", "Scheduler", "Apply/converges and reports the applied release"},
		{"tasks-without-address", "Scheduler", "Apply/converges and reports the applied release"},
		{"new-rollout-per-apply", "Scheduler", "Apply/the same token returns the same rollout"},
		{"apply-token-cache-races", "Scheduler", "Concurrency/concurrent Applies of one token return one rollout"},
		{"second-delete-not-found", "Scheduler", "Delete/stops the app and is idempotent"},
		{"crash-looping-release-becomes-the-release", "Scheduler", "Crash/a crash-looping release never becomes the release and its stopped tasks say why"},
		{"crashed-tasks-without-reason", "Scheduler", "Crash/a crash-looping first release leaves the app without a release"},
		{"scheduler-ignores-canceled-context", "Scheduler", "Context/canceled context fails every method with context.Canceled"},
		{"status-many-reports-missing-apps", "BatchStatus", "BatchStatus/StatusMany/reports existing apps and omits missing ones"},
		{"cancel-unknown-rollout-not-found", "Canceler", "Canceler/CancelRollout/an unknown rollout returns nil"},
		{"promote-with-nothing-staged-succeeds", "Stager", "Stager/PromoteStage/with nothing staged returns ErrNotFound"},
		{"discard-keeps-staged-tasks", "Stager", "Stager/DiscardStage/stops the staged tasks and keeps the serving release"},
		{"get-unknown-task-is-empty", "TaskRunner", "TaskRunner/GetTask/an unknown task returns ErrNotFound; StopTask of it returns nil"},
		{"run-task-not-idempotent", "TaskRunner", "TaskRunner/RunTask/returns a task of the app, process and release; the same token returns it again"},
	}
	var ms []mutant
	for _, r := range rows {
		ms = append(ms, mutant{name: r.bug, iface: r.iface, caughtBy: r.caughtBy, suite: func(t *testing.T) {
			providertest.TestScheduler(t, schedulerHarness(func(s *fake.Scheduler) providers.Scheduler {
				return &schedulerMutant{Scheduler: s, bug: r.bug, secrets: map[string]string{}, tokens: map[string]providers.Rollout{}, deleted: map[string]bool{}}
			}))
		}})
	}
	return ms
}

type schedulerMutant struct {
	*fake.Scheduler
	bug string
	mu  sync.Mutex
	n   int
	// secrets are the secret values of each app's last Apply.
	secrets map[string]string
	// tokens are the rollouts by token of the token cache.
	tokens  map[string]providers.Rollout
	deleted map[string]bool
}

func (s *schedulerMutant) next() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.n
}

func (s *schedulerMutant) Apply(ctx context.Context, d providers.Desired) (providers.Rollout, error) {
	s.mu.Lock()
	delete(s.deleted, d.App)
	if len(d.Secret) > 0 {
		s.secrets[d.App] = d.Env[d.Secret[0]]
	}
	s.mu.Unlock()
	token := d.Token
	switch s.bug {
	case "new-rollout-per-apply":
		d.Token = fmt.Sprintf("%s-%d", token, s.next())
	case "apply-token-cache-races":
		// The cache is checked, then filled after the Apply, under
		// separate locks: concurrent Applies of one token each apply.
		s.mu.Lock()
		ro, ok := s.tokens[token]
		s.mu.Unlock()
		if ok {
			return ro, nil
		}
		// A real scheduler's Apply does I/O between the check and the
		// fill; the fake's is quick. Take as long, so that racers meet
		// the window even on a loaded machine.
		time.Sleep(time.Millisecond)
		d.Token = fmt.Sprintf("%s-%d", token, s.next())
		ro, err := s.Scheduler.Apply(ctx, d)
		ro.Token = token
		if err == nil {
			s.mu.Lock()
			s.tokens[token] = ro
			s.mu.Unlock()
		}
		return ro, err
	}
	ro, err := s.Scheduler.Apply(ctx, d)
	ro.Token = token
	return ro, err
}

func (s *schedulerMutant) Status(ctx context.Context, app string) (providers.AppStatus, error) {
	if s.bug == "scheduler-ignores-canceled-context" {
		ctx = context.WithoutCancel(ctx)
	}
	st, err := s.Scheduler.Status(ctx, app)
	if s.bug == "status-of-a-missing-app-is-empty" && errors.Is(err, providers.ErrNotFound) {
		return providers.AppStatus{App: app}, nil
	}
	if err != nil {
		return st, err
	}
	switch s.bug {
	case "rollouts-oldest-first":
		slices.Reverse(st.Rollouts)
	case "status-shows-a-secret":
		s.mu.Lock()
		for i := range st.Rollouts {
			st.Rollouts[i].Reason += " (environment API_KEY=" + s.secrets[app] + ")"
		}
		s.mu.Unlock()
	case "processes-in-reverse-order":
		slices.Reverse(st.Processes)
	case "tasks-without-address":
		for i := range st.Tasks {
			st.Tasks[i].Address = ""
		}
	case "crash-looping-release-becomes-the-release":
		if len(st.Rollouts) > 0 {
			st.Release = st.Rollouts[0].Release
		}
	case "crashed-tasks-without-reason":
		for i := range st.Tasks {
			st.Tasks[i].Reason = ""
		}
	}
	return st, nil
}

func (s *schedulerMutant) Delete(ctx context.Context, app string) error {
	s.mu.Lock()
	gone := s.deleted[app]
	s.deleted[app] = true
	s.mu.Unlock()
	if s.bug == "second-delete-not-found" && gone {
		return fmt.Errorf("delete %q: %w", app, providers.ErrNotFound)
	}
	return s.Scheduler.Delete(ctx, app)
}

func (s *schedulerMutant) StatusMany(ctx context.Context, apps []string) (map[string]providers.AppStatus, error) {
	got, err := s.Scheduler.StatusMany(ctx, apps)
	if s.bug == "status-many-reports-missing-apps" && err == nil {
		for _, app := range apps {
			if _, ok := got[app]; !ok {
				got[app] = providers.AppStatus{App: app}
			}
		}
	}
	return got, err
}

func (s *schedulerMutant) CancelRollout(ctx context.Context, app, id string) error {
	if s.bug == "cancel-unknown-rollout-not-found" {
		st, err := s.Scheduler.Status(ctx, app)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(st.Rollouts, func(r providers.Rollout) bool { return r.ID == id }) {
			return fmt.Errorf("rollout %q: %w", id, providers.ErrNotFound)
		}
	}
	return s.Scheduler.CancelRollout(ctx, app, id)
}

func (s *schedulerMutant) PromoteStage(ctx context.Context, app string) error {
	err := s.Scheduler.PromoteStage(ctx, app)
	if s.bug == "promote-with-nothing-staged-succeeds" && errors.Is(err, providers.ErrNotFound) {
		return nil
	}
	return err
}

func (s *schedulerMutant) DiscardStage(ctx context.Context, app string) error {
	if s.bug == "discard-keeps-staged-tasks" {
		return ctx.Err()
	}
	return s.Scheduler.DiscardStage(ctx, app)
}

func (s *schedulerMutant) GetTask(ctx context.Context, app, id string) (providers.Task, error) {
	tk, err := s.Scheduler.GetTask(ctx, app, id)
	if s.bug == "get-unknown-task-is-empty" && errors.Is(err, providers.ErrNotFound) {
		return providers.Task{ID: id, App: app}, nil
	}
	return tk, err
}

func (s *schedulerMutant) RunTask(ctx context.Context, spec providers.RunSpec) (providers.Task, error) {
	if s.bug == "run-task-not-idempotent" {
		spec.Token = fmt.Sprintf("%s-%d", spec.Token, s.next())
	}
	return s.Scheduler.RunTask(ctx, spec)
}
