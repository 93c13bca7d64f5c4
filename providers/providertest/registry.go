package providertest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// RegistryHarness supplies a registry and a way to put images into it,
// which the Registry interface leaves to the OCI data path.
type RegistryHarness struct {
	// New returns the registry under test. It is called once per case and
	// may return a shared registry: every case uses repositories of its own.
	New func(t *testing.T) providers.Registry
	// Push stores a new image in repo, a repository already created with
	// reg.EnsureRepository (repo is the name given to it), points tag at it
	// and returns its manifest digest. Every call must push an image with
	// content of its own, so that no two calls return the same digest: a
	// fake can vary the configuration, a real registry a small layer.
	Push func(t *testing.T, reg providers.Registry, repo, tag string) (digest string)
}

// missingDigest is a well-formed digest no image has.
const missingDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// TestRegistry checks the providers.Registry contract, and the
// ImageLister and ImageDeleter contracts when the registry implements
// them.
//
// Each rule group is a subtest of its own (EnsureRepository, Resolve,
// Credentials, Concurrency, Context, ImageLister, ImageDeleter), runnable
// alone with -run.
func TestRegistry(t *testing.T, h RegistryHarness) {
	s := registrySuite{h}
	t.Run("EnsureRepository", s.testEnsureRepository)
	t.Run("Resolve", s.testResolve)
	t.Run("Credentials", s.testCredentials)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("Context", s.testContext)
	t.Run("ImageLister", s.testImageLister)
	t.Run("ImageDeleter", s.testImageDeleter)
}

// registrySuite is the harness the Registry rule groups share.
type registrySuite struct{ RegistryHarness }

// setup returns the registry and a repository of the case's own, whose
// images are deleted when the case ends if the registry can.
func (h registrySuite) setup(t *testing.T) (providers.Registry, providers.Repository) {
	reg := h.New(t)
	repo, err := reg.EnsureRepository(t.Context(), uniqueName())
	must(t, "EnsureRepository", err)
	if d, ok := reg.(providers.ImageDeleter); ok {
		t.Cleanup(func() { deleteImages(reg, d, repo.Name) })
	}
	return reg, repo
}

// pinned is what a resolved reference pins: the image's repository and
// digest.
type pinned struct{ Repository, Digest string }

func pin(img providers.Image) pinned { return pinned{img.Repository, img.Digest} }

func (h registrySuite) testEnsureRepository(t *testing.T) {
	t.Run("is idempotent", func(t *testing.T) {
		reg := h.New(t)
		name := uniqueName()
		first, err := reg.EnsureRepository(t.Context(), name)
		must(t, "first EnsureRepository", err)
		second, err := reg.EnsureRepository(t.Context(), name)
		must(t, "second EnsureRepository", err)
		if diff := cmp.Diff(first, second); diff != "" {
			t.Errorf("second EnsureRepository (-first +second):\n%s", diff)
		}
		if first.Name != name || first.URI == "" {
			t.Errorf("EnsureRepository(%q) = %+v, want Name %q and a URI", name, first, name)
		}
	})

	t.Run("invalid names return ErrInvalid", func(t *testing.T) {
		reg := h.New(t)
		for _, name := range []string{"", "Upper", "has space", "-leading", "trailing-", "double//slash", "colon:name", "at@name"} {
			_, err := reg.EnsureRepository(t.Context(), name)
			wantErr(t, "EnsureRepository("+name+")", err, providers.ErrInvalid)
		}
	})
}

