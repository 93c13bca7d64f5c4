package convox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/convox-go/convox/providers"
)

// ReleaseStatus is where a release stands.
type ReleaseStatus string

// Release statuses. Exactly one release of an app is StatusActive once the
// app has been deployed successfully.
const (
	StatusCreated    ReleaseStatus = "created"    // never promoted
	StatusDeploying  ReleaseStatus = "deploying"  // being promoted now
	StatusActive     ReleaseStatus = "active"     // serving
	StatusSuperseded ReleaseStatus = "superseded" // served, then replaced
	StatusFailed     ReleaseStatus = "failed"     // its promotion failed and was compensated
	StatusCanceled   ReleaseStatus = "canceled"   // its promotion was canceled
)

// Release is an immutable snapshot of what an app runs.
type Release struct {
	App string
	// ID is "R" followed by the app's release sequence number.
	ID string
	// Parent is the release a rollback copied, if this is a rollback.
	Parent string
	// ImageRef is the reference the release was created from; Image is
	// what it resolved to, pinned by digest.
	ImageRef string
	Image    providers.Image
	// Registry is the name of the registry the image was resolved in.
	Registry string
	// Env holds plain variables; Secrets the secret ones, redacted when
	// printed. When the app's scheduler keeps secrets
	// (providers.SecretKeeper), a secret holds the reference to its value,
	// and passing it back unchanged in a ReleaseSpec keeps that value.
	Env         map[string]string
	Secrets     map[string]Secret
	Processes   []Process
	Description string
	Created     time.Time

	Status ReleaseStatus
	// Healthy is true once the release served healthily.
	Healthy bool
	// RolledBack is true when a rollback replaced the release while it was
	// active; PreviousHealthy skips such releases.
	RolledBack bool
	// Reason explains a failed or canceled promotion.
	Reason string
	// Promoted is when the release last became active.
	Promoted time.Time
}

// ReleaseSpec describes a new release. Nil or empty fields are copied from
// the app's latest release whose promotion did not fail or get canceled
// (Image "", Env nil, Secrets nil, Processes nil).
//
// The release that results, copied fields included, is checked against
// the bounds of the app's scheduler (providers.Limits: instances per
// process and in all, process types, variables and their sizes) and the
// fixed bounds of package providers (ports, health checks, commands,
// description) before anything is written or any provider is called;
// what is out of range is an error matching providers.ErrInvalid.
type ReleaseSpec struct {
	// Image is a reference the app's registry resolves ("web:v2",
	// "web@sha256:..."); the release pins its digest.
	Image string
	// Env replaces the plain variables; Secrets replaces the secret ones.
	// A name may not be in both.
	Env     map[string]string
	Secrets map[string]Secret
	// Processes replaces the formation.
	Processes []Process
	// Description is a free-form note shown in history and notifications.
	// Empty means one saying what made the release: "deploy IMAGE" when
	// Image is set, else "update of R<n>" (the release it copies).
	// Scale, SetEnv, UnsetEnv and Rollback set their own ("scale web=2",
	// "env set GREETING", "env unset MODE", "rollback to R1").
	Description string
}

func (r *releaseDoc) release(app *appDoc) *Release {
	rel := &Release{
		App: r.App, ID: releaseID(r.Seq), Parent: r.Parent, ImageRef: r.ImageRef, Image: r.Image,
		Registry: r.Registry, Processes: slices.Clone(r.Processes), Description: r.Description,
		Created: r.Created, Healthy: r.Healthy, RolledBack: r.RolledBack, Reason: r.Reason, Promoted: r.Promoted,
	}
	for k, v := range r.Env {
		if v.Secret {
			if rel.Secrets == nil {
				rel.Secrets = map[string]Secret{}
			}
			rel.Secrets[k] = Secret(v.Value)
		} else {
			if rel.Env == nil {
				rel.Env = map[string]string{}
			}
			rel.Env[k] = v.Value
		}
	}
	switch {
	case app != nil && app.Active == rel.ID:
		rel.Status = StatusActive
	case app != nil && app.Lease != nil && app.Lease.Release == rel.ID && !app.Lease.expired(time.Now()):
		rel.Status = StatusDeploying
	case r.Canceled:
		rel.Status = StatusCanceled
	case r.Failed:
		rel.Status = StatusFailed
	case !r.Promoted.IsZero():
		rel.Status = StatusSuperseded
	default:
		rel.Status = StatusCreated
	}
	return rel
}

