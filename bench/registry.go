package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/internal/imagecopy"
)

// The registry part copies one image, pushed once to a source registry,
// to an empty target registry with the project's copy (internal/imagecopy,
// in this process) and with crane copy (the crane command of
// go-containerregistry at the version go.mod pins, built once before any
// measurement and run as its own process, as a user runs it). Both
// registries are go-containerregistry's pkg/registry served on 127.0.0.1
// by this process; every copy gets a new empty target, so no copy finds
// the blobs of another. Rounds alternate which tool goes first; each
// tool's time is its median round.
//
// Then each tool copies again into the target it filled last: the same
// image (the target already has everything), and an image that shares
// every layer with it but has a new configuration (the target has the
// layers, not the manifest or the configuration). The target counts the
// blob bytes each upload carried, by digest, so the layer bytes are
// measured at the receiving end for both tools.

// Shape of the registry part.
const (
	registryLayers          = 4
	registryLayerBytes      = 5 << 20 // 20 MiB in all
	registryLayerBytesShort = 512 << 10
	registryRounds          = 7
	registryRoundsShort     = 1
	registryRepo            = "bench/app"
)

// Goals of issue #8: no slower than crane copy; no layer bytes sent when
// the target already has the layers.
const goalRegistryRatio = 1.0

// uploads counts the bytes of blob uploads a registry receives: the bytes
// of each upload session, attributed to the digest its final PUT names.
type uploads struct {
	next http.Handler

	mu      sync.Mutex
	session map[string]int64 // upload path -> bytes so far
	blobs   map[string]int64 // digest -> bytes uploaded
}

func newUploads(next http.Handler) *uploads {
	return &uploads{next: next, session: map[string]int64{}, blobs: map[string]int64{}}
}

// ServeHTTP serves the registry, counting the body bytes of blob uploads.
func (u *uploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.URL.Path, "/blobs/uploads/") {
		u.next.ServeHTTP(w, r)
		return
	}
	body := &countingReader{r: r.Body}
	r.Body = body
	u.next.ServeHTTP(w, r)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.session[r.URL.Path] += body.n
	if d := r.URL.Query().Get("digest"); r.Method == http.MethodPut && d != "" {
		u.blobs[d] += u.session[r.URL.Path]
		delete(u.session, r.URL.Path)
	}
}

// split returns the uploaded bytes of the layers and of the other blobs
// (the configuration).
func (u *uploads) split(layers map[string]bool) (layerBytes, otherBytes int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for d, n := range u.blobs {
		if layers[d] {
			layerBytes += n
		} else {
			otherBytes += n
		}
	}
	return layerBytes, otherBytes
}

func (u *uploads) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	clear(u.session)
	clear(u.blobs)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.ReadCloser
	n int64
}

// Read reads from the underlying body and counts the bytes.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Close closes the underlying body.
func (c *countingReader) Close() error { return c.r.Close() }

// testRegistry is an in-memory registry served on 127.0.0.1.
type testRegistry struct {
	host    string
	uploads *uploads
	close   func()
}

