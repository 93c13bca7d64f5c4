package awstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ECRImages puts images in an emulator's ECR and in an in-process registry
// data path, which neither emulator serves: each image's blobs and
// manifest go to the data path, its manifest to ECR with PutImage.
// Transport reroutes a registry's data-path requests to it.
type ECRImages struct {
	api     *ecr.Client
	data    *httptest.Server
	backend Backend
}

// NewECRImages returns an ECRImages putting images through api (a client
// of emulator b, allowed to call ListImages, BatchGetImage and PutImage).
func NewECRImages(t testing.TB, api *ecr.Client, b Backend) *ECRImages {
	t.Helper()
	data := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(data.Close)
	return &ECRImages{api: api, data: data, backend: b}
}

// URL is the in-process data path's base URL (http://127.0.0.1:port).
func (e *ECRImages) URL() *url.URL {
	u, _ := url.Parse(e.data.URL)
	return u
}

// Transport sends every request to the in-process data path.
func (e *ECRImages) Transport() http.RoundTripper {
	target, _ := url.Parse(e.data.URL)
	return reroute{target}
}

type reroute struct{ target *url.URL }

func (r reroute) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = r.target.Scheme, r.target.Host
	req.Host = r.target.Host
	return http.DefaultTransport.RoundTrip(req)
}

// Push puts img in the data path and in ECR under repo:tag and returns its
// digest.
//
// ECR moves a tag to the image pushed with it and keeps the image it moved
// from, untagged, in the repository (its digest still resolves). kumo
// keeps the tag on the old image too, so the old image is re-put without
// it first; moto deletes the old image, so it is re-put without a tag
// afterwards.
func (e *ECRImages) Push(t testing.TB, repo, tag string, img v1.Image) string {
	t.Helper()
	ctx := context.Background()
	ref, err := name.ParseReference(e.data.Listener.Addr().String() + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.api.ListImages(ctx, &ecr.ListImagesInput{RepositoryName: aws.String(repo)})
	if err != nil {
		t.Fatal(err)
	}
	var moved []*string // manifests of the images holding the tag
	for _, id := range list.ImageIds {
		if aws.ToString(id.ImageTag) != tag {
			continue
		}
		old, err := e.api.BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String(repo), ImageIds: []types.ImageIdentifier{{ImageDigest: id.ImageDigest}}})
		if err != nil || len(old.Images) == 0 {
			t.Fatalf("read image %s to move its tag: %v", aws.ToString(id.ImageDigest), err)
		}
		moved = append(moved, old.Images[0].ImageManifest)
	}
	putUntagged := func() {
		for _, m := range moved {
			if _, err := e.api.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: m, ImageDigest: aws.String(digestOf(*m))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if e.backend == Kumo {
		putUntagged()
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// imageDigest is "The image digest of the image manifest corresponding
	// to the image" (PutImage); moto computes another digest without it.
	out, err := e.api.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String(tag), ImageDigest: aws.String(d.String())})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.Image.ImageId.ImageDigest); got != d.String() {
		t.Fatalf("ECR digest %s differs from the manifest digest %s", got, d)
	}
	if e.backend == Moto {
		putUntagged()
	}
	return d.String()
}

func digestOf(manifest string) string {
	sum := sha256.Sum256([]byte(manifest))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TokensValidFor12Hours is a client option (for aws.Config.APIOptions)
// that sets the expiry of moto's ECR authorization tokens, a fixed date in
// 2015, to what ECR gives: "The authorization token is valid for 12
// hours."
func TokensValidFor12Hours(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awstest.TokensValidFor12Hours",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if o, ok := out.Result.(*ecr.GetAuthorizationTokenOutput); ok {
				for i := range o.AuthorizationData {
					o.AuthorizationData[i].ExpiresAt = aws.Time(time.Now().Add(12 * time.Hour))
				}
			}
			return out, md, err
		}), middleware.Before)
}