func (h registrySuite) testResolve(t *testing.T) {
	t.Run("a tag resolves to the pushed image", func(t *testing.T) {
		reg, repo := h.setup(t)
		digest := h.Push(t, reg, repo.Name, "v1")
		img, err := reg.Resolve(t.Context(), repo.Name+":v1")
		must(t, "Resolve", err)
		want := providers.Image{Repository: repo.URI, Digest: digest, Tag: "v1"}
		got := providers.Image{Repository: img.Repository, Digest: img.Digest, Tag: img.Tag}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Resolve (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(repo.URI+"@"+digest, img.Ref()); diff != "" {
			t.Errorf("Ref (-want +got):\n%s", diff)
		}
	})

	t.Run("every reference form pins the same image", func(t *testing.T) {
		reg, repo := h.setup(t)
		digest := h.Push(t, reg, repo.Name, "v1")
		want := pinned{repo.URI, digest}
		for _, ref := range []string{
			repo.Name + ":v1",
			repo.URI + ":v1",
			repo.Name + "@" + digest,
			repo.URI + "@" + digest,
		} {
			img, err := reg.Resolve(t.Context(), ref)
			if err != nil {
				t.Errorf("Resolve(%q): %v", ref, err)
				continue
			}
			if diff := cmp.Diff(want, pin(img)); diff != "" {
				t.Errorf("Resolve(%q) (-want +got):\n%s", ref, diff)
			}
		}
	})

	t.Run("a re-pushed tag resolves to the new image", func(t *testing.T) {
		reg, repo := h.setup(t)
		first := h.Push(t, reg, repo.Name, "v1")
		img, err := reg.Resolve(t.Context(), repo.Name+":v1")
		must(t, "Resolve before the re-push", err)
		if diff := cmp.Diff(pinned{repo.URI, first}, pin(img)); diff != "" {
			t.Errorf("Resolve before the re-push (-want +got):\n%s", diff)
		}
		second := h.Push(t, reg, repo.Name, "v1")
		if first == second {
			t.Fatalf("harness Push returned digest %s twice; every push must have content of its own", first)
		}
		img, err = reg.Resolve(t.Context(), repo.Name+":v1")
		must(t, "Resolve", err)
		if diff := cmp.Diff(pinned{repo.URI, second}, pin(img)); diff != "" {
			t.Errorf("Resolve after re-push (-want +got):\n%s", diff)
		}
		old, err := reg.Resolve(t.Context(), repo.Name+"@"+first)
		must(t, "Resolve of the first image by digest", err)
		if diff := cmp.Diff(pinned{repo.URI, first}, pin(old)); diff != "" {
			t.Errorf("Resolve of the untagged image by digest (-want +got):\n%s", diff)
		}
	})

	t.Run("missing repository, tag or digest returns ErrNotFound", func(t *testing.T) {
		reg, repo := h.setup(t)
		h.Push(t, reg, repo.Name, "v1")
		for _, ref := range []string{
			uniqueName() + ":v1",
			repo.Name + ":missing",
			repo.Name + "@" + missingDigest,
			repo.URI + ":missing",
		} {
			_, err := reg.Resolve(t.Context(), ref)
			wantErr(t, "Resolve("+ref+")", err, providers.ErrNotFound)
		}
	})

	t.Run("malformed references return ErrInvalid", func(t *testing.T) {
		reg, repo := h.setup(t)
		for _, ref := range []string{
			"",
			repo.Name + ":",
			repo.Name + ":bad tag",
			repo.Name + "@sha256:nothex",
			repo.Name + "@md5:0123",
			"UPPER:v1",
			"@" + missingDigest,
		} {
			_, err := reg.Resolve(t.Context(), ref)
			wantErr(t, "Resolve("+ref+")", err, providers.ErrInvalid)
		}
	})
}

func (h registrySuite) testCredentials(t *testing.T) {
	t.Run("an ensured repository has credentials that have not expired", func(t *testing.T) {
		reg, repo := h.setup(t)
		c, err := reg.Credentials(t.Context(), repo.Name)
		must(t, "Credentials", err)
		if !c.Expires.IsZero() && !c.Expires.After(time.Now()) {
			t.Errorf("Credentials expire at %v, already past", c.Expires)
		}
	})
}

func (h registrySuite) testConcurrency(t *testing.T) {
	t.Run("concurrent EnsureRepository of one name all return it", func(t *testing.T) {
		reg := h.New(t)
		name := uniqueName()
		const callers = 10
		got := make([]providers.Repository, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				var err error
				got[i], err = reg.EnsureRepository(t.Context(), name)
				if err != nil {
					t.Errorf("EnsureRepository %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		for i := 1; i < callers; i++ {
			if diff := cmp.Diff(got[0], got[i]); diff != "" {
				t.Errorf("caller %d (-caller 0 +caller %d):\n%s", i, i, diff)
			}
		}
	})
}

func (h registrySuite) testContext(t *testing.T) {
	t.Run("canceled context fails every method with context.Canceled", func(t *testing.T) {
		reg, repo := h.setup(t)
		digest := h.Push(t, reg, repo.Name, "v1")
		calls := []struct {
			method string
			call   func(ctx context.Context) error
		}{
			{"EnsureRepository", func(ctx context.Context) error { _, err := reg.EnsureRepository(ctx, uniqueName()); return err }},
			{"Resolve", func(ctx context.Context) error { _, err := reg.Resolve(ctx, repo.Name+":v1"); return err }},
			{"Credentials", func(ctx context.Context) error { _, err := reg.Credentials(ctx, repo.Name); return err }},
		}
		if l, ok := reg.(providers.ImageLister); ok {
			calls = append(calls, struct {
				method string
				call   func(ctx context.Context) error
			}{"ListImages", func(ctx context.Context) error { _, err := l.ListImages(ctx, repo.Name); return err }})
		}
		if d, ok := reg.(providers.ImageDeleter); ok {
			calls = append(calls, struct {
				method string
				call   func(ctx context.Context) error
			}{"DeleteImage", func(ctx context.Context) error { return d.DeleteImage(ctx, repo.Name, digest) }})
		}
		for _, tc := range calls {
			t.Run(tc.method, func(t *testing.T) { checkCanceled(t, tc.call) })
		}
		if _, err := reg.Resolve(t.Context(), repo.Name+"@"+digest); err != nil {
			t.Errorf("Resolve after a canceled DeleteImage: %v, want the image still there", err)
		}
	})
}

func (h registrySuite) testImageLister(t *testing.T) {
	if _, ok := h.New(t).(providers.ImageLister); !ok {
		t.Skip("the registry does not implement providers.ImageLister")
	}
	t.Run("ListImages/lists the repository's images ordered by digest", func(t *testing.T) {
		reg, repo := h.setup(t)
		var want []string
		for _, tag := range []string{"a", "b", "c"} {
			want = append(want, h.Push(t, reg, repo.Name, tag))
		}
		slices.Sort(want)
		imgs, err := reg.(providers.ImageLister).ListImages(t.Context(), repo.Name)
		must(t, "ListImages", err)
		var got []string
		for _, img := range imgs {
			got = append(got, img.Digest)
			if img.Repository != repo.URI {
				t.Errorf("listed image %s has Repository %q, want %q", img.Digest, img.Repository, repo.URI)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListImages digests (-want +got):\n%s", diff)
		}
	})
	t.Run("ListImages/missing repository returns ErrNotFound", func(t *testing.T) {
		reg := h.New(t)
		_, err := reg.(providers.ImageLister).ListImages(t.Context(), uniqueName())
		wantErr(t, "ListImages of a missing repository", err, providers.ErrNotFound)
	})
}

func (h registrySuite) testImageDeleter(t *testing.T) {
	if _, ok := h.New(t).(providers.ImageDeleter); !ok {
		t.Skip("the registry does not implement providers.ImageDeleter")
	}
	t.Run("DeleteImage/removes the image and its tags, and only them", func(t *testing.T) {
		reg, repo := h.setup(t)
		gone := h.Push(t, reg, repo.Name, "gone")
		kept := h.Push(t, reg, repo.Name, "kept")
		must(t, "DeleteImage", reg.(providers.ImageDeleter).DeleteImage(t.Context(), repo.Name, gone))
		_, err := reg.Resolve(t.Context(), repo.Name+"@"+gone)
		wantErr(t, "Resolve of the deleted digest", err, providers.ErrNotFound)
		_, err = reg.Resolve(t.Context(), repo.Name+":gone")
		wantErr(t, "Resolve of the deleted image's tag", err, providers.ErrNotFound)
		img, err := reg.Resolve(t.Context(), repo.Name+":kept")
		must(t, "Resolve of the other image", err)
		if img.Digest != kept {
			t.Errorf("the other image's tag resolves to %s, want %s", img.Digest, kept)
		}
	})
	t.Run("DeleteImage/deleting a missing image returns nil", func(t *testing.T) {
		reg, repo := h.setup(t)
		d := reg.(providers.ImageDeleter)
		digest := h.Push(t, reg, repo.Name, "v1")
		must(t, "DeleteImage", d.DeleteImage(t.Context(), repo.Name, digest))
		if err := d.DeleteImage(t.Context(), repo.Name, digest); err != nil {
			t.Errorf("second DeleteImage: %v, want nil", err)
		}
		if err := d.DeleteImage(t.Context(), repo.Name, missingDigest); err != nil {
			t.Errorf("DeleteImage of a digest never pushed: %v, want nil", err)
		}
	})
}

// deleteImages removes a case's images, best effort.
func deleteImages(reg providers.Registry, d providers.ImageDeleter, repo string) {
	l, ok := reg.(providers.ImageLister)
	if !ok {
		return
	}
	ctx, cancel := cleanupContext()
	defer cancel()
	imgs, _ := l.ListImages(ctx, repo)
	for _, img := range imgs {
		d.DeleteImage(ctx, repo, img.Digest)
	}
}
