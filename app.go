package convox

import (
	"context"
	"encoding"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/convox-go/convox/providers"
)

// AppSpec selects the rack's named providers an app uses; an empty name
// selects the rack's default of that kind.
type AppSpec struct {
	Registry  string `json:"registry,omitempty"`
	Scheduler string `json:"scheduler,omitempty"`
	Balancer  string `json:"balancer,omitempty"`
	Logs      string `json:"logs,omitempty"`
}

// App is an app as recorded in the store.
type App struct {
	Name string
	// Providers are the resolved provider names the app uses.
	Providers AppSpec
	Created   time.Time
	// Active is the release serving now ("" before the first successful deploy).
	Active string
	// LastHealthy is the newest release that served healthily, the active
	// one included; the LastHealthy rollback target restores it.
	LastHealthy string
	// Latest is the newest release created.
	Latest string
	// Deploying is the release being promoted, if a deploy is in flight.
	Deploying string
	// Endpoints maps each routed process to where clients reach it.
	Endpoints map[string]string
	// MigratingTo names the balancer of a balancer migration in progress,
	// and NextEndpoints are the app's routes there.
	MigratingTo   string
	NextEndpoints map[string]string
}

// RouteConfig is the balancer configuration of a process with a port.
// Zero fields take defaults (providers.HTTP, the app's default host and path).
type RouteConfig struct {
	Protocol            providers.Protocol `json:"protocol,omitempty"`
	Host                string             `json:"host,omitempty"`
	Path                string             `json:"path,omitempty"`
	Certificate         string             `json:"certificate,omitempty"`
	DeregistrationDelay time.Duration      `json:"deregistrationDelay,omitempty"`
}

// Process is one process type of a release.
type Process struct {
	// Name is the process type ("web", "worker").
	Name string `json:"name"`
	// Command overrides the image's entrypoint and command when not empty.
	Command []string `json:"command,omitempty"`
	// Count is the number of instances; zero stops the process type.
	Count int `json:"count"`
	// CPU in CPU units (1024 = one vCPU); zero means 256.
	CPU int `json:"cpu,omitempty"`
	// Memory in MiB; zero means 512.
	Memory int `json:"memory,omitempty"`
	// Port the process listens on (given as $PORT); a process with a port
	// is routed by the app's balancer. Zero means no traffic.
	Port int `json:"port,omitempty"`
	// Health checks the process's targets (path "/" and provider defaults when zero).
	Health providers.HealthCheck `json:"health"`
	// Route configures the balancer for a process with a port.
	Route RouteConfig `json:"route"`
}

// Secret is a secret environment value. Every encoding of it — fmt verbs,
// JSON, text (encoding.TextMarshaler), gob and log/slog — produces
// "<redacted>"; convert it with string(s) to use the value.
//
// Decoding (JSON, text, gob) accepts a real value, so a program can read
// secrets from its own configuration, but refuses "<redacted>" with an
// error matching providers.ErrInvalid: a redacted encoding never turns back into a
// secret that would then be deployed.
//
// Where secret values rest: the store holds them in clear in each release
// document (apps/<app>/releases/<seq>, an internal form that does not use
// these methods), so whoever can read the store can read them; the
// scheduler passes them to the processes' environment (see each
// provider's documentation for where it keeps them).
type Secret string

const redacted = providers.Redacted

var (
	_ slog.LogValuer           = Secret("")
	_ json.Marshaler           = Secret("")
	_ json.Unmarshaler         = (*Secret)(nil)
	_ encoding.TextMarshaler   = Secret("")
	_ encoding.TextUnmarshaler = (*Secret)(nil)
	_ gob.GobEncoder           = Secret("")
	_ gob.GobDecoder           = (*Secret)(nil)
	_ fmt.Formatter            = Secret("")
)

// String returns "<redacted>".
func (Secret) String() string { return redacted }

// GoString returns "<redacted>".
func (Secret) GoString() string { return redacted }

// Format prints "<redacted>" for every verb.
func (Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// MarshalJSON encodes "<redacted>".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText encodes "<redacted>".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// GobEncode encodes "<redacted>".
func (Secret) GobEncode() ([]byte, error) { return []byte(redacted), nil }

// LogValue redacts the secret in log/slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// UnmarshalJSON decodes a JSON string, refusing "<redacted>".
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return s.UnmarshalText([]byte(v))
}

