package local

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/convox-go/convox/providers"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, body, link string
	kind             byte // tar.TypeReg when zero
}

func file(name, body string) entry { return entry{name: name, body: body} }
func dir(name string) entry        { return entry{name: name, kind: tar.TypeDir} }
func symlink(name, to string) entry {
	return entry{name: name, link: to, kind: tar.TypeSymlink}
}
func hardlink(name, to string) entry { return entry{name: name, link: to, kind: tar.TypeLink} }

// tarLayer returns the bytes of an uncompressed layer holding the entries.
func tarLayer(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.kind, Linkname: e.link, Mode: 0o755}
		switch e.kind {
		case 0:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		case tar.TypeDir:
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// imageOf returns an image of uncompressed layers.
func imageOf(t *testing.T, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(l, types.OCIUncompressedLayer)); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// tree lists the files under dir (relative, "/" after a directory, "->"
// and the target after a link, ":" and the content after a file).
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case d.Type()&fs.ModeSymlink != 0:
			to, _ := os.Readlink(p)
			out = append(out, rel+" -> "+to)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+": "+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnpackHostileLayers unpacks layers that try to write, link or
// delete outside the root file system. Whatever they try, the sentinel
// directory beside the root file system keeps exactly its one file, and
// each case ends with the error or the tree its name states.
func TestUnpackHostileLayers(t *testing.T) {
	tests := []struct {
		name string
		// layers builds the layers; s is the sentinel directory's absolute
		// path, rel is it in image terms (without the leading "/").
		layers  func(s string) [][]entry
		wantErr string // empty: unpacking succeeds
		// want is what the root file system holds afterwards (rel in it
		// stands for the sentinel's path inside the image).
		want func(rel string) []string
	}{
		{
			name:   "a symlink to a host directory, then a file through it, lands inside the rootfs",
			layers: func(s string) [][]entry { return [][]entry{{symlink("x", s), file("x/pwned", "p")}} },
			want:   func(rel string) []string { return append(dirsOf(rel), rel+"/pwned: p", "x -> /"+rel) },
		},
		{
			name: "the symlink and the file through it in two layers land inside the rootfs",
			layers: func(s string) [][]entry {
				return [][]entry{{symlink("x", s)}, {file("x/pwned", "p")}}
			},
			want: func(rel string) []string { return append(dirsOf(rel), rel+"/pwned: p", "x -> /"+rel) },
		},
		{
			name:   "a relative symlink climbing out stops at the rootfs",
			layers: func(string) [][]entry { return [][]entry{{symlink("y", "../../../../../.."), file("y/pwned", "p")}} },
			want:   func(string) []string { return []string{"pwned: p", "y -> ../../../../../.."} },
		},
		{
			name:   "an absolute symlink is kept as written, not followed",
			layers: func(s string) [][]entry { return [][]entry{{symlink("z", s+"/keep")}} },
			want:   func(rel string) []string { return []string{"z -> /" + rel + "/keep"} },
		},
		{
			name:   "a file over a symlink to a host file replaces the link",
			layers: func(s string) [][]entry { return [][]entry{{symlink("s", s+"/keep")}, {file("s", "pwned")}} },
			want:   func(string) []string { return []string{"s: pwned"} },
		},
		{
			name:   "a directory over a symlink to a host directory replaces the link",
			layers: func(s string) [][]entry { return [][]entry{{symlink("d", s)}, {dir("d"), file("d/keep", "pwned")}} },
			want:   func(string) []string { return []string{"d/", "d/keep: pwned"} },
		},
		{
			name:    "a .. entry is refused",
			layers:  func(string) [][]entry { return [][]entry{{file("../pwned", "p")}} },
			wantErr: `"../pwned" leaves the root file system`,
		},
		{
			name:    "a .. inside a path is refused",
			layers:  func(string) [][]entry { return [][]entry{{dir("a"), file("a/../../pwned", "p")}} },
			wantErr: `"a/../../pwned" leaves the root file system`,
		},
		{
			name:   "an absolute entry path is rooted at the rootfs",
			layers: func(s string) [][]entry { return [][]entry{{file(s+"/abs", "p")}} },
			want:   func(rel string) []string { return append(dirsOf(rel), rel+"/abs: p") },
		},
		{
			name:    "a hard link to a host file by absolute path is refused",
			layers:  func(s string) [][]entry { return [][]entry{{hardlink("h", s+"/keep")}} },
			wantErr: "is not a file of the image",
		},
		{
			name:    "a hard link climbing out is refused",
			layers:  func(string) [][]entry { return [][]entry{{hardlink("h", "../outside/keep")}} },
			wantErr: `"../outside/keep" leaves the root file system`,
		},
		{
			name:    "a hard link through a symlink to a host directory is refused",
			layers:  func(s string) [][]entry { return [][]entry{{symlink("d", s), hardlink("h", "d/keep")}} },
			wantErr: "is not a file of the image",
		},
		{
			name:   "a hard link to a symlink to a host file links the symlink, not the host file",
			layers: func(s string) [][]entry { return [][]entry{{symlink("s", s+"/keep"), hardlink("h", "s")}} },
			want:   func(rel string) []string { return []string{"h -> /" + rel + "/keep", "s -> /" + rel + "/keep"} },
		},
		{
			name:   "a hard link inside the image links the image's file",
			layers: func(string) [][]entry { return [][]entry{{file("a", "x"), hardlink("b", "a")}} },
			want:   func(string) []string { return []string{"a: x", "b: x"} },
		},
		{
			name:   "a whiteout through a symlink to a host directory removes nothing outside",
			layers: func(s string) [][]entry { return [][]entry{{symlink("w", s)}, {file("w/.wh.keep", "")}} },
			want:   func(rel string) []string { return []string{"w -> /" + rel} },
		},
		{
			name:   "an opaque whiteout through a symlink to a host directory empties nothing outside",
			layers: func(s string) [][]entry { return [][]entry{{symlink("o", s)}, {file("o/.wh..wh..opq", "")}} },
			want:   func(rel string) []string { return []string{"o -> /" + rel} },
		},
		{
			name:    "a whiteout of .. is refused",
			layers:  func(string) [][]entry { return [][]entry{{dir("a")}, {file("a/.wh...", "")}} },
			wantErr: "names no file",
		},
		{
			name:   "a whiteout removes a lower layer's file",
			layers: func(string) [][]entry { return [][]entry{{file("a/f", "1"), file("a/g", "2")}, {file("a/.wh.f", "")}} },
			want:   func(string) []string { return []string{"a/", "a/g: 2"} },
		},
		{
			name: "an opaque whiteout empties the lower layers' directory and keeps the layer's own files",
			layers: func(string) [][]entry {
				return [][]entry{{file("a/old", "1")}, {dir("a"), file("a/new", "2"), file("a/.wh..wh..opq", ""), file("a/newer", "3")}}
			},
			want: func(string) []string { return []string{"a/", "a/new: 2", "a/newer: 3"} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			sentinel := filepath.Join(base, "outside")
			rootfs := filepath.Join(base, "rootfs")
			for _, d := range []string{sentinel, rootfs} {
				if err := os.Mkdir(d, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(sentinel, "keep"), []byte("original"), 0o600); err != nil {
				t.Fatal(err)
			}
			var layers [][]byte
			for _, es := range tt.layers(sentinel) {
				layers = append(layers, tarLayer(t, es...))
			}
			err := unpackImage(rootfs, imageOf(t, layers...))
			if diff := cmp.Diff([]string{"keep: original"}, tree(t, sentinel)); diff != "" {
				t.Errorf("sentinel directory (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"outside/", "outside/keep: original", "rootfs/"}, topLevel(t, base)); diff != "" {
				t.Errorf("beside the rootfs (-want +got):\n%s", diff)
			}
			if tt.wantErr != "" {
				if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("unpack = %v, want ErrInvalid containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unpack: %v", err)
			}
			rel := strings.TrimPrefix(sentinel, "/")
			if diff := cmp.Diff(tt.want(rel), tree(t, rootfs)); diff != "" {
				t.Errorf("rootfs (-want +got):\n%s", diff)
			}
		})
	}
}

// dirsOf lists the directories leading to rel, as tree reports them.
func dirsOf(rel string) []string {
	var out []string
	parts := strings.Split(rel, "/")
	for i := range parts {
		out = append(out, strings.Join(parts[:i+1], "/")+"/")
	}
	return out
}

// topLevel lists base without descending into the rootfs.
func topLevel(t *testing.T, base string) []string {
	t.Helper()
	var out []string
	for _, s := range tree(t, base) {
		if !strings.HasPrefix(s, "rootfs/") || s == "rootfs/" {
			out = append(out, s)
		}
	}
	return out
}

// TestUnpackVerifiesBlobs corrupts one blob of an image pushed to the
// rack's registry and checks that reading the image refuses it with
// ErrInvalid naming the blob's digest, before a root file system exists.
func TestUnpackVerifiesBlobs(t *testing.T) {
	gz, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarLayer(t, file("bin/app", "#!/bin/sh\n")))), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	base, err := mutate.AppendLayers(empty.Image, gz)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Config(base, v1.Config{Entrypoint: []string{"/bin/app"}})
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := img.Digest()
	cfgName, _ := img.ConfigName()
	layer, _ := gz.Digest()
	tests := []struct {
		name    string
		corrupt v1.Hash // none: the image is intact
	}{
		{name: "an intact image unpacks"},
		{name: "a corrupt layer is refused", corrupt: layer},
		{name: "a corrupt configuration is refused", corrupt: cfgName},
		{name: "a corrupt manifest is refused", corrupt: manifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openTestRack(t, "")
			pushed, err := r.Registry().PushImage(context.Background(), "app", "v1", img)
			if err != nil {
				t.Fatal(err)
			}
			if tt.corrupt != (v1.Hash{}) {
				flipByte(t, r.registry.blobPath("app", tt.corrupt))
			}
			s := r.Scheduler()
			_, err = s.prepare(context.Background(), &slotSpec{app: "app", release: "R1", image: pushed, proc: providers.Process{Name: "web"}})
			if tt.corrupt == (v1.Hash{}) {
				if err != nil {
					t.Fatalf("prepare an intact image: %v", err)
				}
				return
			}
			if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), tt.corrupt.String()) {
				t.Fatalf("prepare = %v, want ErrInvalid naming %s", err, tt.corrupt)
			}
			if got := tree(t, s.rootfs.dir); len(got) != 0 {
				t.Errorf("root file systems after a corrupt image: %q, want none", got)
			}
		})
	}
}

