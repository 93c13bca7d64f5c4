package convox

import (
	"context"
	"fmt"
	"strings"

	"github.com/convox-go/convox/providers"
)

// Input bounds. The rules and their limits live in package providers
// (providers.Limits and the Validate methods), where every scheduler
// checks them on entry too; the root checks the same rules with the
// bounds of the app's scheduler before it writes anything or calls a
// provider, so that bad input is an providers.ErrInvalid without a side effect.

// limits returns the bounds of the selection's scheduler: its own when it
// implements providers.Bounded, the defaults otherwise.
func (s selection) limits() providers.Limits {
	if b, ok := s.scheduler.(providers.Bounded); ok {
		return b.Limits().WithDefaults()
	}
	return providers.DefaultLimits()
}

// precheck validates spec for app before a group deploy starts, with the
// bounds of the app's scheduler. An app that cannot be loaded is left to
// its own deploy, which reports why.
func (c *Client) precheck(ctx context.Context, app string, spec ReleaseSpec) error {
	if err := providers.ValidateName("app", app, providers.MaxAppName); err != nil {
		return err
	}
	doc, err := c.loadApp(ctx, app)
	if err != nil {
		return nil
	}
	sel, err := c.rack.selectFor(doc.Spec)
	if err != nil {
		return nil
	}
	return validateSpec(app, spec, sel.limits())
}

// validateSpec checks a release spec against lim before anything is read
// beyond the app and its providers.
func validateSpec(app string, s ReleaseSpec, lim providers.Limits) error {
	if len(s.Image) > providers.MaxImageRef {
		return providers.Invalidf("image reference is %d bytes; the limit is %d", len(s.Image), providers.MaxImageRef)
	}
	if s.Image != "" && strings.ContainsFunc(s.Image, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return providers.Invalidf("image reference %q contains whitespace or a control character", s.Image)
	}
	if err := providers.ValidateDescription(s.Description); err != nil {
		return err
	}
	if n := len(s.Env) + len(s.Secrets); n > lim.MaxEnvVars {
		return providers.Invalidf("the spec has %d variables; the limit is %d", n, lim.MaxEnvVars)
	}
	env := make(map[string]string, len(s.Env)+len(s.Secrets))
	for k, v := range s.Env {
		if _, ok := s.Secrets[k]; ok {
			return providers.Invalidf("variable %q is both plain and secret", k)
		}
		env[k] = v
	}
	for k, v := range s.Secrets {
		env[k] = string(v)
	}
	if err := lim.ValidateEnv(env); err != nil {
		return err
	}
	if s.Processes != nil {
		return validateProcesses(app, s.Processes, lim)
	}
	return nil
}

// validateProcesses checks a formation: the shared rules of
// providers.Limits.ValidateFormation and the root's route settings.
func validateProcesses(app string, ps []Process, lim providers.Limits) error {
	pps := make([]providers.Process, 0, len(ps))
	for _, p := range ps {
		pps = append(pps, p.provider())
	}
	if err := lim.ValidateFormation(app, pps); err != nil {
		return err
	}
	for _, p := range ps {
		if err := p.Route.Protocol.Validate(); err != nil {
			return fmt.Errorf("process %s: %w", p.Name, err)
		}
		if (p.Route.Protocol == providers.HTTPS || p.Route.Protocol == providers.HTTP2) && p.Route.Certificate == "" {
			return providers.Invalidf("process %s: protocol %s needs a certificate", p.Name, p.Route.Protocol)
		}
		if p.Route.DeregistrationDelay < 0 || p.Route.DeregistrationDelay > providers.MaxDeregistrationDelay {
			return providers.Invalidf("process %s: deregistration delay %s is not between 0 and %s", p.Name, p.Route.DeregistrationDelay, providers.MaxDeregistrationDelay)
		}
		for _, f := range []struct{ name, v string }{{"host", p.Route.Host}, {"path", p.Route.Path}, {"certificate", p.Route.Certificate}} {
			if len(f.v) > providers.MaxRouteField {
				return providers.Invalidf("process %s: route %s is %d bytes; the limit is %d", p.Name, f.name, len(f.v), providers.MaxRouteField)
			}
		}
	}
	return nil
}

// validate checks the release as it would run — including what it copied
// from an earlier release — against lim: its environment and formation.
func (r *releaseDoc) validate(lim providers.Limits) error {
	env := make(map[string]string, len(r.Env))
	for k, v := range r.Env {
		env[k] = v.Value
	}
	if err := lim.ValidateEnv(env); err != nil {
		return err
	}
	if err := validateProcesses(r.App, r.Processes, lim); err != nil {
		return err
	}
	return providers.ValidateDescription(r.Description)
}

// describeKeys renders a generated description such as "env set A B",
// shortened to fit providers.MaxDescription ("env set A B and 3 more").
func describeKeys(prefix string, keys []string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i, k := range keys {
		k = " " + k
		// Keep room for what must follow key i: " and N more" after any
		// but the last.
		reserve := ""
		if i < len(keys)-1 {
			reserve = fmt.Sprintf(" and %d more", len(keys)-i-1)
		}
		if b.Len()+len(k)+len(reserve) > providers.MaxDescription {
			fmt.Fprintf(&b, " and %d more", len(keys)-i)
			return b.String()
		}
		b.WriteString(k)
	}
	return b.String()
}