// UnmarshalText sets the secret to text, refusing "<redacted>".
func (s *Secret) UnmarshalText(text []byte) error {
	if string(text) == redacted {
		return providers.Invalidf("decode secret: the value was redacted when it was encoded")
	}
	*s = Secret(text)
	return nil
}

// GobDecode sets the secret to data, refusing "<redacted>".
func (s *Secret) GobDecode(data []byte) error { return s.UnmarshalText(data) }

// AppClient addresses one app of a Client. It is cheap to create and safe
// for concurrent use.
type AppClient struct {
	c    *Client
	name string
}

// App returns a handle to the named app. No call is made until a method is used.
func (c *Client) App(name string) *AppClient { return &AppClient{c: c, name: name} }

// Name returns the app's name.
func (a *AppClient) Name() string { return a.name }

// CreateApp records a new app using the providers selected by spec (nil:
// the rack's defaults). The name is checked against what every backend
// accepts (see providers.ValidateName) before anything is created; an
// existing app returns an error matching providers.ErrAlreadyExists.
func (c *Client) CreateApp(ctx context.Context, name string, spec *AppSpec) (*App, error) {
	const op = "CreateApp"
	if err := providers.ValidateName("app", name, providers.MaxAppName); err != nil {
		return nil, wrapErr(op, name, "", err)
	}
	var s AppSpec
	if spec != nil {
		s = *spec
	}
	sel, err := c.rack.selectFor(s)
	if err != nil {
		return nil, wrapErr(op, name, "", err)
	}
	doc := appDoc{Name: name, Spec: sel.spec, Created: time.Now().UTC()}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, wrapErr(op, name, "", err)
	}
	v, err := c.rack.store.Put(ctx, appKey(name), b, 0)
	if errors.Is(err, providers.ErrConflict) {
		return nil, &Error{Op: op, App: name, Err: fmt.Errorf("app %q: %w", name, providers.ErrAlreadyExists)}
	}
	if err != nil {
		return nil, wrapErr(op, name, "", err)
	}
	doc.version = v
	c.emit(Event{Type: EventAppCreated, App: name, Message: "app created"})
	return doc.app(), nil
}

// Apps yields every app in name order.
func (c *Client) Apps(ctx context.Context) iter.Seq2[*App, error] {
	return func(yield func(*App, error) bool) {
		for d, err := range c.list(ctx, appPrefix, false) {
			if err != nil {
				yield(nil, wrapErr("Apps", "", "", err))
				return
			}
			var doc appDoc
			if err := json.Unmarshal(d.Value, &doc); err != nil {
				yield(nil, wrapErr("Apps", "", "", fmt.Errorf("decode %s: %w", d.Key, err)))
				return
			}
			doc.version = d.Version
			app, err := c.appOf(ctx, &doc)
			if err != nil {
				yield(nil, wrapErr("Apps", doc.Name, "", err))
				return
			}
			if !yield(app, nil) {
				return
			}
		}
	}
}

