package ociregistry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ociregistry"
	"github.com/convox-go/convox/providers/providertest"
)

const user, pass = "deploy", "s3cret"

// auth is how the test registry authenticates requests.
type auth int

const (
	anonymous auth = iota
	basic
	token
)

// newServer starts an in-process registry behind the given authentication.
// The token flow issues one bearer token for the right basic credentials.
func newServer(t *testing.T, a auth) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	const bearer = "token-for-deploy"
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, hasBasic := r.BasicAuth()
		goodBasic := hasBasic && u == user && p == pass
		switch a {
		case basic:
			if !goodBasic {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		case token:
			if r.URL.Path == "/token" {
				if !goodBasic {
					http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
					return
				}
				json.NewEncoder(w).Encode(map[string]string{"token": bearer})
				return
			}
			if r.Header.Get("Authorization") != "Bearer "+bearer {
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func newRegistry(t *testing.T, host string, opts *ociregistry.Options) *ociregistry.Registry {
	t.Helper()
	reg, err := ociregistry.New(host, opts)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// push writes img to host/repo:tag with the test credentials.
func push(t *testing.T, host, repo, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass}), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestConformance(t *testing.T) {
	for _, tt := range []struct {
		name string
		auth auth
	}{{"anonymous", anonymous}, {"basic auth", basic}, {"token auth", token}} {
		t.Run(tt.name, func(t *testing.T) {
			host := newServer(t, tt.auth)
			reg := newRegistry(t, host, &ociregistry.Options{Username: user, Password: pass})
			providertest.TestRegistry(t, providertest.RegistryHarness{
				New: func(t *testing.T) providers.Registry { return reg },
				Push: func(t *testing.T, _ providers.Registry, repo, tag string) string {
					return push(t, host, repo, tag, randomImage(t))
				},
			})
		})
	}
}

func TestResolveReadsTheImageConfiguration(t *testing.T) {
	host := newServer(t, anonymous)
	img, err := mutate.Config(randomImage(t), v1.Config{
		Entrypoint: []string{"/bin/app"}, Cmd: []string{"serve"}, Env: []string{"PATH=/bin", "MODE=prod"}, WorkingDir: "/srv",
	})
	if err != nil {
		t.Fatal(err)
	}
	digest := push(t, host, "team/web", "v1", img)
	reg := newRegistry(t, host, nil)
	got, err := reg.Resolve(t.Context(), "team/web:v1")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	want := providers.Image{
		Repository: host + "/team/web", Digest: digest, Tag: "v1",
		Entrypoint: []string{"/bin/app"}, Cmd: []string{"serve"}, Env: []string{"PATH=/bin", "MODE=prod"}, WorkingDir: "/srv", Size: size,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
}

func TestResolveOfAnIndexPinsTheIndexAndDescribesThePlatformImage(t *testing.T) {
	host := newServer(t, anonymous)
	amd, _ := mutate.Config(randomImage(t), v1.Config{Cmd: []string{"amd64"}})
	arm, _ := mutate.Config(randomImage(t), v1.Config{Cmd: []string{"arm64"}})
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref, _ := name.ParseReference(host + "/web:multi")
	if err := remote.WriteIndex(ref, idx, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	digest, _ := idx.Digest()
	tests := []struct {
		platform string
		wantCmd  []string
	}{{"", []string{"amd64"}}, {"linux/arm64", []string{"arm64"}}}
	for _, tt := range tests {
		t.Run("platform "+tt.platform, func(t *testing.T) {
			got, err := newRegistry(t, host, &ociregistry.Options{Platform: tt.platform}).Resolve(t.Context(), "web:multi")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{digest.String(), strings.Join(tt.wantCmd, " ")}, []string{got.Digest, strings.Join(got.Cmd, " ")}); diff != "" {
				t.Errorf("digest and command (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorsMapToSentinels(t *testing.T) {
	basicHost := newServer(t, basic)
	tokenHost := newServer(t, token)
	push(t, basicHost, "web", "v1", randomImage(t))
	tests := []struct {
		name string
		host string
		opts *ociregistry.Options
		ref  string
		want error
	}{
		{"wrong basic credentials are a permission error", basicHost, &ociregistry.Options{Username: user, Password: "wrong"}, "web:v1", providers.ErrPermission},
		{"no credentials on a token registry are a permission error", tokenHost, nil, "web:v1", providers.ErrPermission},
		{"an unreachable registry is unavailable", "127.0.0.1:1", nil, "web:v1", providers.ErrUnavailable},
		{"a reference to another registry is invalid", basicHost, nil, "registry.example.com/web:v1", providers.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newRegistry(t, tt.host, tt.opts).Resolve(t.Context(), tt.ref)
			if !errors.Is(err, tt.want) {
				t.Errorf("Resolve(%q): %v, want %v", tt.ref, err, tt.want)
			}
		})
	}
}

func TestCredentialsAreTheConfiguredOnesAndRedacted(t *testing.T) {
	reg := newRegistry(t, "registry.example.com", &ociregistry.Options{Username: user, Password: pass})
	c, err := reg.Credentials(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(providers.Credentials{Registry: "registry.example.com", Username: user, Password: pass}, c); diff != "" {
		t.Errorf("Credentials (-want +got):\n%s", diff)
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, pass) {
			t.Errorf("credentials text %q reveals the password", s)
		}
	}
}

func TestNewRejectsAMalformedHost(t *testing.T) {
	for _, host := range []string{"", "http://registry.example.com", "registry.example.com/path"} {
		if _, err := ociregistry.New(host, nil); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("New(%q): %v, want ErrInvalid", host, err)
		}
	}
}
