package convox

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/convox-go/convox/internal/imagecopy"
	"github.com/convox-go/convox/providers"
)

// Migration event types.
const (
	EventMigration EventType = "migration.progress" // see Event.Transfer
	EventMigrated  EventType = "migration.done"
)

// Transfer is the progress of a registry migration.
type Transfer struct {
	Images     int
	ImagesDone int
	// BlobBytes counts the bytes of layers and configs sent so far.
	BlobBytes int64
}

// RegistryMigration reports a registry migration.
type RegistryMigration struct {
	From, To string
	// Images is the number of distinct images the app's releases reference.
	Images int
	// Copied images were sent; Present ones the target already had.
	Copied  int
	Present int
	// BlobBytes is the bytes of layers and configs sent.
	BlobBytes int64
	// Releases is the number of release records rewritten.
	Releases int
}

// MigrateOptions tune a migration. Nil or zero fields take defaults.
type MigrateOptions struct {
	// Concurrency bounds the images copied at once (default 4).
	Concurrency int
	// Transport carries the copy's OCI data-path requests to both
	// registries (nil means go-containerregistry's remote.DefaultTransport).
	// Give it the transport a registry provider was configured with (a
	// proxy, a custom CA, an endpoint override), since the copy talks to
	// the registries directly rather than through their providers.
	Transport http.RoundTripper
}

// repoName returns the repository name of a repository URI ("host:5000/web" → "web").
func repoName(uri string) string {
	first, rest, ok := strings.Cut(uri, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return rest
	}
	return uri
}

// MigrateRegistry moves the app to the rack's registry named to: it copies
// every image referenced by the app's releases from the registry each was
// resolved in, by digest (concurrently; blobs and images the target has are
// not sent again; each copy is verified by digest), rewrites the release
// records so the active release and every rollback target point at the new
// registry, and makes it the app's registry for new releases. Nothing is
// deleted from the old registry.
//
// It is resumable: run it again after an interruption and it skips what
// was done. Rollback keeps working across the move, because the digests
// do not change. Progress is reported as EventMigration events with a
// Transfer. The registries must serve the OCI distribution API at their
// repository URIs (as every registry provider here does), reached through
// MigrateOptions.Transport.
func (a *AppClient) MigrateRegistry(ctx context.Context, to string, opts *MigrateOptions) (*RegistryMigration, error) {
	const op = "MigrateRegistry"
	var o MigrateOptions
	if opts != nil {
		o = *opts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	app, err := a.c.loadApp(ctx, a.name)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	toName, dst, err := a.c.rack.registries.get(to)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	if to == "" {
		return nil, wrapErr(op, a.name, "", providers.Invalidf("name the registry to migrate to"))
	}
	rep := &RegistryMigration{From: app.Spec.Registry, To: toName}
	rels, images, err := a.migrationSources(ctx, toName)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	rep.Images = len(images)
	moved, err := a.copyImages(ctx, images, toName, dst, o, rep)
	if err != nil {
		return rep, wrapErr(op, a.name, "", err)
	}
	if rel, err := a.repoint(ctx, rels, moved, toName, rep); err != nil {
		return rep, wrapErr(op, a.name, rel, err)
	}
	// A release created meanwhile from the old registry is moved by running again.
	for d, err := range a.c.list(ctx, releasePrefix(a.name), false) {
		if err != nil {
			return rep, wrapErr(op, a.name, "", err)
		}
		if r, err := decodeRelease(d); err == nil && r.Registry != toName {
			return a.MigrateRegistry(ctx, to, opts)
		}
	}
	a.c.emit(Event{Type: EventMigrated, App: a.name, Message: fmt.Sprintf("registry %s → %s: %d images (%d copied, %d present), %d bytes, %d releases",
		rep.From, rep.To, rep.Images, rep.Copied, rep.Present, rep.BlobBytes, rep.Releases)})
	return rep, nil
}

// migrationSource is one image to move and the registry it was resolved in.
type migrationSource struct {
	registry string
	image    providers.Image
}

// migrationKey identifies an image to move by its source registry and
// pinned reference.
func migrationKey(registry string, img providers.Image) string { return registry + " " + img.Ref() }

// migrationSources lists the app's releases not yet in registry to and the
// distinct images they reference, by migrationKey. A release resolved in
// a registry the rack no longer has is an error: its image cannot be read.
func (a *AppClient) migrationSources(ctx context.Context, to string) ([]*releaseDoc, map[string]migrationSource, error) {
	var rels []*releaseDoc
	images := map[string]migrationSource{}
	for d, err := range a.c.list(ctx, releasePrefix(a.name), false) {
		if err != nil {
			return nil, nil, err
		}
		r, err := decodeRelease(d)
		if err != nil {
			return nil, nil, err
		}
		if r.Registry == to {
			continue
		}
		if _, _, err := a.c.rack.registries.get(r.Registry); err != nil {
			return nil, nil, fmt.Errorf("release %s was resolved in registry %q: %w", releaseID(r.Seq), r.Registry, err)
		}
		rels = append(rels, r)
		images[migrationKey(r.Registry, r.Image)] = migrationSource{r.Registry, r.Image}
	}
	return rels, images, nil
}

// copyImages copies images into dst, o.Concurrency at a time, counting
// into rep and reporting an EventMigration after each; it returns each
// copy as dst resolves it, by migrationKey.
func (a *AppClient) copyImages(ctx context.Context, images map[string]migrationSource, toName string, dst providers.Registry, o MigrateOptions, rep *RegistryMigration) (map[string]providers.Image, error) {
	moved := map[string]providers.Image{}
	var mu sync.Mutex
	progress := Transfer{Images: len(images)}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, key := range slices.Sorted(maps.Keys(images)) {
		src := images[key]
		g.Go(func() error {
			img, res, err := a.copyImage(gctx, src.registry, src.image, dst, o.Transport)
			if err != nil {
				return err
			}
			mu.Lock()
			moved[key] = img
			if res.Skipped {
				rep.Present++
			} else {
				rep.Copied++
			}
			rep.BlobBytes += res.BlobBytes
			progress.ImagesDone++
			progress.BlobBytes += res.BlobBytes
			p := progress
			mu.Unlock()
			a.c.emit(Event{Type: EventMigration, App: a.name, Transfer: &p,
				Message: fmt.Sprintf("image %s in %s", img.Digest, toName)})
			return nil
		})
	}
	return moved, g.Wait()
}

// repoint points the releases at their copies, then the app at registry
// to. On failure it returns the release it could not rewrite ("" for the
// app document).
func (a *AppClient) repoint(ctx context.Context, rels []*releaseDoc, moved map[string]providers.Image, to string, rep *RegistryMigration) (string, error) {
	for _, r := range rels {
		img := moved[migrationKey(r.Registry, r.Image)]
		if err := a.c.updateRelease(ctx, a.name, releaseID(r.Seq), func(d *releaseDoc) {
			if d.Registry != to {
				d.Image, d.Registry = img, to
			}
		}); err != nil {
			return releaseID(r.Seq), err
		}
		rep.Releases++
	}
	_, err := a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		d.Spec.Registry = to
		return nil
	})
	return "", err
}