// DeleteApp tears down the app's scheduler, balancer and logs resources
// and its release history. Every step is idempotent, so a delete that
// failed midway can be run again. An app with a deploy in flight returns
// an error matching providers.ErrConflict; a missing app matches providers.ErrNotFound.
func (c *Client) DeleteApp(ctx context.Context, name string) error {
	const op = "DeleteApp"
	doc, err := c.loadApp(ctx, name)
	if err != nil {
		return wrapErr(op, name, "", err)
	}
	if doc.Lease != nil && !doc.Lease.expired(time.Now()) {
		return &Error{Op: op, App: name, Err: fmt.Errorf("%w: a deploy of %s is in progress; cancel it first", providers.ErrConflict, doc.Lease.Release)}
	}
	sel, err := c.rack.selectFor(doc.Spec)
	if err != nil {
		return wrapErr(op, name, "", err)
	}
	// Block new deploys while tearing down.
	if !doc.Deleting {
		doc.Deleting = true
		if err := c.saveApp(ctx, doc); err != nil {
			return wrapErr(op, name, "", err)
		}
	}
	if err := sel.sched.Delete(ctx, name); err != nil {
		return wrapErr(op, name, "", fmt.Errorf("delete scheduler resources: %w", err))
	}
	routes := slices.Clone(doc.Retired)
	for _, proc := range slices.Sorted(maps.Keys(doc.Routes)) {
		routes = append(routes, doc.routesOf(proc)...)
	}
	for _, r := range routes {
		b := sel.balancers[r.Balancer]
		if b == nil {
			return wrapErr(op, name, "", providers.Invalidf("route %s is on balancer %q, which the rack no longer has", r.ID, r.Balancer))
		}
		if err := b.DeleteRoute(ctx, r.ID); err != nil {
			return wrapErr(op, name, "", fmt.Errorf("delete route %s: %w", r.ID, err))
		}
	}
	if err := sel.logs.Delete(ctx, name); err != nil {
		return wrapErr(op, name, "", fmt.Errorf("delete logs: %w", err))
	}
	for d, err := range c.list(ctx, releasePrefix(name), false) {
		if err != nil {
			return wrapErr(op, name, "", err)
		}
		if err := c.rack.store.Delete(ctx, d.Key, providers.AnyVersion); err != nil {
			return wrapErr(op, name, "", err)
		}
	}
	if err := c.rack.store.Delete(ctx, appKey(name), doc.version); err != nil {
		return wrapErr(op, name, "", err)
	}
	c.emit(Event{Type: EventAppDeleted, App: name, Message: "app deleted"})
	return nil
}

// load reads the app's document and selects its providers.
func (a *AppClient) load(ctx context.Context) (*appDoc, selection, error) {
	app, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, selection{}, err
	}
	sel, err := a.c.rack.selectFor(app.Spec)
	return app, sel, err
}

// Get returns the app; a missing app matches providers.ErrNotFound.
func (a *AppClient) Get(ctx context.Context) (*App, error) {
	doc, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, wrapErr("Get", a.name, "", err)
	}
	app, err := a.c.appOf(ctx, doc)
	if err != nil {
		return nil, wrapErr("Get", a.name, "", err)
	}
	// The app document's latest sequence can lag behind a release whose
	// creation failed midway; the listing is the truth.
	latest, err := a.latestDoc(ctx)
	if err != nil {
		return nil, wrapErr("Get", a.name, "", err)
	}
	if latest != nil {
		app.Latest = releaseID(latest.Seq)
	}
	return app, nil
}

// appOf returns the App a document describes. Its endpoints are those of
// the active release's processes that run with a port: an app that serves
// nothing lists none.
func (c *Client) appOf(ctx context.Context, doc *appDoc) (*App, error) {
	app := doc.app()
	if doc.Active == "" {
		app.Endpoints, app.NextEndpoints = nil, nil
		return app, nil
	}
	rel, err := c.loadRelease(ctx, doc.Name, doc.Active)
	if err != nil {
		return nil, err
	}
	serving := map[string]bool{}
	for _, p := range rel.Processes {
		serving[p.Name] = p.Port > 0 && p.Count > 0
	}
	keep := func(m map[string]string) map[string]string {
		for p := range m {
			if !serving[p] {
				delete(m, p)
			}
		}
		if len(m) == 0 {
			return nil
		}
		return m
	}
	app.Endpoints, app.NextEndpoints = keep(app.Endpoints), keep(app.NextEndpoints)
	return app, nil
}

// Check reports, before any side effect, whether the app's providers offer
// every capability (see Rack.Check).
func (a *AppClient) Check(ctx context.Context, caps ...Capability) error {
	_, sel, err := a.load(ctx)
	if err != nil {
		return wrapErr("Check", a.name, "", err)
	}
	return wrapErr("Check", a.name, "", sel.check(caps...))
}

