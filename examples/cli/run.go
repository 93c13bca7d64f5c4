package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
)

// runOpts are the flags of run.
type runOpts struct{ release string }

// runJSON is the --json outcome of run.
type runJSON struct {
	App      string   `json:"app"`
	Process  string   `json:"process"`
	Release  string   `json:"release"`
	Task     string   `json:"task"`
	ExitCode int      `json:"exitCode"`
	Reason   string   `json:"reason"`
	Output   []string `json:"output"`
}

// runCmd is "convox run".
func runCmd() *command {
	return &command{
		name: "run", args: "PROCESS [--release ID] [-- CMD...]", summary: "run a one-off process and exit with its exit code",
		help: `Starts a one-off process of type PROCESS with the image and environment of
the active release (or --release), running CMD (the process's own command
when none is given), streams its output and exits with its exit code. An
image made by "convox build" has its binary "server" on its PATH:

    convox run web --app hello -- server env GREETING

With --json the output is collected into the JSON document instead.`,
		flags: func(fs *flag.FlagSet) any {
			o := &runOpts{}
			fs.StringVar(&o.release, "release", "", "run this release's image and environment (default: the active release)")
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*runOpts)
			before, cmdline, _ := splitDash(args)
			switch {
			case len(before) == 0:
				return usagef("run", "run needs a process type, e.g. convox run web -- CMD")
			case len(before) > 1:
				return usagef("run", "put the command after --: convox run %s -- %s", before[0], strings.Join(before[1:], " "))
			}
			process := before[0]
			a, err := s.app(ctx, "run")
			if err != nil {
				return err
			}
			var collected bytes.Buffer
			ropts := &convox.RunOptions{Release: o.release, Output: s.std.Stdout}
			if s.g.json {
				ropts.Output = &collected
			}
			res, err := a.Run(ctx, process, cmdline, ropts)
			switch {
			case err != nil && ctx.Err() != nil:
				return errors.New("interrupted; the one-off process was stopped")
			case errors.Is(err, providers.ErrNotFound):
				return explainRun(context.WithoutCancel(ctx), err, a, o.release)
			case errors.Is(err, providers.ErrUnimplemented):
				return withHint(err, "this rack's scheduler runs no one-off processes")
			case err != nil:
				return err
			}
			code := res.ExitCode
			if code < 0 {
				code = exitFailed
			}
			if s.g.json {
				lines := strings.Split(strings.TrimSuffix(collected.String(), "\n"), "\n")
				if collected.Len() == 0 {
					lines = []string{}
				}
				if err := writeJSON(s.std.Stdout, runJSON{App: a.Name(), Process: process, Release: res.Task.Release,
					Task: res.Task.ID, ExitCode: res.ExitCode, Reason: res.Task.Reason, Output: lines}); err != nil {
					return err
				}
			}
			if code != 0 {
				return &exitCodeError{code: code}
			}
			return nil
		},
	}
}

// explainRun adds to a run's not-found error the hint its cause calls
// for: no release to run yet, an unknown release, or an unknown process.
func explainRun(ctx context.Context, err error, a *convox.AppClient, release string) error {
	if release == "" {
		app, gerr := a.Get(ctx)
		if gerr != nil {
			return err
		}
		if app.Active == "" {
			return withHint(err, "deploy a release first: convox deploy IMAGE --app %s", a.Name())
		}
		release = app.Active
	}
	rel, rerr := a.Release(ctx, release)
	if rerr != nil {
		return withHint(err, "list the releases with: convox releases list --app %s", a.Name())
	}
	var names []string
	for _, p := range rel.Processes {
		names = append(names, p.Name)
	}
	return withHint(err, "the processes of %s: %s", rel.ID, strings.Join(names, ", "))
}

