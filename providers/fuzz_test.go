package providers_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/convox-go/convox/providers"
)

func FuzzValidateAppProcess(f *testing.F) {
	for _, s := range [][2]string{{"web", "web"}, {"a", "b"}, {"my-app", "worker-2"}, {"Web", "x"}, {"a--b", "c"}, {"", ""}, {strings.Repeat("a", 21), "w"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, app, process string) {
		err := providers.ValidateAppProcess(app, process)
		if err != nil {
			if !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		for _, set := range []string{"", "g", "abc"} {
			name := providers.ResourceName(app, process, set)
			if len(name) > providers.MaxResourceName {
				t.Fatalf("valid names %q, %q give a %d-character resource name", app, process, len(name))
			}
		}
		for _, s := range []string{app, process} {
			if s[0] < 'a' || s[0] > 'z' || strings.HasSuffix(s, "-") || strings.Contains(s, "--") || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
				t.Fatalf("accepted a malformed name %q", s)
			}
		}
	})
}

func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"app/web", "release/web/0000000000000001", "", "a\x00b", "\xff", strings.Repeat("k", 1025)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := providers.ValidateKey(key)
		valid := key != "" && len(key) <= providers.MaxKeyLen && utf8.ValidString(key) && !strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f })
		if valid != (err == nil) {
			t.Fatalf("ValidateKey(%q) = %v, want valid=%v", key, err, valid)
		}
		if err != nil && !errors.Is(err, providers.ErrInvalid) {
			t.Fatalf("error %v does not match ErrInvalid", err)
		}
	})
}

// FuzzValidateHealthPath checks that a path ValidateHealthPath accepts,
// put in a URL as the local balancer's probe does, always names the
// target's host and that exact path: no path can redirect a probe.
func FuzzValidateHealthPath(f *testing.F) {
	for _, s := range []string{"/health", "", "@127.0.0.1:1/x", "health", "//evil/x", "http://evil/", "/a?b", "/a#b", "/%2e", "/a\nb", "/:@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		err := providers.ValidateHealthPath(path)
		if err != nil {
			if !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		u, perr := url.Parse((&url.URL{Scheme: "http", Host: "target:1", Path: path}).String())
		if perr != nil {
			t.Fatalf("accepted path %q gives an unparsable URL: %v", path, perr)
		}
		if u.Host != "target:1" || u.User != nil || u.Path != path || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("accepted path %q gives host %q, user %v, path %q, query %q, fragment %q", path, u.Host, u.User, u.Path, u.RawQuery, u.Fragment)
		}
	})
}
