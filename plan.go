package convox

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/convox-go/convox/providers"
)

// ChangeKind says how an item differs between two releases.
type ChangeKind string

// Change kinds.
const (
	Added   ChangeKind = "added"
	Removed ChangeKind = "removed"
	Changed ChangeKind = "changed"
)

// EnvChange is a difference in one environment variable. It never holds
// values: only the name, the kind of change and whether it is secret.
type EnvChange struct {
	Name   string
	Kind   ChangeKind
	Secret bool
}

// FieldChange is a difference in one setting, rendered as text.
type FieldChange struct {
	Field string
	From  string
	To    string
}

// ProcessChange is a difference in one process type: its count and any
// other settings (command, cpu, memory, port, health, route).
type ProcessChange struct {
	Name   string
	Kind   ChangeKind
	Fields []FieldChange
}

// Plan is the typed difference between two releases of an app, or between
// the active release and a proposed one. It holds no secret values and is
// safe to show in approvals and notifications.
type Plan struct {
	App string
	// From and To are release IDs; To is "" for a proposed release, From is
	// "" when the app has no active release.
	From string
	To   string
	// Image is set when the image digest differs.
	Image     *FieldChange
	Env       []EnvChange
	Processes []ProcessChange
	// Resources is what the app's scheduler would change to run the
	// proposed release, resource by resource, as the platform itself
	// computes it (a CloudFormation change set). Only AppClient.Plan sets
	// it, and only when the scheduler implements providers.ChangePlanner;
	// it is nil otherwise.
	Resources []providers.ResourceChange
}

// Empty reports whether the releases run the same thing and, when the
// scheduler planned, it would change no resource.
func (p *Plan) Empty() bool {
	return p.Image == nil && len(p.Env) == 0 && len(p.Processes) == 0 && len(p.Resources) == 0
}

// String summarizes the plan on one line, e.g.
// "image sha256:1a2b… → sha256:3c4d…; env +FEATURE ~TOKEN -MODE; web count 2 → 3;
// resources +TaskOfwebV2 ~ServiceOfweb -TaskOfwebV1" (a resource replaced
// is "~Name!", one that may be replaced "~Name?").
func (p *Plan) String() string {
	if p.Empty() {
		return "no changes"
	}
	var parts []string
	if p.Image != nil {
		parts = append(parts, fmt.Sprintf("image %s → %s", short(p.Image.From), short(p.Image.To)))
	}
	if len(p.Env) > 0 {
		var env []string
		for _, e := range p.Env {
			env = append(env, map[ChangeKind]string{Added: "+", Removed: "-", Changed: "~"}[e.Kind]+e.Name)
		}
		parts = append(parts, "env "+strings.Join(env, " "))
	}
	for _, pc := range p.Processes {
		switch pc.Kind {
		case Added, Removed:
			parts = append(parts, fmt.Sprintf("%s %s", pc.Name, pc.Kind))
		default:
			var fs []string
			for _, f := range pc.Fields {
				fs = append(fs, fmt.Sprintf("%s %s → %s", f.Field, f.From, f.To))
			}
			parts = append(parts, pc.Name+" "+strings.Join(fs, ", "))
		}
	}
	if len(p.Resources) > 0 {
		var rs []string
		for _, r := range p.Resources {
			rs = append(rs, resourceChangeString(r))
		}
		parts = append(parts, "resources "+strings.Join(rs, " "))
	}
	return strings.Join(parts, "; ")
}

// resourceChangeString renders one resource change as +Name, -Name,
// ~Name, ~Name! (replaced) or ~Name? (conditionally replaced).
func resourceChangeString(r providers.ResourceChange) string {
	switch r.Action {
	case providers.ChangeAdd:
		return "+" + r.Resource
	case providers.ChangeRemove:
		return "-" + r.Resource
	}
	switch r.Replacement {
	case providers.ReplacementYes:
		return "~" + r.Resource + "!"
	case providers.ReplacementConditional:
		return "~" + r.Resource + "?"
	}
	return "~" + r.Resource
}