// psCmd is "convox ps".
func psCmd() *command {
	return &command{
		name: "ps", summary: "list the app's running and recently stopped tasks",
		help: `On the local rack, the apps' processes run only while a convox command holds
the rack ("convox serve", a deploy, ...): run without one, ps says that the
app is not being served, and how to serve it, instead of listing processes
that stop when it exits.`,
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) > 0 {
				return usagef("ps", "ps takes no arguments")
			}
			a, err := s.app(ctx, "ps")
			if err != nil {
				return err
			}
			var tasks []providers.Task
			if s.notServed() {
				fmt.Fprintln(s.std.Stderr, notServedHint(a.Name()))
				if !s.g.json {
					return nil
				}
			} else {
				for t, err := range a.Tasks(ctx) {
					if err != nil {
						return err
					}
					tasks = append(tasks, t)
				}
			}
			if s.g.json {
				out := []taskJSON{}
				for _, t := range tasks {
					out = append(out, toTaskJSON(t))
				}
				return writeJSON(s.std.Stdout, out)
			}
			t := newTable(s.std.Stdout, "TASK", "PROCESS", "RELEASE", "STATE", "STARTED", "ADDRESS", "REASON")
			for _, tk := range tasks {
				t.row(tk.ID, tk.Process, tk.Release, string(tk.State), ago(tk.Started), orDash(tk.Address), tk.Reason)
			}
			t.flush()
			return nil
		},
	}
}

// logsOpts are the flags of logs.
type logsOpts struct {
	follow  bool
	since   time.Duration
	filter  string
	process string
}

// logsCmd is "convox logs".
func logsCmd() *command {
	return &command{
		name: "logs", args: "[-f] [flags]", summary: "show the app's logs (process output and platform events)",
		help: `Prints the app's log lines in time order: TIME RELEASE SOURCE MESSAGE, where
SOURCE is PROCESS/TASK for a process's output and "convox" for the
platform's own events (deploys, failures, rollbacks). With -f it keeps
printing new lines until interrupted. With --json, one JSON object per line.

On the local rack, -f follows only while a convox command serves the app
("convox serve"); without one, logs prints the lines so far and says how to
serve the app.`,
		flags: func(fs *flag.FlagSet) any {
			o := &logsOpts{}
			fs.BoolVar(&o.follow, "follow", false, "keep printing new lines until interrupted")
			fs.BoolVar(&o.follow, "f", false, "shorthand for --follow")
			fs.DurationVar(&o.since, "since", 0, "only lines newer than this long ago, e.g. 10m (default: all)")
			fs.StringVar(&o.filter, "filter", "", "only lines containing this text (case-sensitive)")
			fs.StringVar(&o.process, "process", "", "only lines of this process type")
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*logsOpts)
			if len(args) > 0 {
				return usagef("logs", "logs takes no arguments (did you mean --filter %s?)", args[0])
			}
			if o.since < 0 {
				return usagef("logs", "--since must not be negative")
			}
			a, err := s.app(ctx, "logs")
			if o.follow && ctx.Err() != nil {
				return nil // interrupted before following began: a follow ends quietly
			}
			if err != nil {
				return err
			}
			q := convox.LogQuery{Follow: o.follow, Since: o.since, Filter: o.filter, Process: o.process}
			if o.follow && s.notServed() {
				// Following would start the app for this command's
				// lifetime only: show what there is and say how to serve it.
				q.Follow = false
				defer fmt.Fprintf(s.std.Stderr, "%s; then follow with: convox logs -f\n", notServedHint(a.Name()))
			}
			for e, err := range a.Logs(ctx, q) {
				if err != nil {
					return err
				}
				if s.g.json {
					if err := writeJSONLine(s.std.Stdout, logJSON{Time: e.Time, Stream: e.Stream, Process: e.Process, Release: e.Release, Message: e.Message}); err != nil {
						return err
					}
					continue
				}
				source := e.Stream
				if e.Process != "" && e.Stream != e.Process {
					source = e.Process + "/" + e.Stream
				}
				fmt.Fprintf(s.std.Stdout, "%s %s %s %s\n", e.Time.Local().Format("2006-01-02T15:04:05.000"), orDash(e.Release), source, e.Message)
			}
			return nil
		},
	}
}

