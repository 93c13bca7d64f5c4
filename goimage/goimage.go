// Package goimage builds a Go main package into a runnable OCI image
// without Docker: the package is compiled into a static binary
// (CGO_ENABLED=0) and wrapped into a one-layer image whose configuration
// (environment, entrypoint, command, labels) the caller chooses.
//
//	img, err := goimage.Build(ctx, "./cmd/web", &goimage.Config{
//		Env:    []string{"MODE=production"},
//		Cmd:    []string{"--listen", ":8080"},
//		Labels: map[string]string{"org.opencontainers.image.revision": rev},
//	})
//	pinned, err := rack.Registry().PushImage(ctx, "web", "v1", img) // the local rack
//
// The image is a go-containerregistry v1.Image, so it can be pushed to any
// registry with remote.Write as well. Configure changes the configuration
// of an image built earlier (a variant with another environment, say)
// without rebuilding it.
package goimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/convox-go/convox/providers"
)

// BinaryPath is where the binary lives inside the image; it is the default
// entrypoint.
const BinaryPath = "/app/server"

// MaxBinary bounds the size of the binary an image holds (256 MiB).
const MaxBinary = 256 << 20

// Bounds of a Config.
const (
	MaxEnv    = 256     // variables
	MaxLabels = 256     // labels
	MaxArgs   = 256     // arguments of Entrypoint and of Cmd each
	MaxValue  = 8 << 10 // bytes of a variable, label or argument
)

// Config is the configuration of an image. Zero fields keep what the image
// has; for a new image (Build, FromBinary) that is Entrypoint
// [BinaryPath], WorkingDir /app and Env PATH=/app:/usr/local/bin:/usr/bin:/bin.
type Config struct {
	// Env sets variables, each "NAME=value"; a name the image already
	// has is replaced, others are added.
	Env []string
	// Entrypoint and Cmd replace the image's when not nil.
	Entrypoint []string
	Cmd        []string
	// Labels are added to the image's labels, replacing equal keys.
	Labels map[string]string
	// WorkingDir replaces the image's when not empty.
	WorkingDir string
	// GOOS and GOARCH select the platform Build compiles for and the
	// image declares; empty means the host's (the local rack runs the
	// binary on the host).
	GOOS, GOARCH string
}

// validate checks the configuration's bounds before anything is built.
func (c *Config) validate() error {
	if c == nil {
		return nil
	}
	if len(c.Env) > MaxEnv {
		return providers.Invalidf("goimage: %d variables, at most %d", len(c.Env), MaxEnv)
	}
	for _, kv := range c.Env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.ContainsAny(name, " \t\n\x00") {
			return providers.Invalidf("goimage: variable %q is not NAME=value", kv)
		}
		if len(kv) > MaxValue {
			return providers.Invalidf("goimage: variable %s is %d bytes, at most %d", name, len(kv), MaxValue)
		}
	}
	for what, args := range map[string][]string{"entrypoint": c.Entrypoint, "command": c.Cmd} {
		if len(args) > MaxArgs {
			return providers.Invalidf("goimage: the %s has %d arguments, at most %d", what, len(args), MaxArgs)
		}
		for _, a := range args {
			if len(a) > MaxValue || strings.ContainsRune(a, 0) {
				return providers.Invalidf("goimage: an argument of the %s is longer than %d bytes or holds a NUL byte", what, MaxValue)
			}
		}
	}
	if len(c.Labels) > MaxLabels {
		return providers.Invalidf("goimage: %d labels, at most %d", len(c.Labels), MaxLabels)
	}
	for k, v := range c.Labels {
		if k == "" || len(k)+len(v) > MaxValue {
			return providers.Invalidf("goimage: label %q is empty or longer than %d bytes", k, MaxValue)
		}
	}
	return nil
}

func (c *Config) platform() (goos, goarch string) {
	goos, goarch = runtime.GOOS, runtime.GOARCH
	if c != nil && c.GOOS != "" {
		goos = c.GOOS
	}
	if c != nil && c.GOARCH != "" {
		goarch = c.GOARCH
	}
	return goos, goarch
}

// Build compiles the Go main package in dir (a directory inside a Go
// module) with CGO_ENABLED=0 and -trimpath for cfg's platform, and
// returns an image holding the binary at BinaryPath, configured by cfg
// (nil: defaults). The go command must be on PATH; ctx bounds the build.
func Build(ctx context.Context, dir string, cfg *Config) (v1.Image, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "goimage-") // 0700
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "main")
	goos, goarch := cfg.platform()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("goimage: go build %s: %w\n%s", dir, err, msg)
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxBinary {
		return nil, providers.Invalidf("goimage: the binary of %s is %d bytes, at most %d", dir, st.Size(), MaxBinary)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	return FromBinary(bin, cfg)
}

// FromBinary returns a one-layer image holding bin at BinaryPath (mode
// 0755, in /app), configured by cfg (nil: defaults). The layer is
// reproducible: the same binary gives the same digest.
func FromBinary(bin []byte, cfg *Config) (v1.Image, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(bin) == 0 || len(bin) > MaxBinary {
		return nil, providers.Invalidf("goimage: the binary is %d bytes; it must hold 1 to %d", len(bin), MaxBinary)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	mtime := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755, ModTime: mtime}); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: BinaryPath[1:], Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := gz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	file, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	file = file.DeepCopy()
	file.OS, file.Architecture = cfg.platform()
	file.Config.Entrypoint = []string{BinaryPath}
	file.Config.WorkingDir = "/app"
	file.Config.Env = []string{"PATH=/app:/usr/local/bin:/usr/bin:/bin"}
	img, err = mutate.ConfigFile(img, file)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return img, nil
	}
	c := *cfg
	c.GOOS, c.GOARCH = "", "" // declared above
	return Configure(img, c)
}

// Configure returns img with cfg applied (see Config); the layers are
// shared, only the configuration changes. cfg's GOOS and GOARCH, when
// set, replace the platform the image declares.
func Configure(img v1.Image, cfg Config) (v1.Image, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	file, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("goimage: read the image configuration: %w", err)
	}
	file = file.DeepCopy()
	for _, kv := range cfg.Env {
		name, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(file.Config.Env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
		if i >= 0 {
			file.Config.Env[i] = kv
		} else {
			file.Config.Env = append(file.Config.Env, kv)
		}
	}
	if cfg.Entrypoint != nil {
		file.Config.Entrypoint = slices.Clone(cfg.Entrypoint)
	}
	if cfg.Cmd != nil {
		file.Config.Cmd = slices.Clone(cfg.Cmd)
	}
	if len(cfg.Labels) > 0 {
		if file.Config.Labels == nil {
			file.Config.Labels = map[string]string{}
		}
		maps.Copy(file.Config.Labels, cfg.Labels)
	}
	if cfg.WorkingDir != "" {
		file.Config.WorkingDir = cfg.WorkingDir
	}
	if cfg.GOOS != "" {
		file.OS = cfg.GOOS
	}
	if cfg.GOARCH != "" {
		file.Architecture = cfg.GOARCH
	}
	return mutate.ConfigFile(img, file)
}