func short(digest string) string {
	if i := strings.IndexByte(digest, ':'); i >= 0 && len(digest) > i+13 {
		return digest[:i+13] + "…"
	}
	return digest
}

// Plan returns the difference between the active release and the release
// spec would create, without writing anything: the spec is validated and
// its image resolved exactly as CreateRelease would.
//
// When the app's scheduler implements providers.ChangePlanner, the plan's
// Resources list what the scheduler would change to run the release,
// bound to the app's existing routes (a route Promote would create first
// is not in it). A failing PlanChanges fails Plan with its error, so that
// a plan never looks smaller than the change it describes.
func (a *AppClient) Plan(ctx context.Context, spec ReleaseSpec) (*Plan, error) {
	const op = "Plan"
	to, err := a.buildRelease(ctx, spec, "")
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	app, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	var from *releaseDoc
	if app.Active != "" {
		if from, err = a.c.loadRelease(ctx, a.name, app.Active); err != nil {
			return nil, wrapErr(op, a.name, app.Active, err)
		}
	}
	p := diff(a.name, from, to, "")
	sel, err := a.c.rack.selectFor(app.Spec)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	if cp, ok := sel.sched.changePlanner(); ok {
		to.Seq = app.Latest + 1
		if p.Resources, err = cp.PlanChanges(ctx, to.desired(newToken(), planBindings(app, to))); err != nil {
			return nil, wrapErr(op, a.name, "", err)
		}
	}
	return p, nil
}

// planBindings returns the bindings Promote would give rel's routed
// processes whose routes exist, without ensuring any route: the target
// sets serving traffic, on the app's balancer and, while a balancer
// migration runs, on the target balancer too.
func planBindings(app *appDoc, rel *releaseDoc) map[string][]providers.Binding {
	var bindings map[string][]providers.Binding
	for _, pr := range rel.Processes {
		r, ok := app.Routes[pr.Name]
		if pr.Port == 0 || !ok {
			continue
		}
		if bindings == nil {
			bindings = map[string][]providers.Binding{}
		}
		bindings[pr.Name] = []providers.Binding{r.live()}
		if app.Migration != nil {
			if m, ok := app.Migration.Routes[pr.Name]; ok {
				bindings[pr.Name] = append(bindings[pr.Name], m.live())
			}
		}
	}
	return bindings
}

// Diff returns the difference between two releases of the app.
func (a *AppClient) Diff(ctx context.Context, fromID, toID string) (*Plan, error) {
	const op = "Diff"
	from, err := a.c.loadRelease(ctx, a.name, fromID)
	if err != nil {
		return nil, wrapErr(op, a.name, fromID, err)
	}
	to, err := a.c.loadRelease(ctx, a.name, toID)
	if err != nil {
		return nil, wrapErr(op, a.name, toID, err)
	}
	return diff(a.name, from, to, releaseID(to.Seq)), nil
}