// desired builds the scheduler's view of the release.
func (r *releaseDoc) desired(token string, bindings map[string][]providers.Binding) providers.Desired {
	d := providers.Desired{
		App: r.App, Release: releaseID(r.Seq), Token: token, Image: r.Image,
		Env: map[string]string{}, Bindings: bindings,
	}
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		v := r.Env[k]
		switch {
		case v.Ref:
			if d.SecretRefs == nil {
				d.SecretRefs = map[string]string{}
			}
			d.SecretRefs[k] = v.Value
		default:
			d.Env[k] = v.Value
		}
		if v.Secret {
			d.Secret = append(d.Secret, k)
		}
	}
	for _, p := range r.Processes {
		d.Processes = append(d.Processes, p.provider())
	}
	return d
}

func (p Process) provider() providers.Process {
	return providers.Process{
		Name: p.Name, Command: slices.Clone(p.Command), Count: p.Count, CPU: p.CPU,
		Memory: p.Memory, Port: p.Port, Health: p.Health,
	}
}

// withDefaults fills a process's zero settings.
func (p Process) withDefaults() Process {
	if p.CPU == 0 {
		p.CPU = 256
	}
	if p.Memory == 0 {
		p.Memory = 512
	}
	if p.Port > 0 {
		if p.Health.Path == "" {
			p.Health.Path = "/"
		}
		if p.Route.Protocol == "" {
			p.Route.Protocol = providers.HTTP
		}
	}
	return p
}

// CreateRelease records a new release without promoting it. The spec is
// validated and the image resolved to a digest before anything is written.
func (a *AppClient) CreateRelease(ctx context.Context, spec ReleaseSpec) (*Release, error) {
	const op = "CreateRelease"
	r, err := a.createRelease(ctx, spec, "")
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	return r.release(nil), nil
}

func (a *AppClient) createRelease(ctx context.Context, spec ReleaseSpec, parent string) (*releaseDoc, error) {
	doc, err := a.buildRelease(ctx, spec, parent)
	if err != nil {
		return nil, err
	}
	if err := a.c.saveNewRelease(ctx, doc); err != nil {
		return nil, failStep(StepCreate, err, "record the release: %v", err)
	}
	a.c.emit(Event{Type: EventReleaseCreated, App: a.name, Release: releaseID(doc.Seq), Message: fmt.Sprintf("release %s created from %s (%s)", releaseID(doc.Seq), doc.ImageRef, doc.Image.Digest)})
	return doc, nil
}

