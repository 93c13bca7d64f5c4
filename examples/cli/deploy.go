package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
)

// deployOpts are the flags every command that deploys a release takes.
type deployOpts struct {
	strategy    string
	bake        time.Duration
	waitTimeout time.Duration
}

func (o *deployOpts) register(fs *flag.FlagSet, strategy bool) {
	if strategy {
		fs.StringVar(&o.strategy, "strategy", "rolling", "how the release replaces the serving one: rolling, blue-green, or canary:P1,P2,... (percentages of traffic)")
		fs.DurationVar(&o.bake, "bake", 0, "how long each canary step, or blue-green after the switch, holds while health is watched (canary default 1m)")
	}
	fs.DurationVar(&o.waitTimeout, "wait-timeout", 0, "the most a deploy waits for the release to run and be healthy before rolling back (default 10m)")
}

// options returns the SDK's deploy options, or a usage error of cmd.
func (o *deployOpts) options(cmd string) (*convox.DeployOptions, error) {
	if o.waitTimeout < 0 {
		return nil, usagef(cmd, "--wait-timeout must not be negative")
	}
	st, err := parseStrategy(o.strategy, o.bake)
	if err != nil {
		return nil, usagef(cmd, "%v", err)
	}
	return &convox.DeployOptions{Timeout: o.waitTimeout, Strategy: st}, nil
}

// parseStrategy parses --strategy: "rolling", "blue-green" or
// "canary:10,50" (ascending percentages between 1 and 99; "canary" alone
// is canary:10,50).
func parseStrategy(s string, bake time.Duration) (convox.Strategy, error) {
	if bake < 0 {
		return convox.Strategy{}, errors.New("--bake must not be negative")
	}
	switch s {
	case "", "rolling":
		return convox.Rolling(), nil
	case "blue-green", "bluegreen":
		return convox.BlueGreen(bake), nil
	case "canary":
		s = "canary:10,50"
	}
	list, ok := strings.CutPrefix(s, "canary:")
	if !ok {
		return convox.Strategy{}, fmt.Errorf("unknown strategy %q: use rolling, blue-green or canary:10,50", s)
	}
	if bake == 0 {
		bake = convox.DefaultBake
	}
	var steps []convox.CanaryStep
	last := 0
	for _, f := range strings.Split(list, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(f, "%")))
		if err != nil || p < 1 || p > 99 || p <= last {
			return convox.Strategy{}, fmt.Errorf("canary percentages %q: give ascending whole numbers between 1 and 99, e.g. canary:10,50", list)
		}
		last = p
		steps = append(steps, convox.CanaryStep{Percent: p, Bake: bake})
	}
	return convox.CanarySteps(steps...), nil
}

// deployCmdOpts are the flags of deploy.
type deployCmdOpts struct {
	deployOpts
	fs          *flag.FlagSet
	process     string
	port        int
	health      string
	description string
}

// deployCmd is "convox deploy".
func deployCmd() *command {
	return &command{
		name: "deploy", args: "IMAGE [flags]", summary: "deploy an image as a new release, with live progress",
		help: `Creates a release from IMAGE (APP:TAG as "convox build" prints it, or
APP@sha256:...), with the environment and processes of the app's latest
release, promotes it and waits until its tasks run and its targets are
healthy. A failed deploy is rolled back (the previous release serves again)
and exits 1, with the reason, the stopped tasks and their last log lines.

An app's first deploy runs one "web" process listening on $PORT, routed by
the rack's balancer (--port 0: no traffic) and health-checked on --health.
Later deploys keep the processes; --process, --port and --health given
explicitly change (or add) that process. Change counts with "convox scale".

On a terminal, progress is one status line updated in place; otherwise one
line per change. Interrupting a deploy on the local rack cancels it and
restores the previous release.`,
		flags: func(fs *flag.FlagSet) any {
			o := &deployCmdOpts{fs: fs}
			o.register(fs, true)
			fs.StringVar(&o.process, "process", "web", "the process type --port and --health configure")
			fs.IntVar(&o.port, "port", 8080, "the port the process listens on, given to it as $PORT (0: not routed)")
			fs.StringVar(&o.health, "health", "/", "the HTTP `PATH` of the process's health check")
			fs.StringVar(&o.description, "description", "", "the `TEXT` release history shows for the release (default: deploy IMAGE)")
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*deployCmdOpts)
			if len(args) != 1 {
				return usagef("deploy", "deploy needs one image reference, e.g. convox deploy web:v1")
			}
			dopts, err := o.options("deploy")
			if err != nil {
				return err
			}
			if o.port < 0 || o.port > 65535 {
				return usagef("deploy", "--port %d is out of range", o.port)
			}
			a, err := s.app(ctx, "deploy")
			if err != nil {
				return err
			}
			if repo := imageRepository(args[0]); repo != "" && repo != a.Name() {
				fmt.Fprintf(s.std.Stderr, "warning: %s is an image of %s's repository, deployed into %s\n", args[0], quoteName(repo), a.Name())
			}
			spec := convox.ReleaseSpec{Image: args[0], Description: o.description}
			set := map[string]bool{}
			o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if spec.Processes, err = s.formation(ctx, a, o, set); err != nil {
				return err
			}
			return s.deployAndReport(ctx, a, "deploy", func(ctx context.Context) (*convox.Release, error) {
				return a.Deploy(ctx, spec, dopts)
			})
		},
	}
}