// copyImage copies one image into dst and returns it as dst resolves it.
func (a *AppClient) copyImage(ctx context.Context, from string, img providers.Image, dst providers.Registry, rt http.RoundTripper) (providers.Image, imagecopy.Result, error) {
	_, src, err := a.c.rack.registries.get(from)
	if err != nil {
		return providers.Image{}, imagecopy.Result{}, err
	}
	repo := repoName(img.Repository)
	srcCreds, err := src.Credentials(ctx, repo)
	if err != nil {
		return providers.Image{}, imagecopy.Result{}, fmt.Errorf("credentials for %s: %w", img.Repository, err)
	}
	dstRepo, err := dst.EnsureRepository(ctx, repo)
	if err != nil {
		return providers.Image{}, imagecopy.Result{}, fmt.Errorf("ensure repository %s: %w", repo, err)
	}
	dstCreds, err := dst.Credentials(ctx, repo)
	if err != nil {
		return providers.Image{}, imagecopy.Result{}, fmt.Errorf("credentials for %s: %w", dstRepo.URI, err)
	}
	res, err := imagecopy.Copy(ctx,
		imagecopy.Endpoint{Ref: img.Ref(), Username: srcCreds.Username, Password: srcCreds.Password, Transport: rt},
		imagecopy.Endpoint{Ref: dstRepo.URI + "@" + img.Digest, Username: dstCreds.Username, Password: dstCreds.Password, Transport: rt})
	if err != nil {
		return providers.Image{}, res, fmt.Errorf("copy %s: %w", img.Ref(), err)
	}
	moved, err := dst.Resolve(ctx, dstRepo.URI+"@"+img.Digest)
	if err != nil {
		return providers.Image{}, res, fmt.Errorf("resolve the copy of %s: %w", img.Ref(), err)
	}
	if moved.Digest != img.Digest {
		return providers.Image{}, res, fmt.Errorf("the copy of %s resolves to %s: %w", img.Ref(), moved.Digest, providers.ErrConflict)
	}
	moved.Tag = img.Tag
	return moved, res, nil
}

// PruneOptions tune PruneImages. Zero fields take defaults.
type PruneOptions struct {
	// Keep is how many of the newest releases keep their images (default 10).
	Keep int
	// DryRun lists what would be deleted without deleting it.
	DryRun bool
}