// buildRelease validates spec, fills unspecified fields from the latest
// release, validates the result against the bounds of the app's scheduler
// and resolves its image, without writing anything. Bad input is refused
// before the registry is called.
func (a *AppClient) buildRelease(ctx context.Context, spec ReleaseSpec, parent string) (*releaseDoc, error) {
	app, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, err
	}
	sel, err := a.c.rack.selectFor(app.Spec)
	if err != nil {
		return nil, err
	}
	lim := sel.limits()
	if err := validateSpec(a.name, spec, lim); err != nil {
		return nil, err
	}
	if app.Deleting {
		return nil, fmt.Errorf("%w: app %q is being deleted", providers.ErrConflict, a.name)
	}
	latest, err := a.baseDoc(ctx)
	if err != nil {
		return nil, err
	}
	doc := &releaseDoc{App: a.name, Parent: parent, Description: spec.Description, Registry: sel.spec.Registry}
	if spec.Image == "" && latest == nil {
		return nil, providers.Invalidf("the first release of %s needs an image", a.name)
	}
	if err := doc.inherit(spec, latest); err != nil {
		return nil, err
	}
	// What a release copies from the latest one is checked too: bounds may
	// have changed since, and a copied value must not slip through.
	if err := doc.validate(lim); err != nil {
		if latest != nil && (spec.Processes == nil || spec.Env == nil || spec.Secrets == nil) {
			return nil, fmt.Errorf("%w (this release copies the formation or variables it does not set from %s)", err, releaseID(latest.Seq))
		}
		return nil, err
	}
	for _, p := range doc.Processes {
		if p.Port > 0 && sel.balancer == nil {
			return nil, fmt.Errorf("%w: process %s has a port but the rack has no balancer", providers.ErrInvalid, p.Name)
		}
	}
	if spec.Image != "" {
		img, err := sel.registry.Resolve(ctx, spec.Image)
		if err != nil {
			return nil, failStep(StepResolve, err, "resolve image %q: %v", spec.Image, err)
		}
		doc.ImageRef, doc.Image = spec.Image, img
	} else {
		doc.ImageRef, doc.Image, doc.Registry = latest.ImageRef, latest.Image, latest.Registry
	}
	for _, p := range doc.Processes {
		if len(p.Command) == 0 && len(doc.Image.Entrypoint) == 0 && len(doc.Image.Cmd) == 0 {
			return nil, providers.Invalidf("process %s has no command and image %s has no entrypoint or command", p.Name, doc.Image.Ref())
		}
	}
	if err := keepSecrets(ctx, sel.sched, doc, latest); err != nil {
		return nil, err
	}
	return doc, nil
}

// inherit fills r's variables, secrets, processes and description from
// spec, taking what spec leaves unset (nil) from latest, the app's latest
// release (nil for the first one).
func (r *releaseDoc) inherit(spec ReleaseSpec, latest *releaseDoc) error {
	r.Env = map[string]envDoc{}
	if spec.Env == nil && latest != nil {
		for k, v := range latest.Env {
			if !v.Secret {
				r.Env[k] = v
			}
		}
	}
	if spec.Secrets == nil && latest != nil {
		for k, v := range latest.Env {
			if v.Secret {
				r.Env[k] = v
			}
		}
	}
	for k, v := range spec.Env {
		r.Env[k] = envDoc{Value: v}
	}
	for k, v := range spec.Secrets {
		r.Env[k] = envDoc{Value: string(v), Secret: true}
	}
	switch {
	case spec.Processes != nil:
		for _, p := range spec.Processes {
			r.Processes = append(r.Processes, p.withDefaults())
		}
	case latest != nil:
		r.Processes = slices.Clone(latest.Processes)
	default:
		return providers.Invalidf("the first release of %s needs at least one process", r.App)
	}
	if len(r.Processes) == 0 {
		return providers.Invalidf("a release of %s needs at least one process", r.App)
	}
	if r.Description == "" {
		// Every release says what made it.
		switch {
		case spec.Image != "":
			r.Description = "deploy " + spec.Image
		case latest != nil:
			r.Description = "update of " + releaseID(latest.Seq)
		}
	}
	return nil
}

// saveNewRelease allocates the next sequence number and writes the release.
func (c *Client) saveNewRelease(ctx context.Context, doc *releaseDoc) error {
	// Write the release first, at the first free sequence number after the
	// app's latest, then record it as the latest: a failure between the two
	// leaves a listed release the next creation skips, never a gap.
	app, err := c.loadApp(ctx, doc.App)
	if err != nil {
		return err
	}
	doc.Created = time.Now().UTC()
	for doc.Seq = app.Latest + 1; ; doc.Seq++ {
		b, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		v, err := c.rack.store.Put(ctx, releaseKey(doc.App, doc.Seq), b, 0)
		if errors.Is(err, providers.ErrConflict) {
			continue // taken by a concurrent creation
		}
		if err != nil {
			return err
		}
		doc.version = v
		break
	}
	_, err = c.updateApp(ctx, doc.App, func(d *appDoc) error {
		d.Latest = max(d.Latest, doc.Seq)
		return nil
	})
	return err
}

