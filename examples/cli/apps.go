package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"

	"github.com/convox-go/convox/providers"
)

// appsCreateCmd is "convox apps create".
func appsCreateCmd() *command {
	return &command{
		name: "apps create", args: "NAME", summary: "create an app",
		help: `Records a new app on the rack. Deploy to it with "convox build" and "convox deploy".
NAME defaults to --app.`,
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			name, err := oneNameArg(s, "apps create", args)
			if err != nil {
				return err
			}
			c, err := s.client(ctx)
			if err != nil {
				return err
			}
			app, err := c.CreateApp(ctx, name, nil)
			if errors.Is(err, providers.ErrAlreadyExists) {
				return withHint(err, "it exists already; see it with: convox apps info %s", name)
			}
			if err != nil {
				return err
			}
			if s.g.json {
				return writeJSON(s.std.Stdout, toAppJSON(app))
			}
			fmt.Fprintf(s.std.Stdout, "created app %s\nnext: convox build DIR --app %s, then convox deploy %s:TAG --app %s\n", name, name, name, name)
			return nil
		},
	}
}

// appsListCmd is "convox apps list".
func appsListCmd() *command {
	return &command{
		name: "apps list", summary: "list the apps",
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) > 0 {
				return usagef("apps list", "apps list takes no arguments")
			}
			c, err := s.client(ctx)
			if err != nil {
				return err
			}
			out := []appJSON{}
			for a, err := range c.Apps(ctx) {
				if err != nil {
					return err
				}
				j := toAppJSON(a)
				j.Served = !s.notServed()
				out = append(out, j)
			}
			if s.g.json {
				return writeJSON(s.std.Stdout, out)
			}
			t := newTable(s.std.Stdout, "APP", "ACTIVE", "DEPLOYING", "ENDPOINTS")
			for _, a := range out {
				eps := ""
				for _, p := range sortedKeys(a.Endpoints) {
					if eps != "" {
						eps += " "
					}
					eps += p + "=" + a.Endpoints[p]
				}
				t.row(a.Name, orDash(a.Active), orDash(a.Deploying), orDash(eps))
			}
			t.flush()
			if s.notServed() && slices.ContainsFunc(out, func(a appJSON) bool { return len(a.Endpoints) > 0 }) {
				fmt.Fprintln(s.std.Stderr, "the endpoints are not served: the apps' processes run only while a convox command holds the rack; serve them with: convox serve &")
			}
			return nil
		},
	}
}

// appsInfoCmd is "convox apps info".
func appsInfoCmd() *command {
	return &command{
		name: "apps info", args: "[NAME]", summary: "show an app: releases and endpoints",
		help: "NAME defaults to --app.",
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			name, err := oneNameArg(s, "apps info", args)
			if err != nil {
				return err
			}
			c, err := s.client(ctx)
			if err != nil {
				return err
			}
			app, err := c.App(name).Get(ctx)
			if err != nil {
				return appError(err, name)
			}
			if s.g.json {
				j := toAppJSON(app)
				j.Served = !s.notServed()
				return writeJSON(s.std.Stdout, j)
			}
			w := s.std.Stdout
			fmt.Fprintf(w, "app           %s\n", app.Name)
			fmt.Fprintf(w, "active        %s\n", orDash(app.Active))
			fmt.Fprintf(w, "last healthy  %s\n", orDash(app.LastHealthy))
			fmt.Fprintf(w, "latest        %s\n", orDash(app.Latest))
			if app.Deploying != "" {
				fmt.Fprintf(w, "deploying     %s\n", app.Deploying)
			}
			fmt.Fprintf(w, "created       %s\n", app.Created.Local().Format("2006-01-02 15:04:05"))
			for _, p := range sortedKeys(app.Endpoints) {
				note := ""
				if s.notServed() {
					note = " (not served)"
				}
				fmt.Fprintf(w, "endpoint      %s %s%s\n", p, app.Endpoints[p], note)
			}
			if s.notServed() && len(app.Endpoints) > 0 {
				fmt.Fprintln(s.std.Stderr, notServedHint(app.Name))
			}
			return nil
		},
	}
}

// appsDeleteOpts are the flags of apps delete.
type appsDeleteOpts struct{ yes bool }

// appsDeleteCmd is "convox apps delete".
func appsDeleteCmd() *command {
	return &command{
		name: "apps delete", args: "NAME [--yes]", summary: "delete an app, its processes, routes, logs and releases",
		help: `NAME is required (--app is not used), so that a delete is always explicit.
On a terminal, apps delete asks you to type the app's name; --yes deletes
without asking. Without a terminal (a script, CI) it fails unless --yes is
given.`,
		flags: func(fs *flag.FlagSet) any {
			o := &appsDeleteOpts{}
			fs.BoolVar(&o.yes, "yes", false, "delete without asking")
			return o
		},
		confirm: func(args []string, opts any) (string, string, bool) {
			if len(args) != 1 || opts.(*appsDeleteOpts).yes {
				return "", "", false
			}
			return fmt.Sprintf("Delete app %s with its processes, routes, logs and every release?", quoteName(args[0])), args[0], true
		},
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) != 1 {
				return usagef("apps delete", "apps delete needs exactly one app name")
			}
			name := args[0]
			c, err := s.client(ctx)
			if err != nil {
				return err
			}
			err = c.DeleteApp(ctx, name)
			switch {
			case errors.Is(err, providers.ErrNotFound):
				return appError(err, name)
			case errors.Is(err, providers.ErrConflict):
				return withHint(err, "a deploy is in progress; stop it with: convox cancel --app %s", name)
			case err != nil:
				return err
			}
			if s.g.json {
				return writeJSON(s.std.Stdout, map[string]string{"deleted": name})
			}
			fmt.Fprintf(s.std.Stdout, "deleted app %s\n", name)
			return nil
		},
	}
}

// oneNameArg returns the single positional app name, or --app.
func oneNameArg(s *session, cmd string, args []string) (string, error) {
	switch len(args) {
	case 0:
		return s.appName(cmd)
	case 1:
		return args[0], nil
	}
	return "", usagef(cmd, "%s takes one app name, got %d arguments", cmd, len(args))
}
