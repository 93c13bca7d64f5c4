package awsmigration_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/internal/elbtest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecsscheduler"
)

// cluster is the ECS cluster of every test; each test has its own ECS test server.
const cluster = "rack"

// harness is what every migration test runs on: the AWS emulator (skipping
// the test when it is not running), an ECS test server that steps on every
// poll, and a DynamoDB table on the emulator for the store. Providers are
// built anew by each client, so that a second client is what a process
// started after a crash would have: nothing but the endpoints and the
// store's documents in common with the first.
type harness struct {
	t     *testing.T
	cfg   aws.Config // the emulator's
	ecs   *ecstest.Server
	table string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	cfg := awstest.Config(t) // skips without the emulator
	h := &harness{t: t, cfg: cfg, ecs: ecstest.New(t, &ecstest.Options{AutoStep: true}), table: awstest.Name(t, "store")}
	if err := dynamostore.EnsureTable(t.Context(), dynamodb.NewFromConfig(cfg), h.table); err != nil {
		t.Fatalf("store table: %v", err)
	}
	return h
}

// ecsClient returns a new client of the ECS test server.
func (h *harness) ecsClient() *ecs.Client {
	return ecs.NewFromConfig(awstest.ConfigFor(h.ecs.URL))
}

// scheduler returns a new ECS scheduler on the test server.
func (h *harness) scheduler() *ecsscheduler.Scheduler {
	return ecsscheduler.New(h.ecsClient(), &ecsscheduler.Options{
		Cluster: cluster, Subnets: []string{"subnet-a"}, SecurityGroups: []string{"sg-1"},
		ExecutionRoleARN: "arn:aws:iam::000000000000:role/exec",
	})
}

// store returns a new store on the harness's table.
func (h *harness) store() providers.Store {
	return dynamostore.New(dynamodb.NewFromConfig(h.cfg), h.table, nil)
}

// client returns a client of rack, with the scheduler and store filled in
// when rack has none, logging every event and passing it to each of
// onEvent. Deploys poll every few milliseconds: the ECS test server steps
// on each poll, not with time.
func (h *harness) client(rack convox.Rack, opts *convox.Options, onEvent ...func(convox.Event)) *convox.Client {
	h.t.Helper()
	if rack.Scheduler == nil && len(rack.Schedulers) == 0 {
		rack.Scheduler = h.scheduler()
	}
	if rack.Store == nil {
		rack.Store = h.store()
	}
	o := convox.Options{PollInterval: 5 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond, Timeout: time.Minute, CompensateTimeout: time.Minute}
	if opts != nil {
		o = *opts
	}
	t := h.t
	o.OnEvent = func(e convox.Event) {
		t.Log(e)
		for _, f := range onEvent {
			f(e)
		}
	}
	c, err := convox.New(rack, &o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// synced is a balancer whose Health first registers the ECS test server's
// running tasks with the load balancers their services name, as ECS does
// for services with load balancers.
type synced struct {
	providers.Balancer
	att *elbtest.Attacher
}

// Health implements providers.Balancer.
func (s synced) Health(ctx context.Context, id string) ([]providers.TargetHealth, error) {
	if err := s.att.Sync(ctx); err != nil {
		return nil, err
	}
	return s.Balancer.Health(ctx, id)
}

// healthy counts the targets of a route in the state TargetHealthy.
func healthy(t *testing.T, b providers.Balancer, route string) int {
	t.Helper()
	hs, err := b.Health(t.Context(), route)
	if err != nil {
		t.Fatalf("Health(%s): %v", route, err)
	}
	n := 0
	for _, h := range hs {
		if h.State == providers.TargetHealthy {
			n++
		}
	}
	return n
}

// newRegistryServer starts an in-process OCI distribution registry on the
// loopback interface, serving through wrap when it is not nil.
func newRegistryServer(t *testing.T, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// ecrDataPath stands in for ECR's OCI data path, which the emulator does
// not serve: an in-process registry that, as ECR does, makes a manifest
// pushed over the data path an image of the ECR API (PutImage on the
// emulator, tagged when it was pushed by tag), so that BatchGetImage,
// ListImages and BatchDeleteImage see what was pushed. A push whose image
// the API refuses fails.
type ecrDataPath struct {
	next http.Handler
	api  *ecr.Client

	mu     sync.Mutex
	puts   int
	failed []string
}

// ServeHTTP implements http.Handler.
func (d *ecrDataPath) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := strings.LastIndex(r.URL.Path, "/manifests/")
	if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/v2/") || i < 0 {
		d.next.ServeHTTP(w, r)
		return
	}
	repo, ref := r.URL.Path[len("/v2/"):i], r.URL.Path[i+len("/manifests/"):]
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	d.next.ServeHTTP(rec, r)
	if rec.Code == http.StatusCreated {
		in := &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(string(body)), ImageManifestMediaType: aws.String(r.Header.Get("Content-Type"))}
		if !strings.HasPrefix(ref, "sha256:") {
			in.ImageTag = aws.String(ref)
		}
		if _, err := d.api.PutImage(r.Context(), in); err != nil {
			d.mu.Lock()
			d.failed = append(d.failed, repo+"/"+ref+": "+err.Error())
			d.mu.Unlock()
			http.Error(w, "ECR PutImage: "+err.Error(), http.StatusInternalServerError)
			return
		}
		d.mu.Lock()
		d.puts++
		d.mu.Unlock()
	}
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// hostRedirect sends the requests for one registry host to another
// endpoint, keeping their paths, query and credentials; requests for other
// hosts go out unchanged. It is the ECR provider's Options.Transport and
// the migration's MigrateOptions.Transport in the registry test, sending
// ECR's data path to its stand-in.
type hostRedirect struct {
	host   string
	target *url.URL
}

// RoundTrip implements http.RoundTripper.
func (h hostRedirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Host, h.host) {
		return http.DefaultTransport.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = h.target.Scheme, h.target.Host, h.target.Host
	return http.DefaultTransport.RoundTrip(req)
}