// latestDoc returns the newest release document, or nil when there is none.
func (a *AppClient) latestDoc(ctx context.Context) (*releaseDoc, error) {
	page, err := a.c.rack.store.List(ctx, releasePrefix(a.name), providers.ListOptions{Reverse: true, Limit: 1})
	if err != nil || len(page.Docs) == 0 {
		return nil, err
	}
	return decodeRelease(page.Docs[0])
}

// baseDoc returns the release new releases copy unspecified fields from:
// the newest one whose promotion did not fail and was not canceled (so a
// broken release is never resurrected by a later scale or env change), or
// nil when there is none.
func (a *AppClient) baseDoc(ctx context.Context) (*releaseDoc, error) {
	for d, err := range a.c.list(ctx, releasePrefix(a.name), true) {
		if err != nil {
			return nil, err
		}
		r, err := decodeRelease(d)
		if err != nil {
			return nil, err
		}
		if !r.Failed && !r.Canceled {
			return r, nil
		}
	}
	return nil, nil
}

func (a *AppClient) latestRelease(ctx context.Context) (*Release, error) {
	d, err := a.baseDoc(ctx)
	if err != nil || d == nil {
		return nil, err
	}
	return d.release(nil), nil
}

// Release returns one release; a missing one matches providers.ErrNotFound.
func (a *AppClient) Release(ctx context.Context, id string) (*Release, error) {
	app, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, wrapErr("Release", a.name, id, err)
	}
	r, err := a.c.loadRelease(ctx, a.name, id)
	if err != nil {
		return nil, wrapErr("Release", a.name, id, err)
	}
	return r.release(app), nil
}

// Releases yields the app's releases, newest first.
func (a *AppClient) Releases(ctx context.Context) iter.Seq2[*Release, error] {
	return func(yield func(*Release, error) bool) {
		app, err := a.c.loadApp(ctx, a.name)
		if err != nil {
			yield(nil, wrapErr("Releases", a.name, "", err))
			return
		}
		for d, err := range a.c.list(ctx, releasePrefix(a.name), true) {
			if err != nil {
				yield(nil, wrapErr("Releases", a.name, "", err))
				return
			}
			r, err := decodeRelease(d)
			if err != nil {
				yield(nil, wrapErr("Releases", a.name, "", err))
				return
			}
			if !yield(r.release(app), nil) {
				return
			}
		}
	}
}

// Deploy creates a release from spec, promotes it and waits. It returns
// the release once it is active and healthy. Every failure is a
// *DeployError: one with Changed false stopped before anything changed
// (bad input, an image that does not resolve, a store refusing the
// release, another deploy holding the app); otherwise the previous release
// was restored (RolledBack) or could not be. The deploy itself is detached
// from ctx: if ctx ends while it runs, Deploy returns a *DeployError with
// InProgress set and the deploy goes on to its end, bounded by its
// timeout (see the package doc, # Deploys and contexts).
func (a *AppClient) Deploy(ctx context.Context, spec ReleaseSpec, opts *DeployOptions) (*Release, error) {
	doc, err := a.createRelease(ctx, spec, "")
	if err != nil {
		return nil, deployErr(a.name, "", StepPrepare, err)
	}
	return a.promoteAndWait(ctx, releaseID(doc.Seq), opts)
}

func (a *AppClient) promoteAndWait(ctx context.Context, id string, opts *DeployOptions) (*Release, error) {
	dep, err := a.Promote(ctx, id, opts)
	if err != nil {
		return nil, err
	}
	if err := dep.Wait(ctx); err != nil {
		return nil, err
	}
	rel, err := a.Release(ctx, id)
	if err != nil {
		// The deploy succeeded; only reading the release back failed.
		return nil, &DeployError{App: a.name, Release: id, Previous: dep.Previous, Step: StepActivate, Changed: true,
			Reason: fmt.Sprintf("%s is active, but reading it back failed: %v", id, err), Err: err}
	}
	return rel, nil
}

