package local

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/convox-go/convox/providers"
)

// apiResponse is what a raw request to the registry's API returned.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// code returns the first distribution error code of the response body.
func (a apiResponse) code() string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(a.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// api sends a request to the rack's registry over HTTP with the given
// basic auth (user "" sends none) and returns the whole response.
func api(t *testing.T, r *Rack, method, path string, body io.Reader, user, pass string, header http.Header) apiResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+r.Registry().Host()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// authed sends a request with the rack's credential.
func authed(t *testing.T, r *Rack, method, path string, body io.Reader, header http.Header) apiResponse {
	t.Helper()
	c, err := r.Registry().Credentials(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return api(t, r, method, path, body, c.Username, c.Password, header)
}

func TestRegistryRequiresTheCredential(t *testing.T) {
	r := openTestRack(t, "")
	pushed, err := r.Registry().PushImage(t.Context(), "hello", "v1", mustRandomImage(t))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := r.Registry().Credentials(t.Context(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	if creds.Username == "" || len(creds.Password) < 32 || creds.Registry != r.Registry().Host() {
		t.Fatalf("Credentials = %v, want a user name and a long password for %s", creds, r.Registry().Host())
	}
	routes := []struct{ method, path string }{
		{http.MethodGet, "/v2/"},
		{http.MethodGet, "/v2/_catalog"},
		{http.MethodGet, "/v2/hello/tags/list"},
		{http.MethodGet, "/v2/hello/manifests/v1"},
		{http.MethodHead, "/v2/hello/manifests/v1"},
		{http.MethodGet, "/v2/hello/blobs/" + pushed.Digest},
		{http.MethodPut, "/v2/hello/manifests/v1"},
		{http.MethodDelete, "/v2/hello/manifests/v1"},
		{http.MethodDelete, "/v2/hello/manifests/" + pushed.Digest},
		{http.MethodPost, "/v2/hello/blobs/uploads/"},
		{http.MethodPatch, "/v2/hello/blobs/uploads/0123"},
		{http.MethodGet, "/v2/../etc/tags/list"},
	}
	callers := []struct {
		name       string
		user, pass string
	}{
		{"no credential", "", ""},
		{"a wrong password", creds.Username, wrong(creds.Password)},
		{"an empty password", creds.Username, ""},
		{"a wrong user name", "root", creds.Password},
	}
	for _, c := range callers {
		for _, rt := range routes {
			t.Run(c.name+" is refused "+rt.method+" "+rt.path, func(t *testing.T) {
				got := api(t, r, rt.method, rt.path, strings.NewReader("{}"), c.user, c.pass, nil)
				wantCode := "UNAUTHORIZED"
				if rt.method == http.MethodHead {
					wantCode = "" // a HEAD response has no body
				}
				want := []any{http.StatusUnauthorized, wantCode, `Basic realm="convox local registry"`}
				if diff := cmp.Diff(want, []any{got.status, got.code(), got.header.Get("WWW-Authenticate")}); diff != "" {
					t.Errorf("(-want +got):\n%s\nbody %s", diff, got.body)
				}
			})
		}
	}
	t.Run("the rack's credential is accepted", func(t *testing.T) {
		got := api(t, r, http.MethodGet, "/v2/hello/tags/list", nil, creds.Username, creds.Password, nil)
		if diff := cmp.Diff(`{"name":"hello","tags":["v1"]}`, strings.TrimSpace(string(got.body))); diff != "" || got.status != http.StatusOK {
			t.Errorf("status %d (-want +got):\n%s", got.status, diff)
		}
	})
	if got, err := r.Registry().Resolve(t.Context(), "hello:v1"); err != nil || got.Digest != pushed.Digest {
		t.Errorf("after the refused requests hello:v1 = %s, %v; want %s", got.Digest, err, pushed.Digest)
	}
}

// mustRandomImage returns a random one-layer image.
func mustRandomImage(t *testing.T) v1.Image {
	t.Helper()
	return mustRandomImageOfSize(t, 512)
}

// mustRandomImageOfSize returns a random image with a layer of size bytes.
func mustRandomImageOfSize(t *testing.T, size int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// syncBuffer collects a logger's output safely across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(s, nil)) }

func TestRegistryCredentialFile(t *testing.T) {
	tests := []struct {
		name        string
		prepare     func(t *testing.T, path, old string)
		wantKept    bool
		wantWarning string
	}{
		{"a private file of the owner is kept", func(t *testing.T, path, old string) {}, true, ""},
		{"a file others could read is replaced", func(t *testing.T, path, old string) {
			must(t, os.Chmod(path, 0o644))
		}, false, "others could read it"},
		{"a symbolic link is replaced, not followed", func(t *testing.T, path, old string) {
			target := filepath.Join(t.TempDir(), "planted")
			must(t, os.WriteFile(target, []byte(strings.Repeat("a", 64)), 0o600))
			must(t, os.Remove(path))
			must(t, os.Symlink(target, path))
		}, false, "symbolic link"},
		{"a file without a generated password is replaced", func(t *testing.T, path, old string) {
			must(t, os.WriteFile(path, []byte("hunter2\n"), 0o600))
		}, false, "64 hex digits"},
		{"a missing file is generated again", func(t *testing.T, path, old string) {
			must(t, os.Remove(path))
		}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := openTestRack(t, dir)
			path := filepath.Join(dir, "registry", CredentialFile)
			old := r.Registry().cred.password
			assertPrivateFile(t, path)
			must(t, r.Close())

			tt.prepare(t, path, old)
			var logs syncBuffer
			opts := testOptions()
			opts.Logger = logs.logger()
			r2, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			got := r2.Registry().cred.password
			if kept := got == old; kept != tt.wantKept {
				t.Errorf("password kept = %v, want %v", kept, tt.wantKept)
			}
			assertPrivateFile(t, path)
			data, err := os.ReadFile(path)
			must(t, err)
			if strings.TrimSpace(string(data)) != got {
				t.Errorf("the file does not hold the password the registry accepts")
			}
			log := logs.String()
			if warned := strings.Contains(log, "replacing the registry credential"); warned != (tt.wantWarning != "") || !strings.Contains(log, tt.wantWarning) {
				t.Errorf("log = %q, want a replacement warning = %v, containing %q", log, tt.wantWarning != "", tt.wantWarning)
			}
		})
	}
}

func assertPrivateFile(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want a regular file with mode 0600", path, fi.Mode())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// foreignEnv names the environment variables of the foreign-user client.
const (
	foreignHostEnv   = "CONVOX_TEST_FOREIGN_REGISTRY"
	foreignDigestEnv = "CONVOX_TEST_FOREIGN_DIGEST"
	foreignCredEnv   = "CONVOX_TEST_FOREIGN_CREDENTIAL_FILE"
)

// foreignResult is what one attempt of the foreign-user client got.
type foreignResult struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Err    string `json:"err,omitempty"`
}

// TestRegistryRefusesAnotherUnixUser runs a registry client as the user
// nobody against a rack of root: it tries to read the credential, push a
// new repository, overwrite a tag, delete the image by tag and digest, and
// pull it. Every request is refused with 401 and the image stays.
func TestRegistryRefusesAnotherUnixUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a client as another Unix user needs root (setpriv); run the tests as root to check this")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed: cannot run a client as another user")
	}
	r := openTestRack(t, "")
	pushed, err := r.Registry().PushImage(t.Context(), "hello", "v1", mustRandomImage(t))
	must(t, err)

	// The test binary, copied where the user nobody can execute it.
	self, err := os.Executable()
	must(t, err)
	bindir, err := os.MkdirTemp("", "convox-foreign-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(bindir) })
	must(t, os.Chmod(bindir, 0o755))
	bin := filepath.Join(bindir, "client.test")
	data, err := os.ReadFile(self)
	must(t, err)
	must(t, os.WriteFile(bin, data, 0o755))

	cmd := exec.CommandContext(t.Context(), setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin,
		"-test.run=^TestRegistryForeignUserClient$", "-test.count=1", "-test.v")
	cmd.Dir = bindir
	cmd.Env = append(os.Environ(),
		foreignHostEnv+"="+r.Registry().Host(),
		foreignDigestEnv+"="+pushed.Digest,
		foreignCredEnv+"="+filepath.Join(r.Dir(), "registry", CredentialFile),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the client as nobody failed: %v\n%s", err, out)
	}
	got := map[string]foreignResult{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var one map[string]foreignResult
			must(t, json.Unmarshal([]byte(rest), &one))
			for k, v := range one {
				got[k] = v
			}
		}
	}
	refused := foreignResult{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED"}
	want := map[string]foreignResult{
		"read the credential file": {Err: "permission denied"},
		// remote.Write starts with HEAD requests, whose 401 has no body.
		"push a new repository":              {Status: http.StatusUnauthorized},
		"overwrite hello:v1":                 {Status: http.StatusUnauthorized},
		"overwrite hello:v1 with a manifest": refused,
		"delete hello:v1":                    refused,
		"delete hello by digest":             refused,
		"pull hello:v1":                      refused,
		"delete with a guessed password":     refused,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the client as nobody (-want +got):\n%s\noutput:\n%s", diff, out)
	}
	img, err := r.Registry().Resolve(t.Context(), "hello:v1")
	if err != nil || img.Digest != pushed.Digest {
		t.Errorf("hello:v1 = %s, %v after the attempts; want %s unchanged", img.Digest, err, pushed.Digest)
	}
	if _, err := r.Registry().Resolve(t.Context(), "intruder:v1"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Resolve(intruder:v1) error = %v, want ErrNotFound: the push must not create it", err)
	}
}

// TestRegistryForeignUserClient is the client TestRegistryRefusesAnotherUnixUser
// runs as another user; it does nothing on its own.
func TestRegistryForeignUserClient(t *testing.T) {
	host := os.Getenv(foreignHostEnv)
	if host == "" {
		t.Skip("run by TestRegistryRefusesAnotherUnixUser")
	}
	anon := []remote.Option{remote.WithContext(t.Context()), remote.WithAuth(authn.Anonymous)}
	report := func(action string, err error) {
		res := foreignResult{}
		var te *transport.Error
		switch {
		case errors.As(err, &te):
			res.Status = te.StatusCode
			if len(te.Errors) > 0 {
				res.Code = string(te.Errors[0].Code)
			}
		case errors.Is(err, os.ErrPermission):
			res.Err = "permission denied"
		case err != nil:
			res.Err = err.Error()
		default:
			res.Err = "succeeded"
		}
		b, _ := json.Marshal(map[string]foreignResult{action: res})
		fmt.Printf("RESULT %s\n", b)
	}
	_, err := os.ReadFile(os.Getenv(foreignCredEnv))
	report("read the credential file", err)
	img := mustRandomImage(t)
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(host + "/" + s)
		must(t, err)
		return r
	}
	report("push a new repository", remote.Write(ref("intruder:v1"), img, anon...))
	report("overwrite hello:v1", remote.Write(ref("hello:v1"), img, anon...))
	raw, err := img.RawManifest()
	must(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, "http://"+host+"/v2/hello/manifests/v1", bytes.NewReader(raw))
	must(t, err)
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		err = transport.CheckError(resp, http.StatusCreated)
		resp.Body.Close()
	}
	report("overwrite hello:v1 with a manifest", err)
	report("delete hello:v1", remote.Delete(ref("hello:v1"), anon...))
	report("delete hello by digest", remote.Delete(ref("hello@"+os.Getenv(foreignDigestEnv)), anon...))
	_, err = remote.Image(ref("hello:v1"), anon...)
	report("pull hello:v1", err)
	guessed := authn.FromConfig(authn.AuthConfig{Username: RegistryUsername, Password: strings.Repeat("0", 64)})
	report("delete with a guessed password", remote.Delete(ref("hello:v1"), remote.WithContext(t.Context()), remote.WithAuth(guessed)))
}

// wrong returns password with its first character changed: another
// password of the same length.
func wrong(password string) string {
	first := "0"
	if strings.HasPrefix(password, first) {
		first = "1"
	}
	return first + password[1:]
}
