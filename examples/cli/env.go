package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/convox-go/convox"
)

// envList returns a release's variables in name order, secrets redacted.
func envList(r *convox.Release) []envJSON {
	out := []envJSON{}
	for _, k := range sortedKeys(r.Env) {
		out = append(out, envJSON{Name: k, Value: r.Env[k]})
	}
	for _, k := range sortedKeys(r.Secrets) {
		out = append(out, envJSON{Name: k, Value: redacted, Secret: true})
	}
	slices.SortFunc(out, func(a, b envJSON) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// envListCmd is "convox env list".
func envListCmd() *command {
	return &command{
		name: "env list", summary: "list the environment of the app's latest release (secrets redacted)",
		help: `Prints KEY=VALUE lines; secret values print as <redacted>. The latest
release is the one the next "env set", "scale" or "deploy" copies.`,
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			if len(args) > 0 {
				return usagef("env list", "env list takes no arguments")
			}
			a, err := s.app(ctx, "env list")
			if err != nil {
				return err
			}
			r, err := latestRelease(ctx, a)
			if err != nil {
				return err
			}
			vars, release := []envJSON{}, ""
			if r != nil {
				vars, release = envList(r), r.ID
			}
			if s.g.json {
				return writeJSON(s.std.Stdout, map[string]any{"app": a.Name(), "release": release, "env": vars})
			}
			for _, v := range vars {
				fmt.Fprintf(s.std.Stdout, "%s=%s\n", v.Name, v.Value)
			}
			return nil
		},
	}
}

// envSetOpts are the flags of env set.
type envSetOpts struct {
	deployOpts
	secret bool
}

// envSetCmd is "convox env set".
func envSetCmd() *command {
	return &command{
		name: "env set", args: "KEY=VALUE... [--secret]", summary: "set variables and deploy the change as a new release",
		help: `With --secret the values are stored as secrets: the app sees them as usual,
but they print as <redacted> everywhere else. A VALUE of "-" reads the value
from standard input (without its trailing newline), keeping it out of the
shell's history:

    convox env set --secret API_TOKEN=- --app web < token.txt`,
		flags: func(fs *flag.FlagSet) any {
			o := &envSetOpts{}
			o.register(fs, false)
			fs.BoolVar(&o.secret, "secret", false, "store the values as secrets")
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*envSetOpts)
			vars, err := parseAssignments(args, s.std.Stdin)
			if err != nil {
				return err
			}
			dopts, err := o.options("env set")
			if err != nil {
				return err
			}
			a, err := s.app(ctx, "env set")
			if err != nil {
				return err
			}
			if _, err := needRelease(ctx, a); err != nil {
				return err
			}
			env, secrets := map[string]string{}, map[string]convox.Secret{}
			for k, v := range vars {
				if o.secret {
					secrets[k] = convox.Secret(v)
				} else {
					env[k] = v
				}
			}
			return s.deployAndReport(ctx, a, "env set", func(ctx context.Context) (*convox.Release, error) {
				return a.SetEnv(ctx, env, secrets, dopts)
			})
		},
	}
}

// parseAssignments parses KEY=VALUE arguments; at most one value may be
// "-", read from stdin.
func parseAssignments(args []string, stdin io.Reader) (map[string]string, error) {
	if len(args) == 0 {
		return nil, usagef("env set", "env set needs at least one KEY=VALUE")
	}
	vars := map[string]string{}
	fromStdin := ""
	for _, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		if !ok || k == "" {
			return nil, usagef("env set", "%q is not KEY=VALUE", arg)
		}
		if _, dup := vars[k]; dup {
			return nil, usagef("env set", "%s is given twice", k)
		}
		if v == "-" {
			if fromStdin != "" {
				return nil, usagef("env set", "only one value can be read from standard input (%s and %s ask for it)", fromStdin, k)
			}
			fromStdin = k
			if stdin == nil {
				return nil, usagef("env set", "%s=- reads standard input, which is not available", k)
			}
			b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
			if err != nil {
				return nil, fmt.Errorf("read %s from standard input: %w", k, err)
			}
			v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		}
		vars[k] = v
	}
	return vars, nil
}

