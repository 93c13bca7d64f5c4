package awstest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
)

func TestCounterCountsEachOperationOncePerCall(t *testing.T) {
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if requests == 1 {
			// The first request is throttled once: the retry must not count.
			w.WriteHeader(400)
			w.Write([]byte(`{"__type":"ThrottlingException","message":"slow down"}`))
			return
		}
		w.Write([]byte(`{"repositories":[]}`))
	}))
	defer srv.Close()

	calls := awstest.NewCounter()
	cfg := awstest.ConfigFor(srv.URL)
	cfg.APIOptions = append(cfg.APIOptions, calls.AddTo)
	client := ecr.NewFromConfig(cfg)
	for range 2 {
		if _, err := client.DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.ListImages(context.Background(), &ecr.ListImagesInput{RepositoryName: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"DescribeRepositories": 2, "ListImages": 1}
	if diff := cmp.Diff(want, calls.Counts()); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if requests != 4 {
		t.Errorf("requests = %d, want 4 (one retried call)", requests)
	}
	calls.Reset()
	if got := calls.Count("DescribeRepositories"); got != 0 {
		t.Errorf("after Reset, count = %d, want 0", got)
	}
}

func TestNameIsUniqueAndAValidAppName(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		n := awstest.Name(t, "web-prefix-13")
		if err := providers.ValidateName("app", n, providers.MaxAppName); err != nil {
			t.Fatalf("Name = %q: %v", n, err)
		}
		if seen[n] {
			t.Fatalf("Name returned %q twice", n)
		}
		seen[n] = true
	}
}

func TestEndpointSkipsWithAMessageWhenUnset(t *testing.T) {
	t.Setenv(awstest.EndpointEnv, "")
	ran := false
	t.Run("inner", func(t *testing.T) {
		awstest.Endpoint(t)
		ran = true
	})
	if ran {
		t.Error("Endpoint did not skip with the variable unset")
	}
}