// formation returns the processes of the release to deploy: the default
// web process on a first deploy, the latest release's with the explicit
// flags applied, or nil (keep the latest release's).
func (s *session) formation(ctx context.Context, a *convox.AppClient, o *deployCmdOpts, set map[string]bool) ([]convox.Process, error) {
	latest, err := latestRelease(ctx, a)
	if err != nil {
		return nil, err
	}
	if latest != nil && !set["process"] && !set["port"] && !set["health"] {
		return nil, nil
	}
	var procs []convox.Process
	if latest != nil {
		procs = slices.Clone(latest.Processes)
	}
	i := slices.IndexFunc(procs, func(p convox.Process) bool { return p.Name == o.process })
	if i < 0 {
		p := convox.Process{Name: o.process, Count: 1}
		if s.isLocal() {
			// Checks are cheap on one machine: a deploy is healthy sooner.
			p.Health.Interval = time.Second
		}
		procs = append(procs, p)
		i = len(procs) - 1
		set["port"], set["health"] = true, true
	}
	if set["port"] {
		procs[i].Port = o.port
	}
	if set["health"] {
		procs[i].Health.Path = o.health
	}
	return procs, nil
}

// latestRelease returns the app's newest release, or nil.
func latestRelease(ctx context.Context, a *convox.AppClient) (*convox.Release, error) {
	for r, err := range a.Releases(ctx) {
		return r, err
	}
	return nil, nil
}

