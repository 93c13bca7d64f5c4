package local

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/convox-go/convox/providers"
)

// Bounds of one unpacked image.
const (
	maxUnpackBytes   = 32 << 30 // bytes of file content, over all layers
	maxUnpackEntries = 1 << 20  // tar entries, over all layers
	maxSymlinkHops   = 40
	maxSmallBlob     = 4 << 20 // a manifest, an index or a configuration
)

// Whiteout names of the OCI image layer format.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// corruptBlobError reports a blob whose content does not match its
// digest; it matches providers.ErrInvalid. File and hint are optional: the
// registry names the file it read and what repairs it.
type corruptBlobError struct {
	want v1.Hash
	got  string
	file string
	hint string
}

func (e *corruptBlobError) Error() string {
	msg := fmt.Sprintf("blob %s is corrupt: its content hashes to %s", e.want, e.got)
	if e.file != "" {
		msg += " (file " + e.file + ")"
	}
	if e.hint != "" {
		msg += "; " + e.hint
	}
	return msg + ": " + providers.ErrInvalid.Error()
}

func (e *corruptBlobError) Unwrap() error { return providers.ErrInvalid }

func errCorrupt(want v1.Hash, got string) error { return &corruptBlobError{want: want, got: got} }

// hasher returns a hash for a digest algorithm the rack verifies.
func hasher(want v1.Hash) (hash.Hash, error) {
	if want.Algorithm != "sha256" {
		return nil, providers.Invalidf("blob %s: digest algorithm %q is not supported", want, want.Algorithm)
	}
	return sha256.New(), nil
}

// digestReader hashes what is read through it.
type digestReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	return n, err
}

// check drains the rest of the stream and compares its digest with want.
func (d *digestReader) check(want v1.Hash) error {
	if _, err := io.Copy(io.Discard, d); err != nil {
		return err
	}
	if got := want.Algorithm + ":" + hex.EncodeToString(d.h.Sum(nil)); got != want.String() {
		return errCorrupt(want, got)
	}
	return nil
}

// unpackBudget is what is left of an image's unpacking bounds.
type unpackBudget struct {
	bytes   int64
	entries int
}

// unpackImage writes the image's file system into dir (an empty directory),
// applying its layers in order. Every layer is checked against its digest
// (and its uncompressed content against the configuration's diff ID)
// while it streams; a mismatch fails the whole unpacking with ErrInvalid
// naming the digest, and the caller discards dir. Every write goes through
// an os.Root on dir: no entry, symbolic link or hard link of a layer
// reaches outside it.
func unpackImage(dir string, img v1.Image) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fsError("unpack", err)
	}
	defer root.Close()
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read the image configuration: %w", asInvalid(err))
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("read the image layers: %w", asInvalid(err))
	}
	budget := &unpackBudget{bytes: maxUnpackBytes, entries: maxUnpackEntries}
	for i, l := range layers {
		var diffID *v1.Hash
		if len(cfg.RootFS.DiffIDs) == len(layers) {
			diffID = &cfg.RootFS.DiffIDs[i]
		}
		if err := unpackLayer(root, l, diffID, budget); err != nil {
			return err
		}
	}
	return nil
}

// asInvalid marks an error reading image metadata as ErrInvalid unless it
// already carries a sentinel.
func asInvalid(err error) error {
	for _, s := range []error{providers.ErrInvalid, providers.ErrNotFound, providers.ErrPermission, providers.ErrUnavailable} {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", providers.ErrInvalid, err)
}

// unpackLayer verifies and applies one layer.
func unpackLayer(root *os.Root, l v1.Layer, diffID *v1.Hash, budget *unpackBudget) error {
	digest, err := l.Digest()
	if err != nil {
		return fmt.Errorf("layer digest: %w", asInvalid(err))
	}
	h, err := hasher(digest)
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("open layer %s: %w", digest, asInvalid(err))
	}
	defer rc.Close()
	compressed := &digestReader{r: rc, h: h}
	plain, closePlain, err := decompress(compressed)
	if err != nil {
		// Not a known compression: a corrupt blob says so first.
		if cerr := compressed.check(digest); cerr != nil {
			return cerr
		}
		return fmt.Errorf("layer %s: %w: %w", digest, providers.ErrInvalid, err)
	}
	defer closePlain()
	uncompressed := &digestReader{r: plain, h: sha256.New()}
	applyErr := applyTar(root, uncompressed, budget)
	// The digest decides first: a corrupt blob explains a malformed tar.
	if applyErr == nil || !errors.Is(applyErr, errUnpackFS) {
		if err := compressed.check(digest); err != nil {
			return err
		}
	}
	if applyErr != nil {
		return fmt.Errorf("layer %s: %w", digest, applyErr)
	}
	if diffID != nil {
		if err := uncompressed.check(*diffID); err != nil {
			return fmt.Errorf("layer %s: uncompressed content: %w", digest, err)
		}
	}
	return nil
}

// verifyLayers checks every layer blob of img against its digest,
// without unpacking anything.
func verifyLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("read the image layers: %w", asInvalid(err))
	}
	for _, l := range layers {
		digest, err := l.Digest()
		if err != nil {
			return fmt.Errorf("layer digest: %w", asInvalid(err))
		}
		h, err := hasher(digest)
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("open layer %s: %w", digest, asInvalid(err))
		}
		err = (&digestReader{r: rc, h: h}).check(digest)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// decompress returns the uncompressed stream of a layer: gzip, zstd or a
// plain tar, told apart by their magic numbers.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// errUnpackFS marks a failure of the file system holding the rootfs (not
// of the layer's content).
var errUnpackFS = errors.New("write the root file system")