// diff compares two release documents; from may be nil.
func diff(app string, from, to *releaseDoc, toID string) *Plan {
	p := &Plan{App: app, To: toID}
	if from == nil {
		from = &releaseDoc{}
	} else {
		p.From = releaseID(from.Seq)
	}
	if from.Image.Digest != to.Image.Digest {
		p.Image = &FieldChange{Field: "image", From: from.Image.Digest, To: to.Image.Digest}
	}
	names := slices.Sorted(maps.Keys(from.Env))
	for _, k := range slices.Sorted(maps.Keys(to.Env)) {
		if _, ok := from.Env[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		f, inFrom := from.Env[k]
		t, inTo := to.Env[k]
		switch {
		case !inFrom:
			p.Env = append(p.Env, EnvChange{Name: k, Kind: Added, Secret: t.Secret})
		case !inTo:
			p.Env = append(p.Env, EnvChange{Name: k, Kind: Removed, Secret: f.Secret})
		case f != t:
			p.Env = append(p.Env, EnvChange{Name: k, Kind: Changed, Secret: f.Secret || t.Secret})
		}
	}
	fp := map[string]Process{}
	for _, pr := range from.Processes {
		fp[pr.Name] = pr
	}
	tp := map[string]Process{}
	for _, pr := range to.Processes {
		tp[pr.Name] = pr
	}
	for _, n := range slices.Sorted(maps.Keys(fp)) {
		if _, ok := tp[n]; !ok {
			p.Processes = append(p.Processes, ProcessChange{Name: n, Kind: Removed})
		}
	}
	for _, n := range slices.Sorted(maps.Keys(tp)) {
		f, ok := fp[n]
		if !ok {
			p.Processes = append(p.Processes, ProcessChange{Name: n, Kind: Added})
			continue
		}
		if fs := processFields(f, tp[n]); len(fs) > 0 {
			p.Processes = append(p.Processes, ProcessChange{Name: n, Kind: Changed, Fields: fs})
		}
	}
	return p
}

func processFields(a, b Process) []FieldChange {
	var fs []FieldChange
	add := func(field string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			fs = append(fs, FieldChange{Field: field, From: fmt.Sprint(x), To: fmt.Sprint(y)})
		}
	}
	add("count", a.Count, b.Count)
	add("command", a.Command, b.Command)
	add("cpu", a.CPU, b.CPU)
	add("memory", a.Memory, b.Memory)
	add("port", a.Port, b.Port)
	add("health", fmt.Sprintf("%+v", a.Health), fmt.Sprintf("%+v", b.Health))
	add("route", fmt.Sprintf("%+v", a.Route), fmt.Sprintf("%+v", b.Route))
	return fs
}

// RollbackCheck is the outcome of CheckRollback.
type RollbackCheck struct {
	// Target is the release a rollback would copy.
	Target string
	// Problems lists what would make the rollback fail; empty means ready.
	Problems []string
}

// Ready reports whether the rollback is expected to work.
func (r *RollbackCheck) Ready() bool { return len(r.Problems) == 0 }

// CheckRollback verifies, before an incident and without changing
// anything, that a rollback to target would work: the target exists, its
// image digest still resolves in the registry, the app's routes still
// exist on their balancers and the scheduler accepts their bindings. The
// returned error reports a failure to check; problems found are listed in
// the result.
func (a *AppClient) CheckRollback(ctx context.Context, target RollbackTarget) (*RollbackCheck, error) {
	const op = "CheckRollback"
	app, sel, err := a.load(ctx)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	src, err := a.resolveTarget(ctx, app, target)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	res := &RollbackCheck{Target: releaseID(src.Seq)}
	fail := func(err error, format string, args ...any) error {
		if providers.IsTemporary(err) || ctx.Err() != nil {
			return wrapErr(op, a.name, res.Target, err)
		}
		res.Problems = append(res.Problems, fmt.Sprintf(format, args...))
		return nil
	}
	if _, err := sel.registry.Resolve(ctx, src.Image.Ref()); err != nil {
		if err := fail(err, "image %s of %s no longer resolves: %v", src.Image.Ref(), res.Target, err); err != nil {
			return nil, err
		}
	}
	for _, p := range src.Processes {
		if p.Port == 0 {
			continue
		}
		r, ok := app.Routes[p.Name]
		if !ok {
			continue // the route is created on promote
		}
		b := sel.balancers[r.Balancer]
		if b == nil {
			res.Problems = append(res.Problems, fmt.Sprintf("route of %s is on balancer %q, which the rack no longer has", p.Name, r.Balancer))
			continue
		}
		if _, err := b.Health(ctx, r.ID); err != nil {
			if err := fail(err, "route %s of %s does not resolve: %v", r.ID, p.Name, err); err != nil {
				return nil, err
			}
		}
		if acc, ok := sel.scheduler.(providers.BindingAcceptor); ok && !acc.AcceptsBinding(r.Binding.Kind) {
			res.Problems = append(res.Problems, fmt.Sprintf("scheduler %s does not accept the %s binding of %s", sel.spec.Scheduler, r.Binding.Kind, p.Name))
		}
	}
	return res, nil
}
