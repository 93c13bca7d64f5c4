package ecrregistry

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// recorder records the URL and Host of each request it is given.
type recorder struct{ got []string }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = append(r.got, req.Host+" "+req.URL.String())
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func TestEndpointRedirectsOnlyTheRegistryHost(t *testing.T) {
	const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	mirror, _ := url.Parse("https://mirror.internal:5000/ignored/path")
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"a request for the registry host goes to the endpoint, path and query kept",
			"https://" + registry + "/v2/web/manifests/sha256:ab?x=1", []string{"mirror.internal:5000 https://mirror.internal:5000/v2/web/manifests/sha256:ab?x=1"}},
		{"the host matches without regard to case",
			"https://" + "123456789012.DKR.ecr.us-east-1.amazonaws.com" + "/v2/", []string{"mirror.internal:5000 https://mirror.internal:5000/v2/"}},
		{"a request for another host (a layer's storage URL) goes out unchanged",
			"https://prod-us-east-1-starport-layer-bucket.s3.amazonaws.com/blob?sig=1", []string{" https://prod-us-east-1-starport-layer-bucket.s3.amazonaws.com/blob?sig=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := &recorder{}
			rt := &hostRedirect{host: registry, target: mirror, base: base}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = ""
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, base.got); diff != "" {
				t.Errorf("requests sent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnEndpointWithoutSchemeOrHostIsRefused(t *testing.T) {
	const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	for _, raw := range []string{"mirror.internal:5000", "ftp://mirror.internal", "https:///v2"} {
		t.Run(raw, func(t *testing.T) {
			target, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			base := &recorder{}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+registry+"/v2/", nil)
			_, err = (&hostRedirect{host: registry, target: target, base: base}).RoundTrip(req)
			if !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("RoundTrip: %v, want an error matching ErrInvalid", err)
			}
			if len(base.got) != 0 {
				t.Errorf("sent %q, want nothing sent", base.got)
			}
		})
	}
}
