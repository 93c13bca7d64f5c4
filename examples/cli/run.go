package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
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
			case errors.Is(err, convox.ErrNotFound):
				return withHint(err, "see the app's releases and processes with: convox releases info RELEASE --app %s", a.Name())
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

// psCmd is "convox ps".
func psCmd() *command {
	return &command{
		name: "ps", summary: "list the app's running and recently stopped tasks",
		help: `On the local rack, the apps' processes run while a convox command holds the
rack: a "ps" that opens the rack itself waits (a few seconds at most) for the
active release's processes to start again before listing them.`,
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) > 0 {
				return usagef("ps", "ps takes no arguments")
			}
			a, err := s.app(ctx, "ps")
			if err != nil {
				return err
			}
			tasks, err := a.Tasks(ctx)
			if err != nil {
				return err
			}
			if s.own != nil {
				if tasks, err = waitRunning(ctx, a, tasks); err != nil {
					return err
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

// waitRunning waits until the active release's processes run on a rack
// this command just opened (at most 10 seconds), and returns the tasks.
func waitRunning(ctx context.Context, a *convox.AppClient, tasks []convox.Task) ([]convox.Task, error) {
	app, err := a.Get(ctx)
	if err != nil || app.Active == "" {
		return tasks, err
	}
	rel, err := a.Release(ctx, app.Active)
	if err != nil {
		return nil, err
	}
	want := 0
	for _, p := range rel.Processes {
		want += p.Count
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		running := 0
		for _, t := range tasks {
			if t.Release == app.Active && t.State == providers.TaskRunning {
				running++
			}
		}
		if running >= want || time.Now().After(deadline) {
			return tasks, nil
		}
		select {
		case <-ctx.Done():
			return tasks, nil
		case <-time.After(200 * time.Millisecond):
		}
		if tasks, err = a.Tasks(ctx); err != nil {
			return nil, err
		}
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
printing new lines until interrupted. With --json, one JSON object per line.`,
		flags: func(fs *flag.FlagSet) any {
			o := &logsOpts{}
			fs.BoolVar(&o.follow, "f", false, "follow: keep printing new lines until interrupted")
			fs.BoolVar(&o.follow, "follow", false, "same as -f")
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

// serveCmd is "convox serve".
func serveCmd() *command {
	return &command{
		name: "serve", summary: "hold the local rack open, serving its apps, until interrupted",
		help: `Opens the local rack (waiting for another program to release it), brings
every app's active release back and keeps it serving until interrupted, so
the endpoints answer. Meanwhile other convox commands run inside this
process: deploys, scaling and rollbacks take effect at once.`,
		noRack: true,
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) > 0 {
				return usagef("serve", "serve takes no arguments")
			}
			if !s.isLocal() {
				return usagef("serve", "serve holds a local rack; with --rack aws the apps keep running on AWS")
			}
			s.waitForRack = true
			c, err := s.client(ctx)
			if err != nil {
				return err
			}
			apps := []appJSON{}
			for app, err := range c.Apps(ctx) {
				if err != nil {
					return err
				}
				apps = append(apps, toAppJSON(app))
			}
			if s.g.json {
				if err := writeJSON(s.std.Stdout, map[string]any{"rackDir": s.localRack().Dir(), "pid": os.Getpid(), "apps": apps}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(s.std.Stdout, "serving the local rack at %s (pid %d); press Ctrl-C to stop\n", s.localRack().Dir(), os.Getpid())
				for _, a := range apps {
					for _, p := range sortedKeys(a.Endpoints) {
						fmt.Fprintf(s.std.Stdout, "  %s %s: %s (%s)\n", a.Name, p, a.Endpoints[p], orDash(a.Active))
					}
				}
				fmt.Fprintln(s.std.Stdout, "other convox commands now run here")
				s.own.setLog(s.std.Stdout)
			}
			<-ctx.Done()
			if !s.g.json {
				fmt.Fprintln(s.std.Stdout, "stopping")
			}
			return nil
		},
	}
}