// TestSchedulerRefusesACorruptImageUntilItIsRestored checks that once a
// rollout failed on a corrupt layer, Apply refuses the image at once with
// ErrInvalid (a compensation retrying it stops), and accepts it again once
// the blob is intact.
func TestSchedulerRefusesACorruptImageUntilItIsRestored(t *testing.T) {
	r := openTestRack(t, "")
	img := pushTestImage(t, r, "web", "v1")
	v1img, err := r.Registry().v1Image(img)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := v1img.Layers()
	layer, _ := layers[0].Digest()
	blob := r.registry.blobPath("web", layer)
	orig, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, blob)
	route := ensureWebRoute(t, r, "app")
	s := r.Scheduler()
	ro, _ := apply(t, s, webDesired("app", "R1", img, route, 1, nil))
	if ro.State != providers.RolloutFailed || !strings.Contains(ro.Reason, layer.String()) {
		t.Fatalf("rollout to a corrupt image: %s (%s), want failed naming %s", ro.State, ro.Reason, layer)
	}
	st, err := s.Status(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Tasks) != 0 {
		t.Errorf("tasks of a corrupt image: %+v, want none started", st.Tasks)
	}
	if _, err := s.Apply(context.Background(), webDesired("app", "R2", img, route, 1, nil)); !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), layer.String()) {
		t.Fatalf("Apply of the corrupt image again = %v, want ErrInvalid naming %s", err, layer)
	}
	if err := os.WriteFile(blob, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if ro, _ := apply(t, s, webDesired("app", "R3", img, route, 1, nil)); ro.State != providers.RolloutCompleted {
		t.Fatalf("rollout once the blob is restored: %s (%s), want completed", ro.State, ro.Reason)
	}
}

// flipByte changes one byte in the middle of a file.
func flipByte(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
