package oci_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/convox-go/convox/internal/oci"
	"github.com/convox-go/convox/providers"
)

const host = "registry.example.com:5000"

var digest = "sha256:" + strings.Repeat("ab", 32)

func TestParseAcceptsEveryReferenceForm(t *testing.T) {
	tests := []struct {
		name, ref string
		want      oci.Ref
	}{
		{"name and tag", "web:v1", oci.Ref{Repository: "web", Tag: "v1"}},
		{"no tag means latest", "web", oci.Ref{Repository: "web", Tag: "latest"}},
		{"host, path and tag", host + "/team/web:v1", oci.Ref{Repository: "team/web", Tag: "v1"}},
		{"name and digest", "web@" + digest, oci.Ref{Repository: "web", Digest: digest}},
		{"host, name and digest", host + "/web@" + digest, oci.Ref{Repository: "web", Digest: digest}},
		{"separators inside components", "team/a_b__c--d.e:v1.0-rc_1", oci.Ref{Repository: "team/a_b__c--d.e", Tag: "v1.0-rc_1"}},
		{"a first component with a dot is a host", host + "/a.b/c:v1", oci.Ref{Repository: "a.b/c", Tag: "v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := oci.Parse(tt.ref, host)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.ref, diff)
			}
		})
	}
}

func TestParseRejectsMalformedReferencesAsInvalid(t *testing.T) {
	tests := []struct{ name, ref string }{
		{"empty", ""},
		{"empty tag", "web:"},
		{"tag with a space", "web:bad tag"},
		{"non-hex digest", "web@sha256:nothex"},
		{"unknown digest algorithm", "web@md5:0123"},
		{"uppercase repository", "UPPER:v1"},
		{"digest without repository", "@" + digest},
		{"leading hyphen", "-web:v1"},
		{"double slash", "a//b:v1"},
		{"another registry", "other.example.com/web:v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := oci.Parse(tt.ref, host); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Parse(%q): %v, want ErrInvalid", tt.ref, err)
			}
		})
	}
}

func TestSentinelMapsRegistryErrors(t *testing.T) {
	regErr := func(status int, code transport.ErrorCode) error {
		te := &transport.Error{StatusCode: status}
		if code != "" {
			te.Errors = []transport.Diagnostic{{Code: code}}
		}
		return te
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"unknown manifest is not found", regErr(404, transport.ManifestUnknownErrorCode), providers.ErrNotFound},
		{"unknown repository is not found", regErr(404, transport.NameUnknownErrorCode), providers.ErrNotFound},
		{"unauthorized is permission", regErr(401, transport.UnauthorizedErrorCode), providers.ErrPermission},
		{"denied is permission", regErr(403, transport.DeniedErrorCode), providers.ErrPermission},
		{"too many requests is throttled", regErr(429, transport.TooManyRequestsErrorCode), providers.ErrThrottled},
		{"invalid tag is invalid", regErr(400, transport.TagInvalidErrorCode), providers.ErrInvalid},
		{"unsupported is unimplemented", regErr(405, transport.UnsupportedErrorCode), providers.ErrUnimplemented},
		{"bare 503 is unavailable", regErr(http.StatusServiceUnavailable, ""), providers.ErrUnavailable},
		{"bare 404 is not found", regErr(404, ""), providers.ErrNotFound},
		{"a canceled context has no sentinel", context.Canceled, nil},
		{"an unknown error has no sentinel", errors.New("boom"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oci.Sentinel(tt.err); got != tt.want {
				t.Errorf("Sentinel = %v, want %v", got, tt.want)
			}
			w := oci.Wrap("op", tt.err)
			if !errors.Is(w, tt.err) || (tt.want != nil && !errors.Is(w, tt.want)) {
				t.Errorf("Wrap = %v: want it to match the cause and %v", w, tt.want)
			}
		})
	}
}
