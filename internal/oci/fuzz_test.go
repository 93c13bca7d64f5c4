package oci

import (
	"errors"
	"testing"

	"github.com/convox-go/convox/providers"
)

// FuzzParse checks that any reference either parses into a Ref whose
// String parses back to the same Ref, or fails with ErrInvalid.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"web", "web:v1", "web@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "host:5000/org/web:v1", "Web", "web:", ":v1", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		r, err := Parse(ref, "registry.test")
		if err != nil {
			if !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, want ErrInvalid", ref, err)
			}
			return
		}
		again, err := Parse(r.String(), "registry.test")
		if err != nil {
			t.Fatalf("Parse(%q) gave %q, which does not parse: %v", ref, r.String(), err)
		}
		if again != r {
			t.Fatalf("Parse(%q) = %+v, but its String %q parses to %+v", ref, r, r.String(), again)
		}
	})
}
