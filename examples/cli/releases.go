package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
)

// releasesListCmd is "convox releases list".
func releasesListCmd() *command {
	return &command{
		name: "releases list", summary: "list the app's releases, newest first",
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) > 0 {
				return usagef("releases list", "releases list takes no arguments")
			}
			a, err := s.app(ctx, "releases list")
			if err != nil {
				return err
			}
			out := []releaseJSON{}
			for r, err := range a.Releases(ctx) {
				if err != nil {
					return err
				}
				out = append(out, toReleaseJSON(r))
			}
			if s.g.json {
				return writeJSON(s.std.Stdout, out)
			}
			t := newTable(s.std.Stdout, "RELEASE", "STATUS", "IMAGE", "DIGEST", "CREATED", "DESCRIPTION")
			for _, r := range out {
				desc := r.Description
				if desc == "" && r.Parent != "" {
					desc = "copy of " + r.Parent
				}
				if r.Reason != "" {
					desc = strings.TrimSpace(desc + " (" + r.Reason + ")")
				}
				t.row(r.ID, r.Status, r.ImageRef, shortDigest(r.Digest), ago(r.Created), desc)
			}
			t.flush()
			return nil
		},
	}
}

// releasesInfoCmd is "convox releases info".
func releasesInfoCmd() *command {
	return &command{
		name: "releases info", args: "ID", summary: "show a release: image, environment (secrets redacted), processes",
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) != 1 {
				return usagef("releases info", "releases info needs one release ID, e.g. R3")
			}
			a, err := s.app(ctx, "releases info")
			if err != nil {
				return err
			}
			r, err := a.Release(ctx, args[0])
			if err != nil {
				return releaseError(err, a.Name())
			}
			j := toReleaseJSON(r)
			if s.g.json {
				return writeJSON(s.std.Stdout, j)
			}
			w := s.std.Stdout
			fmt.Fprintf(w, "release      %s\n", j.ID)
			fmt.Fprintf(w, "status       %s\n", j.Status)
			if j.Reason != "" {
				fmt.Fprintf(w, "reason       %s\n", j.Reason)
			}
			if j.Parent != "" {
				fmt.Fprintf(w, "copy of      %s\n", j.Parent)
			}
			fmt.Fprintf(w, "image        %s\n", j.ImageRef)
			fmt.Fprintf(w, "digest       %s\n", j.Digest)
			fmt.Fprintf(w, "created      %s\n", j.Created.Local().Format("2006-01-02 15:04:05"))
			if j.Description != "" {
				fmt.Fprintf(w, "description  %s\n", j.Description)
			}
			fmt.Fprintln(w, "env")
			for _, e := range envList(r) {
				fmt.Fprintf(w, "  %s=%s\n", e.Name, e.Value)
			}
			fmt.Fprintln(w, "processes")
			for _, p := range j.Processes {
				line := fmt.Sprintf("  %s  count=%d", p.Name, p.Count)
				if p.Port > 0 {
					line += fmt.Sprintf(" port=%d health=%s", p.Port, p.Health)
				}
				if len(p.Command) > 0 {
					line += " command=" + strings.Join(p.Command, " ")
				}
				fmt.Fprintln(w, line)
			}
			return nil
		},
	}
}

// releasesDiffCmd is "convox releases diff".
func releasesDiffCmd() *command {
	return &command{
		name: "releases diff", args: "A B", summary: "show what changed from release A to release B (names only, never values)",
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) != 2 {
				return usagef("releases diff", "releases diff needs two release IDs, e.g. convox releases diff R1 R3")
			}
			a, err := s.app(ctx, "releases diff")
			if err != nil {
				return err
			}
			plan, err := a.Diff(ctx, args[0], args[1])
			if err != nil {
				return releaseError(err, a.Name())
			}
			if s.g.json {
				return writeJSON(s.std.Stdout, toPlanJSON(plan))
			}
			printPlan(s.std.Stdout, args[0]+" → "+args[1], plan)
			return nil
		},
	}
}

// rollbackOpts are the flags of rollback.
type rollbackOpts struct {
	deployOpts
	lastHealthy     bool
	previousHealthy bool
}

// rollbackCmd is "convox rollback".
func rollbackCmd() *command {
	return &command{
		name: "rollback", args: "[RELEASE | --previous-healthy | --last-healthy]", summary: "deploy a copy of an earlier release",
		help: `Creates a new release copying RELEASE (image, environment and processes),
records the copied release as its parent and deploys it. Without RELEASE it
copies the release that was active before the active one; with
--previous-healthy, the newest release before the active one that served
healthily and was not rolled back from; with --last-healthy, the app's last
healthy release (the LAST HEALTHY column of "convox apps info"), the active
one included: it repairs an app whose failed deploy could not be rolled
back.`,
		flags: func(fs *flag.FlagSet) any {
			o := &rollbackOpts{}
			o.register(fs, true)
			fs.BoolVar(&o.previousHealthy, "previous-healthy", false, "roll back to the newest release before the active one that served healthily")
			fs.BoolVar(&o.lastHealthy, "last-healthy", false, "restore the app's last healthy release, the active one included")
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*rollbackOpts)
			target := convox.Previous()
			switch {
			case len(args) > 1:
				return usagef("rollback", "rollback takes at most one release ID")
			case btoi(len(args) == 1)+btoi(o.lastHealthy)+btoi(o.previousHealthy) > 1:
				return usagef("rollback", "give one of a release ID, --previous-healthy and --last-healthy")
			case len(args) == 1:
				target = convox.ToRelease(args[0])
			case o.previousHealthy:
				target = convox.PreviousHealthy()
			case o.lastHealthy:
				target = convox.LastHealthy()
			}
			dopts, err := o.options("rollback")
			if err != nil {
				return err
			}
			a, err := s.app(ctx, "rollback")
			if err != nil {
				return err
			}
			return s.deployAndReport(ctx, a, "rollback", func(ctx context.Context) (*convox.Release, error) {
				return a.Rollback(ctx, target, dopts)
			})
		},
	}
}

// cancelCmd is "convox cancel".
func cancelCmd() *command {
	return &command{
		name: "cancel", summary: "stop the app's in-flight deploy and restore the previous release",
		help: `Works from any terminal: the deploy may run in another convox command (on the
local rack the command runs inside it) or another program.`,
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) > 0 {
				return usagef("cancel", "cancel takes no arguments")
			}
			a, err := s.app(ctx, "cancel")
			if err != nil {
				return err
			}
			if err := a.Cancel(ctx); err != nil {
				if errors.Is(err, providers.ErrNotFound) {
					return withHint(err, "nothing to cancel")
				}
				return err
			}
			app, err := a.Get(ctx)
			if err != nil {
				return err
			}
			if s.g.json {
				return writeJSON(s.std.Stdout, map[string]string{"app": app.Name, "active": app.Active})
			}
			fmt.Fprintf(s.std.Stdout, "canceled the deploy of %s; active release: %s\n", app.Name, orDash(app.Active))
			return nil
		},
	}
}

// btoi counts a true condition as one.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
