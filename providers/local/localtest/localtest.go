// Package localtest builds small runnable OCI images for tests of the local
// rack and of code that deploys to it, without Docker: a static Go binary
// wrapped into a one-layer image.
//
//	img := localtest.BuildGoImage(t, "testdata/server")
//	pinned, err := rack.Registry().PushImage(ctx, "web", "v1", img)
//
// Pushing over the registry's OCI distribution API instead, as standard
// tooling does, needs the rack's credential:
//
//	err := remote.Write(ref, img, localtest.Auth(t, rack.Registry()))
package localtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/convox-go/convox/providers"
)

// Auth returns the go-containerregistry remote option that authenticates
// to reg with the credentials reg hands out (Registry.Credentials), for
// remote.Write, remote.Image and the like; a failure ends the test.
func Auth(t testing.TB, reg providers.Registry) remote.Option {
	t.Helper()
	c, err := reg.Credentials(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: c.Username, Password: c.Password}))
}

// BinaryPath is where BuildGoImage puts the binary inside the image; it is
// the image's entrypoint.
const BinaryPath = "/app/server"

var (
	mu     sync.Mutex
	images = map[string]v1.Image{}
)

// BuildGoImage compiles the Go main package in srcDir (a directory of the
// current module, relative to the test's working directory or absolute)
// into a static binary and returns an image holding it at BinaryPath, with
// Entrypoint [BinaryPath] and WorkingDir /app. The image is built once per
// directory and test binary; failures end the test.
func BuildGoImage(t testing.TB, srcDir string) v1.Image {
	t.Helper()
	abs, err := filepath.Abs(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if img, ok := images[abs]; ok {
		return img
	}
	bin, err := Build(abs)
	if err != nil {
		t.Fatal(err)
	}
	img, err := ImageFromBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	images[abs] = img
	return img
}

// Build compiles the Go main package in srcDir with CGO_ENABLED=0 and
// returns the binary's content.
func Build(srcDir string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "localtest-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "server")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v\n%s", srcDir, err, msg)
	}
	return os.ReadFile(out)
}

// ImageFromBinary returns a one-layer image holding bin at BinaryPath
// (mode 0755), with Entrypoint [BinaryPath] and WorkingDir /app.
func ImageFromBinary(bin []byte) (v1.Image, error) {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
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
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = []string{BinaryPath}
	cfg.Config.WorkingDir = "/app"
	cfg.Config.Env = []string{"PATH=/app:/usr/local/bin:/usr/bin:/bin"}
	return mutate.ConfigFile(img, cfg)
}