func startRegistry() *testRegistry {
	u := newUploads(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	s := httptest.NewServer(u)
	return &testRegistry{host: strings.TrimPrefix(s.URL, "http://"), uploads: u, close: s.Close}
}

// ref is the digest reference of d in the registry.
func (r *testRegistry) ref(d v1.Hash) string { return r.host + "/" + registryRepo + "@" + d.String() }

// has reports whether the registry serves the manifest of d.
func (r *testRegistry) has(ctx context.Context, d v1.Hash) error {
	ref, err := name.NewDigest(r.ref(d), name.Insecure)
	if err != nil {
		return err
	}
	desc, err := remote.Head(ref, remote.WithContext(ctx))
	if err != nil {
		return err
	}
	if desc.Digest != d {
		return fmt.Errorf("the target serves %s for %s", desc.Digest, d)
	}
	return nil
}

// copier is one way of copying between registries.
type copier struct {
	name string
	copy func(ctx context.Context, src, dst string) error
}

func runRegistry(ctx context.Context, cfg config) error {
	layerBytes, rounds := int64(registryLayerBytes), registryRounds
	if cfg.short {
		layerBytes, rounds = registryLayerBytesShort, registryRoundsShort
	}
	tmp, err := os.MkdirTemp("", "convox-bench-registry-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	crane, version, err := buildCrane(ctx, tmp)
	if err != nil {
		return err
	}
	startup, err := timeCommand(ctx, crane, "version")
	if err != nil {
		return err
	}

	src := startRegistry()
	defer src.close()
	img, err := random.Image(layerBytes, registryLayers)
	if err != nil {
		return err
	}
	digest, layers, size, err := describeImage(img)
	if err != nil {
		return err
	}
	if err := push(ctx, src, img); err != nil {
		return fmt.Errorf("push the source image: %w", err)
	}

	ours := copier{"imagecopy", func(ctx context.Context, s, d string) error {
		_, err := imagecopy.Copy(ctx, imagecopy.Endpoint{Ref: s}, imagecopy.Endpoint{Ref: d})
		return err
	}}
	theirs := copier{"crane", func(ctx context.Context, s, d string) error {
		out, err := exec.CommandContext(ctx, crane, "copy", s, d, "--insecure").CombinedOutput()
		if err != nil {
			return fmt.Errorf("crane copy: %w\n%s", err, out)
		}
		return nil
	}}
	copiers := []copier{ours, theirs}

	fmt.Fprintf(cfg.out, "image: %d layers of %.1f MiB (%.1f MiB of blobs with the configuration), %s\n",
		registryLayers, float64(layerBytes)/(1<<20), float64(size)/(1<<20), digest)
	fmt.Fprintf(cfg.out, "crane: %s, built once before measuring; one crane process start (crane version) takes %s\n", version, startup.Round(100*time.Microsecond))
	fmt.Fprintf(cfg.out, "copies: %d round(s), each tool into a new empty in-memory registry on 127.0.0.1, order alternating\n", rounds)

	times := map[string][]time.Duration{}
	last := map[string]*testRegistry{}
	defer func() {
		for _, r := range last {
			r.close()
		}
	}()
	for round := range rounds {
		order := copiers
		if round%2 == 1 {
			order = []copier{theirs, ours}
		}
		for _, c := range order {
			dst := startRegistry()
			start := time.Now()
			err := c.copy(ctx, src.ref(digest), dst.ref(digest))
			d := time.Since(start)
			if err == nil {
				err = dst.has(ctx, digest)
			}
			if err == nil {
				if got, _ := dst.uploads.split(layers); got != layerBytesOf(img) {
					err = fmt.Errorf("the target received %d layer bytes, want %d", got, layerBytesOf(img))
				}
			}
			if err != nil {
				dst.close()
				return fmt.Errorf("%s, round %d: %w", c.name, round+1, err)
			}
			times[c.name] = append(times[c.name], d)
			if prev := last[c.name]; prev != nil {
				prev.close()
			}
			last[c.name] = dst
		}
	}
	for _, c := range copiers {
		m := medianDuration(times[c.name])
		fmt.Fprintf(cfg.out, "  %-9s %s per copy, %.0f MiB/s (median; rounds: %s)\n", c.name, m.Round(100*time.Microsecond),
			float64(size)/(1<<20)/m.Seconds(), fmtMillis(times[c.name]))
	}

	// Copies into targets that already hold the layers.
	derived, err := mutate.Config(img, v1.Config{Env: []string{"RELEASE=2"}})
	if err != nil {
		return err
	}
	derivedDigest, _, _, err := describeImage(derived)
	if err != nil {
		return err
	}
	if err := push(ctx, src, derived); err != nil {
		return fmt.Errorf("push the derived image: %w", err)
	}
	var oursLayerBytes int64
	for _, c := range copiers {
		dst := last[c.name]
		for _, tc := range []struct {
			what string
			d    v1.Hash
		}{
			{"the same image again", digest},
			{"an image with the same layers and a new configuration", derivedDigest},
		} {
			dst.uploads.reset()
			if err := c.copy(ctx, src.ref(tc.d), dst.ref(tc.d)); err != nil {
				return fmt.Errorf("%s, %s: %w", c.name, tc.what, err)
			}
			if err := dst.has(ctx, tc.d); err != nil {
				return fmt.Errorf("%s, %s: %w", c.name, tc.what, err)
			}
			lb, ob := dst.uploads.split(layers)
			fmt.Fprintf(cfg.out, "re-copy by %s of %s: %d layer bytes, %d other blob bytes sent\n", c.name, tc.what, lb, ob)
			if c.name == ours.name {
				oursLayerBytes += lb
			}
		}
	}
	ratio := float64(medianDuration(times[ours.name])) / float64(medianDuration(times[theirs.name]))
	goalAtMost(cfg.out, "imagecopy/crane copy time", ratio, goalRegistryRatio)
	goalCount(cfg.out, "layer bytes imagecopy sent to targets that had the layers", oursLayerBytes, 0)
	return nil
}

// describeImage returns the image's digest, the digests of its layers and
// the size of its blobs (layers and configuration).
func describeImage(img v1.Image) (v1.Hash, map[string]bool, int64, error) {
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, nil, 0, err
	}
	m, err := img.Manifest()
	if err != nil {
		return v1.Hash{}, nil, 0, err
	}
	layers := map[string]bool{}
	size := m.Config.Size
	for _, l := range m.Layers {
		layers[l.Digest.String()] = true
		size += l.Size
	}
	return d, layers, size, nil
}

// layerBytesOf is the size of the image's layers.
func layerBytesOf(img v1.Image) int64 {
	m, err := img.Manifest()
	if err != nil {
		return -1
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// push writes img to the registry under its digest.
func push(ctx context.Context, r *testRegistry, img v1.Image) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	ref, err := name.NewDigest(r.ref(d), name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(ref, img, remote.WithContext(ctx))
}

// buildCrane builds the crane command of the module's go-containerregistry
// (the tool go.mod lists) into dir, and returns its path and version.
func buildCrane(ctx context.Context, dir string) (string, string, error) {
	mod, err := moduleDir()
	if err != nil {
		return "", "", err
	}
	bin := filepath.Join(dir, "crane")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/google/go-containerregistry/cmd/crane")
	cmd.Dir = mod
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build crane: %w\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return "", "", fmt.Errorf("go version -m crane: %w", err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:mod|dep)\s+github\.com/google/go-containerregistry\s+(\S+)`).FindSubmatch(out)
	if m == nil {
		return "", "", errors.New("the crane binary does not name its go-containerregistry version")
	}
	return bin, "go-containerregistry " + string(m[1]), nil
}

// moduleDir returns the root directory of the module that holds the
// working directory.
func moduleDir() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the benchmark from inside the convox module (go run ./bench)")
	}
	return filepath.Dir(gomod), nil
}

// timeCommand runs a command and returns how long it took.
func timeCommand(ctx context.Context, path string, args ...string) (time.Duration, error) {
	start := time.Now()
	if out, err := exec.CommandContext(ctx, path, args...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s %s: %w\n%s", filepath.Base(path), strings.Join(args, " "), err, out)
	}
	return time.Since(start), nil
}

// fmtMillis prints durations in milliseconds, separated by spaces.
func fmtMillis(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return strings.Join(s, " ")
}