// Pruned reports a PruneImages run.
type Pruned struct {
	// Deleted lists the images deleted (or, with DryRun, that would be),
	// oldest release first.
	Deleted []providers.Image
	// Kept lists the images kept and why, by digest.
	Kept   []KeptImage
	DryRun bool
}

// KeptImage is an image PruneImages kept.
type KeptImage struct {
	Digest string
	Reason string
}

// PruneImages deletes from the app's registry the images of its older
// releases, never those of the active release, the last healthy release,
// a release being deployed, or the newest Keep releases. Only images the
// app's own releases reference are considered. The registry must
// implement providers.ImageDeleter; that is checked before anything is
// deleted. Releases whose image was deleted can no longer be rolled back
// to (CheckRollback reports it).
func (a *AppClient) PruneImages(ctx context.Context, opts *PruneOptions) (*Pruned, error) {
	const op = "PruneImages"
	var o PruneOptions
	if opts != nil {
		o = *opts
	}
	if o.Keep <= 0 {
		o.Keep = 10
	}
	app, sel, err := a.load(ctx)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	if err := sel.check(CapImageDeleter); err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	candidates, keepFor, err := a.pruneCandidates(ctx, app, o.Keep)
	if err != nil {
		return nil, wrapErr(op, a.name, "", err)
	}
	res := &Pruned{DryRun: o.DryRun}
	seen := map[string]bool{}
	for _, img := range candidates {
		if keepFor[img.Digest] != "" || seen[img.Digest] {
			continue
		}
		seen[img.Digest] = true
		res.Deleted = append(res.Deleted, img)
	}
	for _, d := range slices.Sorted(maps.Keys(keepFor)) {
		res.Kept = append(res.Kept, KeptImage{Digest: d, Reason: keepFor[d]})
	}
	if !o.DryRun {
		del := sel.registry.(providers.ImageDeleter)
		for _, img := range res.Deleted {
			if err := del.DeleteImage(ctx, repoName(img.Repository), img.Digest); err != nil {
				return res, wrapErr(op, a.name, "", fmt.Errorf("delete %s: %w", img.Ref(), err))
			}
		}
	}
	return res, nil
}

// pruneCandidates walks the app's releases in the app's registry, newest
// first, and returns the images of the releases PruneImages may delete
// (oldest release first, possibly repeated) and, by digest, why an image
// must be kept: it belongs to the active, last healthy or deploying
// release, or to one of the newest keep releases.
func (a *AppClient) pruneCandidates(ctx context.Context, app *appDoc, keep int) ([]providers.Image, map[string]string, error) {
	protect := map[string]string{}
	if app.Lease != nil {
		protect[app.Lease.Release] = "being deployed"
	}
	if app.LastHealthy != "" {
		protect[app.LastHealthy] = "last healthy release"
	}
	if app.Active != "" {
		protect[app.Active] = "active release"
	}
	keepFor := map[string]string{} // digest → reason
	var candidates []providers.Image
	n := 0
	for d, err := range a.c.list(ctx, releasePrefix(a.name), true) {
		if err != nil {
			return nil, nil, err
		}
		r, err := decodeRelease(d)
		if err != nil {
			return nil, nil, err
		}
		n++
		id := releaseID(r.Seq)
		switch {
		case r.Registry != app.Spec.Registry:
			continue // in another registry
		case protect[id] != "":
			keepFor[r.Image.Digest] = fmt.Sprintf("%s (%s)", protect[id], id)
		case n <= keep:
			if keepFor[r.Image.Digest] == "" {
				keepFor[r.Image.Digest] = fmt.Sprintf("one of the newest %d releases (%s)", keep, id)
			}
		default:
			candidates = append(candidates, r.Image)
		}
	}
	slices.Reverse(candidates) // oldest first
	return candidates, keepFor, nil
}

// SwitchLogs makes the app use the rack's logs backend named name: new
// platform events are written there and Logs reads from it. It is the
// switch step of a logs migration (see package providers/logtee, whose Tee
// writes to both backends and reads across them); the scheduler's own log
// routing is the scheduler's configuration.
func (a *AppClient) SwitchLogs(ctx context.Context, name string) error {
	const op = "SwitchLogs"
	n, _, err := a.c.rack.logs.get(name)
	if err != nil {
		return wrapErr(op, a.name, "", err)
	}
	if name == "" {
		return wrapErr(op, a.name, "", providers.Invalidf("name the logs backend to switch to"))
	}
	_, err = a.c.updateApp(ctx, a.name, func(d *appDoc) error {
		d.Spec.Logs = n
		return nil
	})
	if err != nil {
		return wrapErr(op, a.name, "", err)
	}
	a.c.emit(Event{Type: EventMigrated, App: a.name, Message: "logs now go to " + n})
	return nil
}
