package providers_test

import (
	"strings"
	"testing"

	"github.com/convox-go/convox/providers"
)

func TestScopedName(t *testing.T) {
	long := strings.Repeat("a", providers.MaxAppName)
	tests := []struct {
		name       string
		a, b       [3]string // namespace, app, process
		wantSame   bool
		wantLegacy bool // a's name is ResourceName(app, process, "")
	}{
		{"no namespace keeps the names racks always had", [3]string{"", "shop", "web"}, [3]string{"", "shop", "web"}, true, true},
		{"one namespace, app and process give one name", [3]string{"prod", "shop", "web"}, [3]string{"prod", "shop", "web"}, true, false},
		{"two racks' names for one app differ", [3]string{"prod", "shop", "web"}, [3]string{"stage", "shop", "web"}, false, false},
		{"a hyphen moved between app and process gives another name", [3]string{"prod", "shop", "web-g"}, [3]string{"prod", "shop-web", "g"}, false, false},
		{"a hyphen moved between namespace and app gives another name", [3]string{"a-b", "c", "web"}, [3]string{"a", "b-c", "web"}, false, false},
		{"long names differing after the readable part differ", [3]string{"prod", long, "web"}, [3]string{"prod", long, "api"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := providers.ScopedName(tt.a[0], tt.a[1], tt.a[2])
			y := providers.ScopedName(tt.b[0], tt.b[1], tt.b[2])
			if (x == y) != tt.wantSame {
				t.Errorf("ScopedName%v = %q, ScopedName%v = %q; same = %t, want %t", tt.a, x, tt.b, y, x == y, tt.wantSame)
			}
			if legacy := x == providers.ResourceName(tt.a[1], tt.a[2], ""); legacy != tt.wantLegacy {
				t.Errorf("ScopedName%v = %q; equal to ResourceName: %t, want %t", tt.a, x, legacy, tt.wantLegacy)
			}
			for _, n := range []string{x, y} {
				if err := providers.ValidateName("resource", n+"-abc", providers.MaxResourceName); err != nil {
					t.Errorf("%q with a three-character set suffix: %v", n, err)
				}
			}
		})
	}
}

func TestValidateNamespace(t *testing.T) {
	for _, tt := range []struct {
		ns string
		ok bool
	}{
		{"", true}, {"prod", true}, {"team-a", true}, {"Prod", false}, {"a/b", false}, {"a--b", false}, {strings.Repeat("a", providers.MaxNamespace+1), false},
	} {
		if err := providers.ValidateNamespace(tt.ns); (err == nil) != tt.ok {
			t.Errorf("ValidateNamespace(%q) = %v, want ok %t", tt.ns, err, tt.ok)
		}
	}
}