// envUnsetCmd is "convox env unset".
func envUnsetCmd() *command {
	return &command{
		name: "env unset", args: "KEY...", summary: "remove variables and deploy the change as a new release",
		flags: func(fs *flag.FlagSet) any {
			o := &deployOpts{}
			o.register(fs, false)
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*deployOpts)
			if len(args) == 0 {
				return usagef("env unset", "env unset needs at least one variable name")
			}
			for _, k := range args {
				if strings.Contains(k, "=") {
					return usagef("env unset", "%q: give variable names only, without =VALUE", k)
				}
			}
			dopts, err := o.options("env unset")
			if err != nil {
				return err
			}
			a, err := s.app(ctx, "env unset")
			if err != nil {
				return err
			}
			latest, err := needRelease(ctx, a)
			if err != nil {
				return err
			}
			for _, k := range args {
				_, plain := latest.Env[k]
				_, secret := latest.Secrets[k]
				if !plain && !secret {
					return withHint(notFoundf("app %s has no variable %s (in its latest release, %s)", a.Name(), quoteName(k), latest.ID),
						"see its variables with: convox env list --app %s", a.Name())
				}
			}
			return s.deployAndReport(ctx, a, "env unset", func(ctx context.Context) (*convox.Release, error) {
				return a.UnsetEnv(ctx, args, dopts)
			})
		},
	}
}

// scaleCmd is "convox scale".
func scaleCmd() *command {
	return &command{
		name: "scale", args: "PROCESS=COUNT", summary: "run COUNT instances of a process type (a new release)",
		help: `Deploys a new release, copied from the latest, in which PROCESS runs COUNT
instances, so a rollback restores the formation too. COUNT 0 stops the
process type.`,
		flags: func(fs *flag.FlagSet) any {
			o := &deployOpts{}
			o.register(fs, false)
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*deployOpts)
			process, count, err := parseScale(args)
			if err != nil {
				return err
			}
			dopts, err := o.options("scale")
			if err != nil {
				return err
			}
			a, err := s.app(ctx, "scale")
			if err != nil {
				return err
			}
			latest, err := needRelease(ctx, a)
			if err != nil {
				return err
			}
			var names []string
			for _, p := range latest.Processes {
				names = append(names, p.Name)
			}
			if !slices.Contains(names, process) {
				return withHint(notFoundf("app %s has no process %s (in its latest release, %s)", a.Name(), quoteName(process), latest.ID),
					"its processes: %s; add one with: convox deploy IMAGE --process %s --app %s", strings.Join(names, ", "), process, a.Name())
			}
			return s.deployAndReport(ctx, a, "scale", func(ctx context.Context) (*convox.Release, error) {
				return a.Scale(ctx, process, count, dopts)
			})
		},
	}
}

// needRelease returns the app's latest release, or an error saying that it
// has none yet and how to deploy one.
func needRelease(ctx context.Context, a *convox.AppClient) (*convox.Release, error) {
	latest, err := latestRelease(ctx, a)
	if err != nil {
		return nil, err
	}
	if latest == nil {
		return nil, noRelease(a.Name())
	}
	return latest, nil
}

// parseScale parses the PROCESS=COUNT argument of scale.
func parseScale(args []string) (string, int, error) {
	if len(args) != 1 {
		return "", 0, usagef("scale", "scale needs one PROCESS=COUNT argument, e.g. convox scale web=2")
	}
	process, n, ok := strings.Cut(args[0], "=")
	if !ok || process == "" {
		return "", 0, usagef("scale", "%q is not PROCESS=COUNT, e.g. web=2", args[0])
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 0 {
		return "", 0, usagef("scale", "count %q of %s is not a whole number of 0 or more", n, process)
	}
	return process, count, nil
}
