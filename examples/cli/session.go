package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/convox-go/convox"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/local"
)

// session is the state of one command: its flags, its stdio and, once a
// command asks for it, a client on the rack.
type session struct {
	g   *globals
	std stdio
	// held is the rack of the process this command was forwarded to.
	held *holder
	// own is the local rack this command opened; closed with the session.
	own *holder
	// cmd is the command's name ("env set").
	cmd string
	// serving is set by serve: the rack is opened to be held, never to
	// forward to another holder.
	serving bool
	// rackLog receives the local rack's diagnostics; nil discards them.
	rackLog *slog.Logger

	c *convox.Client
	// events receives the client's events while a deploy is shown.
	events atomic.Pointer[progress]
}

// isLocal reports whether the session deploys on the local rack.
func (s *session) isLocal() bool { return s.g.rack == "local" }

// rackDir returns the local rack's directory, resolved against the
// caller's working directory.
func (s *session) rackDir() string {
	return s.path(s.g.rackDir)
}

// path resolves p against the caller's working directory.
func (s *session) path(p string) string {
	if filepath.IsAbs(p) || s.std.Dir == "" {
		return p
	}
	return filepath.Join(s.std.Dir, p)
}

// client returns the session's client, opening the rack on first use.
func (s *session) client(ctx context.Context) (*convox.Client, error) {
	if s.c != nil {
		return s.c, nil
	}
	var rack convox.Rack
	switch {
	case s.held != nil:
		rack = s.held.providers()
	case s.g.rack == "aws":
		r, err := openAWS(ctx, s.std.Getenv)
		if err != nil {
			return nil, err
		}
		rack = r
	default:
		h, err := openHolder(ctx, s.rackDir(), s.cmd, s.std.Stderr, s.g.wait, s.serving, s.rackLog)
		if err != nil {
			return nil, err
		}
		s.own = h
		rack = h.providers()
	}
	opts := &convox.Options{OnEvent: func(e convox.Event) {
		if p := s.events.Load(); p != nil {
			p.event(e)
		}
	}}
	if s.isLocal() {
		// Everything is on this machine: observe often.
		opts.PollInterval, opts.MaxPollInterval = 250*time.Millisecond, time.Second
	}
	c, err := convox.New(rack, opts)
	if err != nil {
		return nil, err
	}
	s.c = c
	return c, nil
}

// close releases the rack this session opened.
func (s *session) close() error {
	if s.own != nil {
		return s.own.close()
	}
	return nil
}

// appName returns the app the command is about, or a usage error.
func (s *session) appName(cmd string) (string, error) {
	if s.g.app == "" {
		return "", usagef(cmd, "no app given: use --app NAME (or -a NAME, or set CONVOX_APP)")
	}
	return s.g.app, nil
}

// app returns a client of the command's app after checking that the app
// exists, so that a missing app is reported with what to do.
func (s *session) app(ctx context.Context, cmd string) (*convox.AppClient, error) {
	name, err := s.appName(cmd)
	if err != nil {
		return nil, err
	}
	c, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.App(name).Get(ctx); err != nil {
		return nil, appError(err, name)
	}
	return c.App(name), nil
}

// appError explains a failed lookup of an app.
func appError(err error, name string) error {
	if errors.Is(err, providers.ErrNotFound) {
		return withHint(notFoundf("app %q not found", name), "create it with: convox apps create %s", name)
	}
	return err
}

// releaseError explains a failed lookup of a release.
func releaseError(err error, app string) error {
	if errors.Is(err, providers.ErrNotFound) {
		return withHint(err, "list the releases with: convox releases list --app %s", app)
	}
	return err
}

// notServed reports whether the command opened the local rack itself: the
// apps' processes then run only until it exits, and nothing serves them
// after it.
func (s *session) notServed() bool {
	return s.isLocal() && s.own != nil && s.held == nil && !s.serving
}

// notServedHint says how to serve the app of a command that opened the
// local rack itself.
func notServedHint(app string) string {
	return fmt.Sprintf("%s is not being served: its processes run only while a convox command holds the rack; serve it with: convox serve &", app)
}

// noRelease is the error of a command that needs a release of an app that
// has none.
func noRelease(app string) error {
	return withHint(notFoundf("app %s has no release yet", quoteName(app)), "deploy one first: convox build DIR --app %s --tag v1, then convox deploy %s:v1 --app %s", app, app, app)
}

// localRack returns the open local rack; the session's client must have
// been created.
func (s *session) localRack() *local.Rack {
	if s.held != nil {
		return s.held.rack
	}
	return s.own.rack
}