// serveOpts are the flags of serve.
type serveOpts struct{ verbose bool }

// maxServeLog is the size beyond which serve starts its log afresh,
// keeping the previous one as serve.log.1.
const maxServeLog = 1 << 20

// serveCmd is "convox serve".
func serveCmd() *command {
	return &command{
		name: "serve", summary: "hold the local rack open, serving its apps, until interrupted",
		help: `Opens the local rack (waiting up to --wait for another program to release
it), brings every app's active release back and keeps it serving until
interrupted, so the endpoints answer. Meanwhile other convox commands run
inside this process: deploys, scaling and rollbacks take effect at once.

serve prints one status line when it starts and, after that, only problems
(such as a refused connection). Each command it runs for another convox
process is recorded, by name and exit code only (never its arguments,
which may hold secret values), in serve.log in the rack directory (mode
0600); --verbose prints those lines too.`,
		noRack: true,
		flags: func(fs *flag.FlagSet) any {
			o := &serveOpts{}
			fs.BoolVar(&o.verbose, "verbose", false, "also print each command run for another convox process")
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*serveOpts)
			if len(args) > 0 {
				return usagef("serve", "serve takes no arguments")
			}
			if !s.isLocal() {
				return usagef("serve", "serve holds a local rack; with --rack aws the apps keep running on AWS")
			}
			s.serving = true
			s.rackLog = slog.New(slog.NewTextHandler(s.std.Stderr, &slog.HandlerOptions{
				Level: slog.LevelWarn,
				ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
					if len(groups) == 0 && a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			}))
			c, err := s.client(ctx)
			if err != nil {
				return err
			}
			dir := s.localRack().Dir()
			logPath := filepath.Join(dir, serveLogName)
			logFile, err := openServeLog(logPath)
			if err != nil {
				return &rackError{fmt.Errorf("open the serve log: %w", err)}
			}
			defer logFile.Close()
			var log io.Writer = logFile
			if o.verbose && !s.g.json {
				log = io.MultiWriter(logFile, s.std.Stdout)
			}
			apps := []appJSON{}
			endpoints := 0
			for app, err := range c.Apps(ctx) {
				if err != nil {
					return err
				}
				apps = append(apps, toAppJSON(app))
				endpoints += len(app.Endpoints)
			}
			if s.g.json {
				if err := writeJSON(s.std.Stdout, map[string]any{"rackDir": dir, "pid": os.Getpid(), "log": logPath, "apps": apps}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(s.std.Stdout, "convox serve: serving %s (%s) from %s, pid %d; commands are logged to %s; Ctrl-C stops\n",
					plural(len(apps), "app"), plural(endpoints, "endpoint"), dir, os.Getpid(), logPath)
				if o.verbose {
					for _, a := range apps {
						for _, p := range sortedKeys(a.Endpoints) {
							fmt.Fprintf(s.std.Stdout, "  %s %s: %s (%s)\n", a.Name, p, a.Endpoints[p], orDash(a.Active))
						}
					}
				}
			}
			fmt.Fprintf(logFile, "%s serving from %s, pid %d\n", time.Now().Format(time.RFC3339), dir, os.Getpid())
			s.own.setLog(log, s.std.Stderr)
			<-ctx.Done()
			s.own.setLog(logFile, nil)
			if !s.g.json {
				fmt.Fprintln(s.std.Stdout, "convox serve: stopping")
			}
			fmt.Fprintf(logFile, "%s stopping\n", time.Now().Format(time.RFC3339))
			return nil
		},
	}
}

// openServeLog opens serve's log for appending, owner-only; a log grown
// beyond maxServeLog is kept as name.1 and started afresh.
func openServeLog(name string) (*os.File, error) {
	if fi, err := os.Stat(name); err == nil && fi.Size() > maxServeLog {
		if err := os.Rename(name, name+".1"); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// plural renders "1 app", "2 apps".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