// Scale deploys a new release, copied from the latest, in which process
// runs count instances. A rollback therefore restores the formation too.
func (a *AppClient) Scale(ctx context.Context, process string, count int, opts *DeployOptions) (*Release, error) {
	if count < 0 {
		return nil, deployErr(a.name, "", StepPrepare, providers.Invalidf("count %d for %s is negative", count, process))
	}
	latest, err := a.latestRelease(ctx)
	if err != nil {
		return nil, deployErr(a.name, "", StepPrepare, err)
	}
	if latest == nil {
		return nil, deployErr(a.name, "", StepPrepare, fmt.Errorf("%w: the app has no release to scale; deploy one first", providers.ErrNotFound))
	}
	procs := slices.Clone(latest.Processes)
	i := slices.IndexFunc(procs, func(p Process) bool { return p.Name == process })
	if i < 0 {
		return nil, deployErr(a.name, "", StepPrepare, fmt.Errorf("%w: release %s has no process %q", providers.ErrNotFound, latest.ID, process))
	}
	procs[i].Count = count
	return a.Deploy(ctx, ReleaseSpec{Processes: procs, Description: fmt.Sprintf("scale %s=%d", process, count)}, opts)
}

// SetEnv deploys a new release, copied from the latest, with the given
// variables set (plain values in env, secret ones in secrets).
func (a *AppClient) SetEnv(ctx context.Context, env map[string]string, secrets map[string]Secret, opts *DeployOptions) (*Release, error) {
	plain, secret, _, err := a.baseEnv(ctx)
	if err != nil {
		return nil, deployErr(a.name, "", StepPrepare, err)
	}
	var keys []string
	for k, v := range env {
		plain[k] = v
		delete(secret, k)
		keys = append(keys, k)
	}
	for k, v := range secrets {
		secret[k] = v
		delete(plain, k)
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return a.Deploy(ctx, ReleaseSpec{Env: plain, Secrets: secret, Description: describeKeys("env set", keys)}, opts)
}

// UnsetEnv deploys a new release, copied from the latest, without the named variables.
func (a *AppClient) UnsetEnv(ctx context.Context, keys []string, opts *DeployOptions) (*Release, error) {
	plain, secret, base, err := a.baseEnv(ctx)
	if err != nil {
		return nil, deployErr(a.name, "", StepPrepare, err)
	}
	for _, k := range keys {
		_, inPlain := plain[k]
		_, inSecret := secret[k]
		if !inPlain && !inSecret {
			return nil, deployErr(a.name, "", StepPrepare, fmt.Errorf("%w: release %s has no variable %q", providers.ErrNotFound, base, k))
		}
		delete(plain, k)
		delete(secret, k)
	}
	return a.Deploy(ctx, ReleaseSpec{Env: plain, Secrets: secret, Description: describeKeys("env unset", keys)}, opts)
}

// baseEnv returns copies of the plain and secret variables of the release
// new ones are based on, and its ID.
func (a *AppClient) baseEnv(ctx context.Context) (map[string]string, map[string]Secret, string, error) {
	base, err := a.latestRelease(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	if base == nil {
		return nil, nil, "", fmt.Errorf("%w: the app has no release; deploy one first", providers.ErrNotFound)
	}
	plain, secret := maps.Clone(base.Env), maps.Clone(base.Secrets)
	if plain == nil {
		plain = map[string]string{}
	}
	if secret == nil {
		secret = map[string]Secret{}
	}
	return plain, secret, base.ID, nil
}

// Tasks yields the app's running and recently stopped tasks as its
// scheduler reports them in one observation, running first, each group
// ordered by process then ID. An app never deployed (or deleted) has none.
// An error is yielded once, last.
func (a *AppClient) Tasks(ctx context.Context) iter.Seq2[providers.Task, error] {
	return func(yield func(providers.Task, error) bool) {
		ts, err := a.tasks(ctx)
		if err != nil {
			yield(providers.Task{}, wrapErr("Tasks", a.name, "", err))
			return
		}
		for _, t := range ts {
			if !yield(t, nil) {
				return
			}
		}
	}
}

func (a *AppClient) tasks(ctx context.Context) ([]providers.Task, error) {
	_, sel, err := a.load(ctx)
	if err != nil {
		return nil, err
	}
	st, err := sel.sched.Status(ctx, a.name)
	if errors.Is(err, providers.ErrNotFound) {
		return nil, nil // never deployed, or deleted: no tasks
	}
	if err != nil {
		return nil, err
	}
	ts := slices.Clone(st.Tasks)
	rank := func(t providers.Task) int {
		if t.State == providers.TaskStopped {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(ts, func(x, y providers.Task) int {
		if r := rank(x) - rank(y); r != 0 {
			return r
		}
		if c := strings.Compare(x.Process, y.Process); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return ts, nil
}