// DeployError is the error of every failed deploy call: Deploy, Promote,
// Rollback, Scale, SetEnv, UnsetEnv, Deployment.Wait and the results of
// DeployMany. It says where the deploy stopped (Step), why (Reason, Err)
// and whether anything changed (Changed): when Changed is false nothing
// that serves or routes the app was touched, so the same call can be
// repeated as is. Its cause wraps a sentinel of package providers
// (ErrInvalid, ErrNotFound, ErrConflict, ErrUnhealthy, ...) or a context
// error (context.Canceled when the deploy was canceled,
// context.DeadlineExceeded when it timed out), for errors.Is.
type DeployError struct {
	App string
	// Release is the release being deployed ("" when the call failed
	// before it was created).
	Release string
	// Previous is the release that was active before and, if RolledBack, is again.
	Previous string
	// Step is where the deploy stopped.
	Step Step
	// Reason is a one-line explanation.
	Reason string
	// Changed is true once the deploy reached the balancer or the
	// scheduler (from StepRoutes on). False means nothing changed: at
	// most a new, never promoted release was recorded.
	Changed bool
	// RolledBack is true when the previous release was restored after the
	// failure (or, on a first deploy, the failed release's processes were
	// stopped).
	RolledBack bool
	// Canceled is true when the deploy was canceled: by Cancel (then it
	// was compensated), or by its caller's ctx before it was promoted.
	Canceled bool
	// InProgress is true when the caller stopped waiting (its ctx ended)
	// while the deploy goes on in the background, bounded by its timeout;
	// Deployment.Wait, or App.Get's Deploying field, tells how it ends.
	InProgress bool
	// StoppedTasks are the new release's tasks that stopped, most recent first.
	StoppedTasks []providers.Task
	// LastLogLines are the last lines the new release's processes wrote.
	LastLogLines []providers.LogEntry
	// LastStatus is the last observed scheduler status, when any.
	LastStatus *providers.AppStatus
	// Err is the cause.
	Err error
}

// Error describes the failure on one line.
func (e *DeployError) Error() string {
	what := "deploy of " + e.App
	if e.Release != "" {
		what += " " + e.Release
	}
	var s string
	switch {
	case e.InProgress:
		s = fmt.Sprintf("convox: stopped waiting for the %s at %s: %s; the deploy goes on", what, e.Step, e.Reason)
	case e.Canceled:
		s = fmt.Sprintf("convox: %s canceled at %s", what, e.Step)
	default:
		s = fmt.Sprintf("convox: %s failed at %s: %s", what, e.Step, e.Reason)
	}
	switch {
	case e.InProgress:
	case !e.Changed:
		s += "; nothing changed"
	case e.RolledBack && e.Previous != "":
		s += "; rolled back to " + e.Previous
	case e.RolledBack:
		s += "; its processes were stopped"
	default:
		s += "; the previous release could not be restored"
	}
	return s
}

// Unwrap returns the cause.
func (e *DeployError) Unwrap() error { return e.Err }

// deployErr returns err as a *DeployError of the app's deploy call: err
// itself when it already is one, else a failure at the step a *stepError
// in err names (step when none) that changed nothing.
func deployErr(app, release string, step Step, err error) error {
	if err == nil {
		return nil
	}
	var de *DeployError
	if errors.As(err, &de) {
		return err
	}
	var se *stepError
	if errors.As(err, &se) {
		step = se.step
	}
	return &DeployError{App: app, Release: release, Step: step, Reason: err.Error(),
		Canceled: errors.Is(err, context.Canceled), Err: err}
}

// errCanceled is the cause of a deploy canceled through Cancel.
var errCanceled = errors.New("deploy canceled")
