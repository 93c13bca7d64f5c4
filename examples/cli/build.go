package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/convox-go/convox/goimage"
)

// buildOpts are the flags of build.
type buildOpts struct{ tag string }

// buildJSON is the outcome of build.
type buildJSON struct {
	App    string `json:"app"`
	Image  string `json:"image"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
}

// buildCmd is "convox build".
func buildCmd() *command {
	return &command{
		name: "build", args: "DIR [--tag TAG]", summary: "build a Go main package into an image in the rack's registry",
		help: `Compiles the Go main package in DIR (CGO disabled, so the binary is static)
and wraps it into a one-layer OCI image, without Docker: the binary is
/app/server, the image's entrypoint, and /app is on the image's PATH (so
"convox run web -- server ARGS" runs it). The image is pushed to the rack's
registry as APP:TAG; deploy it with "convox deploy APP:TAG".

TAG defaults to the first 12 hex digits of the image digest, so building
unchanged source gives the same tag. The app must exist. Needs the go
command and the local rack.`,
		flags: func(fs *flag.FlagSet) any {
			o := &buildOpts{}
			fs.StringVar(&o.tag, "tag", "", "the image `TAG` (default: from the image digest)")
			return o
		},
		run: func(ctx context.Context, s *session, args []string, opts any) error {
			o := opts.(*buildOpts)
			if len(args) != 1 {
				return usagef("build", "build needs the directory of a Go main package, e.g. convox build ./app")
			}
			app, err := s.appName("build")
			if err != nil {
				return err
			}
			if !s.isLocal() {
				return withHint(errors.New("build pushes to the local rack's registry only"), "on AWS, push an image to the app's ECR repository with docker or crane, then run convox deploy")
			}
			dir := s.path(args[0])
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return usagef("build", "%s is not a directory", args[0])
			}
			status := s.std.Stdout
			if s.g.json {
				status = s.std.Stderr
			}
			tty := s.std.TTY && !s.g.json
			if _, err := s.app(ctx, "build"); err != nil {
				return err
			}
			done := activity(status, tty, fmt.Sprintf("building %s (go build; the first build takes a minute or more)", args[0]), "building")
			img, err := goimage.Build(ctx, dir, nil)
			if err != nil {
				done("build failed")
				return err
			}
			m, err := img.Manifest()
			if err != nil {
				return err
			}
			var size int64
			for _, l := range m.Layers {
				size += l.Size
			}
			done(fmt.Sprintf("done, %s compressed", megabytes(size)))
			tag := o.tag
			if tag == "" {
				d, err := img.Digest()
				if err != nil {
					return err
				}
				tag = d.Hex[:12]
			}
			rack := s.localRack()
			done = activity(status, tty, fmt.Sprintf("pushing %s:%s (%s) to the local rack's registry", app, tag, megabytes(imageSize(img))), "pushing")
			pushed, err := rack.Registry().PushImage(ctx, app, tag, img)
			if err != nil {
				done("push failed")
				return err
			}
			done("done")
			ref := app + ":" + tag
			if s.g.json {
				return writeJSON(s.std.Stdout, buildJSON{App: app, Image: ref, Tag: tag, Digest: pushed.Digest})
			}
			fmt.Fprintf(s.std.Stdout, "pushed %s (%s)\ndeploy it with: convox deploy %s --app %s\n", ref, pushed.Digest, ref, app)
			return nil
		},
	}
}