// applyTar applies the entries of one uncompressed layer to root.
func applyTar(root *os.Root, r io.Reader, budget *unpackBudget) error {
	tr := tar.NewReader(r)
	written := map[string]bool{} // paths this layer created, kept by its opaque whiteouts
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read tar: %w", providers.ErrInvalid, err)
		}
		if budget.entries--; budget.entries < 0 {
			return providers.Invalidf("the image has more than %d file system entries", maxUnpackEntries)
		}
		if err := applyEntry(root, hdr, tr, budget, written); err != nil {
			return err
		}
	}
}

// entryPath turns a tar entry name into a path relative to the root file
// system: a leading "/" is dropped (paths are the image's, rooted at its
// root); a ".." element is refused. "" is the root itself.
func entryPath(name string) (string, error) {
	p := strings.TrimLeft(name, "/")
	for part := range strings.SplitSeq(p, "/") {
		if part == ".." {
			return "", providers.Invalidf("layer entry %q leaves the root file system (a \"..\" element)", name)
		}
	}
	if p = path.Clean(p); p == "." {
		p = ""
	}
	return p, nil
}

// resolveDir follows the symbolic links of the directory path dir inside
// root as if root were "/": an absolute link target starts again at root,
// and ".." stops at root. The result is a path relative to root without
// symbolic links among its existing elements.
func resolveDir(root *os.Root, dir string) (string, error) {
	cur := ""
	rest := strings.Split(dir, "/")
	hops := 0
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if cur = path.Dir(cur); cur == "." {
				cur = ""
			}
			continue
		}
		next := path.Join(cur, part)
		fi, err := root.Lstat(next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", providers.Invalidf("too many symbolic links in %q", dir)
		}
		link, err := root.Readlink(next)
		if err != nil {
			return "", fmt.Errorf("%w: %w", errUnpackFS, err)
		}
		if path.IsAbs(link) {
			cur = ""
		}
		rest = append(strings.Split(link, "/"), rest...)
	}
	return cur, nil
}

// entryTarget resolves where an entry name lands: its directory with symbolic
// links followed inside root, and its last element not followed.
func entryTarget(root *os.Root, name string) (string, error) {
	p, err := entryPath(name)
	if err != nil || p == "" {
		return p, err
	}
	dir, base := path.Split(p)
	d, err := resolveDir(root, dir)
	if err != nil {
		return "", err
	}
	return path.Join(d, base), nil
}

// fsErr wraps a failure writing the root file system.
func fsErr(name string, err error) error {
	return fmt.Errorf("%w: entry %q: %w", errUnpackFS, name, fsError("unpack", err))
}

// applyEntry applies one tar entry: a directory, file, symbolic or hard
// link, or a whiteout. Device nodes, FIFOs and ownership are ignored.
func applyEntry(root *os.Root, hdr *tar.Header, r io.Reader, budget *unpackBudget, written map[string]bool) error {
	p, err := entryTarget(root, hdr.Name)
	if err != nil {
		return err
	}
	if p == "" {
		return nil // the root directory itself
	}
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if strings.HasPrefix(base, whiteoutPrefix) {
		return whiteout(root, dir, base, written)
	}
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
	default:
		return nil
	}
	if dir != "" {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fsErr(hdr.Name, err)
		}
	}
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	written[p] = true
	if hdr.Typeflag == tar.TypeDir {
		if fi, err := root.Lstat(p); err == nil && fi.IsDir() {
			return nil
		}
		if err := root.RemoveAll(p); err != nil {
			return fsErr(hdr.Name, err)
		}
		if err := root.Mkdir(p, mode|0o700); err != nil {
			return fsErr(hdr.Name, err)
		}
		return nil
	}
	// Anything already there is replaced, never written through.
	if err := root.RemoveAll(p); err != nil {
		return fsErr(hdr.Name, err)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		if budget.bytes -= hdr.Size; budget.bytes < 0 {
			return providers.Invalidf("the image's files hold more than %d bytes", int64(maxUnpackBytes))
		}
		f, err := root.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode|0o600)
		if err != nil {
			return fsErr(hdr.Name, err)
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fsErr(hdr.Name, err)
		}
	case tar.TypeSymlink:
		// The link's text is data; it is resolved inside the root whenever
		// the rack follows it (unpacking, resolving a command).
		if err := root.Symlink(hdr.Linkname, p); err != nil {
			return fsErr(hdr.Name, err)
		}
	case tar.TypeLink:
		src, err := entryTarget(root, hdr.Linkname)
		if err != nil {
			return err
		}
		fi, err := root.Lstat(src)
		if err != nil || fi.IsDir() || src == "" {
			return providers.Invalidf("hard link %q: its target %q is not a file of the image", hdr.Name, hdr.Linkname)
		}
		if err := root.Link(src, p); err != nil {
			return fsErr(hdr.Name, err)
		}
	}
	return nil
}

// whiteout applies a whiteout entry: ".wh.<name>" removes name from the
// lower layers, ".wh..wh..opq" empties its directory of what the lower
// layers put there.
func whiteout(root *os.Root, dir, base string, written map[string]bool) error {
	if base == whiteoutOpaque {
		d, err := root.Open(cmp.Or(dir, "."))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fsErr(path.Join(dir, base), err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fsErr(path.Join(dir, base), err)
		}
		for _, n := range names {
			if p := path.Join(dir, n); !written[p] {
				if err := root.RemoveAll(p); err != nil {
					return fsErr(p, err)
				}
			}
		}
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return providers.Invalidf("whiteout %q names no file", path.Join(dir, base))
	}
	if err := root.RemoveAll(path.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fsErr(path.Join(dir, base), err)
	}
	return nil
}
