// Package local is the embedded default rack: it runs apps on one machine
// with no cloud account and nothing installed but Go.
//
// Open roots a rack at a directory and returns providers that share state
// and implement the provider interfaces for real:
//
//   - Registry: images in an OCI image layout per repository under
//     registry/, served over the OCI distribution API on 127.0.0.1 so that
//     standard tooling (crane, remote.Write, skopeo) pushes into it and
//     copies out of it.
//   - Scheduler: each process type runs as OS processes from the image's
//     unpacked root file system, with the release environment plus PORT
//     (a port below the OS's ephemeral range that no other task of the rack
//     holds; a task that exits because another program took it first is
//     started again on a new port); every blob is verified against its
//     digest as it is read, and layers are unpacked through an os.Root, so
//     no entry, link or whiteout reaches outside the root file system;
//     crashed processes restart with backoff; updates roll (start new, wait
//     healthy, drain and stop old); stops are graceful; a staged release
//     can run beside the serving one for blue/green and canary deploys;
//     a change of bindings alone attaches and detaches the running tasks
//     in place, draining them from the target sets they leave.
//   - Balancer: an HTTP reverse proxy per route on 127.0.0.1 with active
//     health checks, weighted target sets and draining. Beside the default
//     balancer (Rack.Balancer, named BalancerName) a rack can serve
//     additional named ones (Options.Balancers, Rack.BalancerNamed), each
//     with routes of its own; the scheduler binds a process's tasks to
//     routes of any of them, of several at once, so an app moves from one
//     balancer to another with both serving it until the old route goes.
//   - Logs: JSON lines in append-only files per app and stream, with
//     size-based retention.
//   - Store: versioned documents with compare-and-swap in a bbolt file.
//
// Everything persists in the directory: reopening it after the program
// exits or crashes shows the same documents, images and logs, serves the
// same routes and brings every app's last applied processes back (a staged
// release is not persisted: a reopened rack runs the last completed
// rollout of each app, which is what served before the crash). The store
// is the single truth of which release is active: after a crash in the
// middle of a deploy, convox.Client.Recover (or the app's next Promote or
// Cancel) compensates the abandoned deploy, so that what serves is the
// release the store calls active. A corrupt state file is an error naming
// the file, or, where the rack serves on, an error in its log.
//
// The rack is its owner's alone. Open creates the directory with mode 0700,
// tightens one that other users can only read or enter, and refuses one
// that they can write to or that another user owns. The registry's API
// listens on the loopback interface, which every local user reaches, so it
// answers only requests that carry the rack's credential (basic auth,
// Registry.Credentials; the password is in registry/.password, mode 0600),
// pulls included: images often hold secrets, and the rack itself reads them
// from disk. Uploads spool to files in registry/.uploads, at most
// Options.RegistryMaxBlobBytes (10 GiB) per blob and 4 MiB per manifest,
// and an upload left idle for 15 minutes is removed. Blobs and manifests
// are verified against their digests whenever they are read; a corrupt
// one is logged, moved to registry/.corrupt and never served or unpacked.
//
// A directory is used by one open rack at a time (Open fails with
// ErrUnavailable while another program has it open); the Store alone can be
// opened by any number of programs at once with OpenStore.
//
// Programs deploy on the rack through package convox: Rack.ConvoxRack
// gives the convox.Rack of its providers, and package goimage builds a Go
// program into an image to push:
//
//	rack, err := local.Open(dir, nil)
//	if err != nil {
//		return err
//	}
//	defer rack.Close()
//	c, err := convox.New(rack.ConvoxRack(), nil)
//	img, err := goimage.Build(ctx, "./cmd/web", nil)
//	_, err = rack.Registry().PushImage(ctx, "web", "v1", img)
//	_, err = c.CreateApp(ctx, "web", nil)
//	rel, err := c.App("web").Deploy(ctx, convox.ReleaseSpec{
//		Image:     "web:v1",
//		Processes: []convox.Process{{Name: "web", Count: 2, Port: 8080}},
//	}, nil)
//
// The providers can also be driven directly, as package convox does:
//
//	img, err := rack.Registry().PushImage(ctx, "web", "v1", image)
//	route, err := rack.Balancer().EnsureRoute(ctx, providers.RouteSpec{App: "web", Process: "web", Port: 8080})
//	_, err = rack.Scheduler().Apply(ctx, providers.Desired{
//		App: "web", Release: "R1", Token: "t1", Image: img,
//		Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}},
//		Bindings:  map[string][]providers.Binding{"web": {route.Binding}},
//	})
//	// GET route.Endpoint reaches the app once the rollout completes.
//
// Moving the app to a second balancer applies the same release with the
// routes of both, then with the new one only; no task restarts and no
// request fails:
//
//	rack, err := local.Open(dir, &local.Options{Balancers: []string{"alb"}})
//	alb, err := rack.BalancerNamed("alb")
//	next, err := alb.EnsureRoute(ctx, providers.RouteSpec{App: "web", Process: "web", Port: 8080})
//	d := providers.Desired{
//		App: "web", Release: "R1", Token: "t2", Image: img,
//		Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}},
//		Bindings:  map[string][]providers.Binding{"web": {route.Binding, next.Binding}},
//	}
//	_, err = rack.Scheduler().Apply(ctx, d) // both endpoints serve
//	d.Token, d.Bindings = "t3", map[string][]providers.Binding{"web": {next.Binding}}
//	_, err = rack.Scheduler().Apply(ctx, d) // the old route's targets drain
package local
