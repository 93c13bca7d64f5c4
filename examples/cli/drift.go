package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/convox-go/convox/providers"
)

// driftJSON is the --json document of drift: the app's resources changed
// outside the SDK, property paths only, never values.
type driftJSON struct {
	App string `json:"app"`
	// Drifted is true when any resource differs.
	Drifted   bool                `json:"drifted"`
	Resources []resourceDriftJSON `json:"resources"`
}

// resourceDriftJSON is one drifted resource.
type resourceDriftJSON struct {
	Resource string `json:"resource"`
	Type     string `json:"type"`
	// Status is "MODIFIED" or "DELETED".
	Status string `json:"status"`
	// Properties are the differing properties' paths, each with how it
	// differs ("/DesiredCount NOT_EQUAL").
	Properties []string `json:"properties"`
}

func toDriftJSON(app string, drifts []providers.ResourceDrift) driftJSON {
	out := driftJSON{App: app, Drifted: len(drifts) > 0, Resources: []resourceDriftJSON{}}
	for _, d := range drifts {
		props := d.Properties
		if props == nil {
			props = []string{}
		}
		out.Resources = append(out.Resources, resourceDriftJSON{Resource: d.Resource, Type: d.Type, Status: d.Status, Properties: props})
	}
	return out
}

// driftCmd is "convox drift".
func driftCmd() *command {
	return &command{
		name: "drift", args: "[APP]", summary: "show the app's resources changed outside convox (stack mode)",
		help: `Asks the platform which of the app's resources differ from what the last
deploy applied (a service scaled by hand, a rule deleted in the console) and
lists them with the paths of the differing properties, never their values.
APP defaults to --app. Nothing is changed.

It needs a rack whose apps are CloudFormation stacks (--rack aws with
CONVOX_AWS_MODE=stack, see "convox help aws"), whose drift detection it
runs; on any other rack it fails with exit code 1 (--json error code
"unimplemented") before calling the platform. Drift found or not, a
completed detection exits 0; --json's "drifted" says which.`,
		run: func(ctx context.Context, s *session, args []string, _ any) error {
			name, err := oneNameArg(s, "drift", args)
			if err != nil {
				return err
			}
			c, err := s.client(ctx)
			if err != nil {
				return err
			}
			a := c.App(name)
			if _, err := a.Get(ctx); err != nil {
				return appError(err, name)
			}
			drifts, err := a.Drift(ctx)
			if errors.Is(err, providers.ErrUnimplemented) {
				return withHint(err, "drift detection needs apps kept as CloudFormation stacks: --rack aws with CONVOX_AWS_MODE=stack (see convox help aws)")
			}
			if err != nil {
				return err
			}
			j := toDriftJSON(a.Name(), drifts)
			if s.g.json {
				return writeJSON(s.std.Stdout, j)
			}
			printDrift(s.std.Stdout, j)
			return nil
		},
	}
}

// printDrift writes a table of the drifted resources, or says that none
// drifted.
func printDrift(w io.Writer, d driftJSON) {
	if !d.Drifted {
		fmt.Fprintf(w, "%s: no drift: every resource is as the last deploy left it\n", quoteName(d.App))
		return
	}
	t := newTable(w, "RESOURCE", "TYPE", "STATUS", "PROPERTIES")
	for _, r := range d.Resources {
		t.row(r.Resource, r.Type, r.Status, orDash(strings.Join(r.Properties, ", ")))
	}
	t.flush()
}
