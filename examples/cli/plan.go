package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
)

// planCmdOpts are the flags of plan: those of deploy that shape the release.
type planCmdOpts struct {
	deployCmdOpts
}

// planCmd is "convox plan".
func planCmd() *command {
	return &command{
		name: "plan", args: "IMAGE [flags]", summary: "show what deploying an image would change, without changing anything",
		help: `Shows what "convox deploy IMAGE" with the same flags would change from the
active release: image, environment names (never values) and processes. On a
rack whose scheduler plans its own changes (apps as CloudFormation stacks),
it also lists what the platform would do to each resource (added, removed,
modified, replaced or possibly replaced). Nothing is created, deployed or
left behind.`,
		flags: func(fs *flag.FlagSet) any {
			o := &planCmdOpts{deployCmdOpts{fs: fs}}
			fs.StringVar(&o.process, "process", "web", "the process type --port and --health configure")
			fs.IntVar(&o.port, "port", 8080, "the port the process listens on, given to it as $PORT (0: not routed)")
			fs.StringVar(&o.health, "health", "/", "the HTTP `PATH` of the process's health check")
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*planCmdOpts)
			if len(args) != 1 {
				return usagef("plan", "plan needs one image reference, e.g. convox plan web:v2")
			}
			if o.port < 0 || o.port > 65535 {
				return usagef("plan", "--port %d is out of range", o.port)
			}
			a, err := s.app(ctx, "plan")
			if err != nil {
				return err
			}
			spec := convox.ReleaseSpec{Image: args[0]}
			set := map[string]bool{}
			o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if spec.Processes, err = s.formation(ctx, a, &o.deployCmdOpts, set); err != nil {
				return err
			}
			plan, err := a.Plan(ctx, spec)
			if err != nil {
				return explainDeploy(err, a.Name(), "deploy")
			}
			if s.g.json {
				return writeJSON(s.std.Stdout, toPlanJSON(plan))
			}
			printPlan(s.std.Stdout, fmt.Sprintf("%s → %s", orDash(plan.From), args[0]), plan)
			return nil
		},
	}
}

// printPlan writes the plan's summary line after header, then one line per
// change: image, environment names, process fields and platform resources.
func printPlan(w io.Writer, header string, plan *convox.Plan) {
	fmt.Fprintf(w, "%s: %s\n", header, plan)
	if plan.Image != nil {
		fmt.Fprintf(w, "  image  %s → %s\n", plan.Image.From, plan.Image.To)
	}
	for _, e := range plan.Env {
		sign := map[convox.ChangeKind]string{convox.Added: "+", convox.Removed: "-", convox.Changed: "~"}[e.Kind]
		secret := ""
		if e.Secret {
			secret = " (secret)"
		}
		fmt.Fprintf(w, "  env    %s%s %s%s\n", sign, e.Name, e.Kind, secret)
	}
	for _, pc := range plan.Processes {
		if pc.Kind != convox.Changed {
			fmt.Fprintf(w, "  %s  %s\n", pc.Name, pc.Kind)
			continue
		}
		for _, f := range pc.Fields {
			fmt.Fprintf(w, "  %s  %s %s → %s\n", pc.Name, f.Field, f.From, f.To)
		}
	}
	for _, r := range plan.Resources {
		line := fmt.Sprintf("  resource  %s %s (%s)", r.Action, r.Resource, r.Type)
		switch r.Replacement {
		case providers.ReplacementYes:
			line += ", replaced"
		case providers.ReplacementConditional:
			line += ", possibly replaced"
		}
		if len(r.Scopes) > 0 {
			line += ": " + strings.Join(r.Scopes, ", ")
		}
		fmt.Fprintln(w, line)
	}
}