// deployAndReport runs a function that deploys a release (Deploy, Scale,
// SetEnv, Rollback, ...) showing its progress, and reports the outcome.
// An interrupt on the local rack cancels the deploy, restoring the
// previous release, before the rack closes.
func (s *session) deployAndReport(ctx context.Context, a *convox.AppClient, cmd string, deploy func(context.Context) (*convox.Release, error)) error {
	out := s.std.Stdout
	if s.g.json {
		out = s.std.Stderr
	}
	p := &progress{w: out, tty: s.std.TTY && !s.g.json}
	s.events.Store(p)
	if p.tty {
		stop := make(chan struct{})
		defer close(stop)
		go p.tick(stop)
	}
	rel, err := deploy(ctx)
	// An interrupt ends the wait (InProgress) or stops the deploy before
	// it changed anything; a deploy that failed on its own is reported.
	var de *convox.DeployError
	interrupted := err != nil && ctx.Err() != nil && (!errors.As(err, &de) || de.InProgress || !de.Changed)
	p.endLine()
	if interrupted {
		err = s.interrupted(a) // the cancellation's events are shown too
	}
	s.events.Store(nil)
	p.endLine()
	if interrupted {
		return err
	}
	if err != nil {
		return explainDeploy(err, a.Name(), cmd)
	}
	app, err := a.Get(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	if s.g.json {
		eps := app.Endpoints
		if eps == nil {
			eps = map[string]string{}
		}
		return writeJSON(s.std.Stdout, deployJSON{App: rel.App, Release: rel.ID, Parent: rel.Parent, Status: string(rel.Status),
			ImageRef: rel.ImageRef, Digest: rel.Image.Digest, Endpoints: eps})
	}
	fmt.Fprintf(s.std.Stdout, "%s is active: %s (%s)\n", rel.ID, rel.ImageRef, shortDigest(rel.Image.Digest))
	for _, proc := range sortedKeys(app.Endpoints) {
		fmt.Fprintf(s.std.Stdout, "%s: %s\n", proc, app.Endpoints[proc])
	}
	if s.notServed() && len(app.Endpoints) > 0 {
		fmt.Fprintf(s.std.Stdout, "the endpoint answers only while a convox command holds the rack; serve %s with: convox serve &\n", app.Name)
	}
	return nil
}

// interrupted handles an interrupted deploy: on the local rack it cancels
// the deploy (its processes stop with the rack anyway); elsewhere the
// deploy goes on.
func (s *session) interrupted(a *convox.AppClient) error {
	if !s.isLocal() {
		return withHint(errors.New("interrupted; the deploy goes on"), "follow it with: convox apps info %s; stop it with: convox cancel --app %s", a.Name(), a.Name())
	}
	fmt.Fprintln(s.std.Stderr, "interrupted: canceling the deploy and restoring the previous release")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := a.Cancel(ctx); err != nil && !errors.Is(err, providers.ErrNotFound) {
		return fmt.Errorf("interrupted, and canceling the deploy failed: %w", err)
	}
	return errors.New("deploy canceled")
}

// explainDeploy adds what to do to the error of a deploy.
func explainDeploy(err error, app, cmd string) error {
	var de *convox.DeployError
	switch {
	case errors.As(err, &de) && de.Changed:
		return withHint(err, "%s", deployDetails(de))
	case errors.Is(err, providers.ErrConflict):
		return withHint(err, "another deploy of %s is in progress; wait for it, or stop it with: convox cancel --app %s", app, app)
	case errors.Is(err, providers.ErrUnimplemented):
		return withHint(err, "this rack's providers cannot do that; use --strategy rolling")
	case errors.Is(err, providers.ErrNotFound) && cmd == "deploy":
		return withHint(err, "push the image first: convox build DIR --app %s --tag TAG, then convox deploy %s:TAG", app, app)
	case errors.Is(err, providers.ErrNotFound) && cmd == "rollback":
		return withHint(err, "list the releases with: convox releases list --app %s", app)
	}
	return err
}

// imageRepository returns the repository an image reference names, as
// the last element of its path ("web" of "web:v1" and of
// "host:5000/team/web@sha256:..."), or "" for a reference it cannot read.
func imageRepository(ref string) string {
	name, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	name = name[strings.LastIndexByte(name, '/')+1:]
	return name
}

// deployDetails renders what a failed deploy left to look at.
func deployDetails(de *convox.DeployError) string {
	var b strings.Builder
	switch {
	case de.Canceled:
		fmt.Fprintf(&b, "the deploy was canceled")
	case !de.RolledBack:
		fmt.Fprintf(&b, "the previous release could not be restored; check with: convox ps --app %s", de.App)
	case de.Previous != "":
		fmt.Fprintf(&b, "%s is serving again", de.Previous)
	default:
		fmt.Fprintf(&b, "the processes of %s were stopped", de.Release)
	}
	if len(de.StoppedTasks) > 0 {
		b.WriteString("\nstopped tasks:")
		for _, t := range de.StoppedTasks {
			fmt.Fprintf(&b, "\n  %s  %s", t.ID, t.Reason)
		}
	}
	if len(de.LastLogLines) > 0 {
		fmt.Fprintf(&b, "\nlast log lines of %s:", de.Release)
		for _, l := range de.LastLogLines {
			fmt.Fprintf(&b, "\n  %s  %s", orDash(l.Process), l.Message)
		}
	}
	return b.String()
}

// progress prints deploy events: on a terminal, waits update one status
// line in place; otherwise every event is a line.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	open bool // a status line is shown without its newline
	// last is the wait shown on the open status line and when it arrived,
	// so that its elapsed time keeps counting between events.
	last     convox.Event
	received time.Time
}

func (p *progress) event(e convox.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Type {
	case convox.EventWaiting:
		if e.Progress == nil {
			return
		}
		if p.tty {
			p.last, p.received = e, time.Now()
			p.render(*e.Progress)
			return
		}
		fmt.Fprintf(p.w, "%s %s: %s\n", e.Release, e.Step, e.Progress)
	case convox.EventReleaseCreated, convox.EventDeployStarted, convox.EventStep, convox.EventRetry,
		convox.EventDeploySucceeded, convox.EventDeployFailed, convox.EventCompensating,
		convox.EventRolledBack, convox.EventCanceled, convox.EventRollback:
		p.closeLine()
		line := e.Message
		if e.Reason != "" {
			line += ": " + e.Reason
		}
		fmt.Fprintln(p.w, line)
	}
}

// render (re)draws the status line.
func (p *progress) render(pr convox.Progress) {
	fmt.Fprintf(p.w, "\r\x1b[K%s %s %s %s", p.last.Release, p.last.Step, bar(pr), pr)
	p.open = true
}

// tick redraws an open status line with its elapsed time brought up to
// date, once a second until stop is closed.
func (p *progress) tick(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		if p.open && p.last.Progress != nil {
			pr := *p.last.Progress
			pr.Elapsed = min(pr.Elapsed+time.Since(p.received), pr.Limit).Round(time.Second)
			p.render(pr)
		}
		p.mu.Unlock()
	}
}

// endLine ends a status line left open.
func (p *progress) endLine() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLine()
}

func (p *progress) closeLine() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// bar renders a wait's progress as a 20-character bar: tasks running and
// targets healthy count equally.
func bar(p convox.Progress) string {
	const width = 20
	total, done := p.Desired+p.Targets, p.Running+p.Healthy
	n := 0
	if total > 0 {
		n = min(width, width*done/total)
	}
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}
