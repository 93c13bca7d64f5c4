package goimage_test

import (
	"archive/tar"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/convox-go/convox/goimage"
	"github.com/convox-go/convox/providers"
)

// config is what the tests compare of an image's configuration.
type config struct {
	OS, Arch   string
	Env        []string
	Entrypoint []string
	Cmd        []string
	Labels     map[string]string
	WorkingDir string
}

func configOf(t *testing.T, img v1.Image) config {
	t.Helper()
	f, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return config{f.OS, f.Architecture, f.Config.Env, f.Config.Entrypoint, f.Config.Cmd, f.Config.Labels, f.Config.WorkingDir}
}

const path = "PATH=/app:/usr/local/bin:/usr/bin:/bin"

func TestFromBinaryConfiguration(t *testing.T) {
	cases := []struct {
		name string
		cfg  *goimage.Config
		want config
	}{
		{"nil config gives the defaults", nil,
			config{OS: runtime.GOOS, Arch: runtime.GOARCH, Env: []string{path}, Entrypoint: []string{goimage.BinaryPath}, WorkingDir: "/app"}},
		{"env, entrypoint, cmd and labels are set", &goimage.Config{
			Env: []string{"MODE=production"}, Entrypoint: []string{"/app/server", "serve"}, Cmd: []string{"--port", "8080"},
			Labels: map[string]string{"team": "web"},
		}, config{OS: runtime.GOOS, Arch: runtime.GOARCH, Env: []string{path, "MODE=production"}, Entrypoint: []string{"/app/server", "serve"},
			Cmd: []string{"--port", "8080"}, Labels: map[string]string{"team": "web"}, WorkingDir: "/app"}},
		{"a variable of the image is replaced, not repeated", &goimage.Config{Env: []string{"PATH=/bin"}},
			config{OS: runtime.GOOS, Arch: runtime.GOARCH, Env: []string{"PATH=/bin"}, Entrypoint: []string{goimage.BinaryPath}, WorkingDir: "/app"}},
		{"the platform is declared", &goimage.Config{GOOS: "linux", GOARCH: "arm64"},
			config{OS: "linux", Arch: "arm64", Env: []string{path}, Entrypoint: []string{goimage.BinaryPath}, WorkingDir: "/app"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, err := goimage.FromBinary([]byte("#!binary"), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, configOf(t, img)); diff != "" {
				t.Errorf("configuration (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromBinaryLayer(t *testing.T) {
	bin := []byte("the binary")
	img, err := goimage.FromBinary(bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	type entry struct {
		Name string
		Mode int64
		Body string
	}
	var got []entry
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got = append(got, entry{h.Name, h.Mode, string(b)})
	}
	want := []entry{{"app/", 0o755, ""}, {strings.TrimPrefix(goimage.BinaryPath, "/"), 0o755, "the binary"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer (-want +got):\n%s", diff)
	}
	again, err := goimage.FromBinary(bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("the same binary gave digests %s and %s, want one", d1, d2)
	}
}

func TestConfigureKeepsWhatItDoesNotSet(t *testing.T) {
	img, err := goimage.FromBinary([]byte("bin"), &goimage.Config{Env: []string{"A=1"}, Cmd: []string{"x"}, Labels: map[string]string{"a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err = goimage.Configure(img, goimage.Config{Env: []string{"B=2", "A=3"}, Labels: map[string]string{"b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := config{OS: runtime.GOOS, Arch: runtime.GOARCH, Env: []string{path, "A=3", "B=2"}, Entrypoint: []string{goimage.BinaryPath},
		Cmd: []string{"x"}, Labels: map[string]string{"a": "1", "b": "2"}, WorkingDir: "/app"}
	if diff := cmp.Diff(want, configOf(t, img)); diff != "" {
		t.Errorf("configuration (-want +got):\n%s", diff)
	}
}

func TestBadInputIsInvalid(t *testing.T) {
	long := strings.Repeat("x", goimage.MaxValue+1)
	cases := []struct {
		name string
		bin  []byte
		cfg  *goimage.Config
	}{
		{"an empty binary", nil, nil},
		{"a variable without =", []byte("b"), &goimage.Config{Env: []string{"MODE"}}},
		{"a variable with an empty name", []byte("b"), &goimage.Config{Env: []string{"=x"}}},
		{"a variable too long", []byte("b"), &goimage.Config{Env: []string{"A=" + long}}},
		{"too many variables", []byte("b"), &goimage.Config{Env: make([]string, goimage.MaxEnv+1)}},
		{"an argument with a NUL byte", []byte("b"), &goimage.Config{Cmd: []string{"a\x00b"}}},
		{"too many arguments", []byte("b"), &goimage.Config{Entrypoint: make([]string, goimage.MaxArgs+1)}},
		{"an empty label key", []byte("b"), &goimage.Config{Labels: map[string]string{"": "x"}}},
		{"a label too long", []byte("b"), &goimage.Config{Labels: map[string]string{"k": long}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := goimage.FromBinary(tc.bin, tc.cfg); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("FromBinary = %v, want an error matching ErrInvalid", err)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	img, err := goimage.Build(t.Context(), "testdata/hello", &goimage.Config{Cmd: []string{"--greet"}})
	if err != nil {
		t.Fatal(err)
	}
	got := configOf(t, img)
	if diff := cmp.Diff([]string{"--greet"}, got.Cmd); diff != "" {
		t.Errorf("Cmd (-want +got):\n%s", diff)
	}
	m, err := img.Manifest()
	if err != nil || len(m.Layers) != 1 || m.Layers[0].Size == 0 {
		t.Errorf("manifest = %+v, %v; want one layer holding the binary", m, err)
	}
	if _, err := goimage.Build(t.Context(), "testdata/missing", nil); err == nil {
		t.Error("Build of a missing directory succeeded")
	}
}
