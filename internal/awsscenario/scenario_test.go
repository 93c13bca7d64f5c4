package awsscenario_test

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/fake"
)

// reroute sends data-path requests for the ECR host to the in-process registry.
type reroute struct{ target *url.URL }

func (r reroute) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = r.target.Scheme, r.target.Host, r.target.Host
	return http.DefaultTransport.RoundTrip(req)
}

// TestCrashLoopingDeployIsRolledBackOnECS deploys through ECR on each
// emulator and ECS on the package ecstest server, which runs tasks (no
// emulator does).
func TestCrashLoopingDeployIsRolledBackOnECS(t *testing.T) {
	awstest.Emulators(t, crashLoopingDeployIsRolledBack)
}

func crashLoopingDeployIsRolledBack(t *testing.T, e awstest.Emulator) {
	cfg := e.Config()
	app := awstest.Name(t, "shop")

	data := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(data.Close)
	target, _ := url.Parse(data.URL)
	ecrAPI := ecr.NewFromConfig(cfg)
	reg := ecrregistry.New(ecrAPI, &ecrregistry.Options{Transport: reroute{target}})

	srv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	ecsCfg := awstest.ConfigFor(srv.URL)
	sch := ecsscheduler.New(ecs.NewFromConfig(ecsCfg), &ecsscheduler.Options{Cluster: "scenario", Subnets: []string{"subnet-1"}})

	// push puts a new image in the data path and in ECR as app:tag.
	push := func(tag string) string {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(data.Listener.Addr().String() + "/" + app + ":" + tag)
		if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
			t.Fatal(err)
		}
		manifest, _ := img.RawManifest()
		// imageDigest is "The image digest of the image manifest
		// corresponding to the image" (PutImage); moto computes another
		// digest without it.
		if _, err := ecrAPI.PutImage(t.Context(), &ecr.PutImageInput{RepositoryName: aws.String(app), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String(tag), ImageDigest: aws.String(digest(t, img))}); err != nil {
			t.Fatal(err)
		}
		return digest(t, img)
	}

	others := fake.New(nil)
	c, err := convox.New(convox.Rack{Registry: reg, Scheduler: sch, Balancer: others.Balancer(), Logs: others.Logs(), Store: others.Store()},
		&convox.Options{PollInterval: 5 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond, Timeout: time.Minute, CompensateTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := reg.EnsureRepository(ctx, app); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(ctx, app, nil); err != nil {
		t.Fatal(err)
	}
	spec := func(tag string) convox.ReleaseSpec {
		return convox.ReleaseSpec{Image: app + ":" + tag, Processes: []convox.Process{{Name: "worker", Count: 2, Command: []string{"/app/worker"}}}}
	}

	push("v1")
	r1, err := c.App(app).Deploy(ctx, spec("v1"), nil)
	if err != nil {
		t.Fatalf("deploy v1: %v", err)
	}

	srv.CrashImage(push("v2"), 2)
	_, err = c.App(app).Deploy(ctx, spec("v2"), nil)
	var de *convox.DeployError
	if !errors.As(err, &de) || !de.Changed {
		t.Fatalf("deploy of the crash-looping v2 = %v, want a *DeployError after it changed the rack", err)
	}
	if !de.RolledBack || de.Previous != r1.ID {
		t.Errorf("deploy error: rolled back %t to %q, want true and %q (reason %q)", de.RolledBack, de.Previous, r1.ID, de.Reason)
	}
	var exits []int
	for _, task := range de.StoppedTasks {
		if task.ExitCode != nil {
			exits = append(exits, *task.ExitCode)
		}
	}
	if len(exits) == 0 || exits[0] != 2 {
		t.Errorf("stopped tasks' exit codes = %v, want the crash's 2 first", exits)
	}

	st, err := sch.Status(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r1.ID, st.Release); diff != "" {
		t.Errorf("release ECS runs after the rollback (-want +got):\n%s", diff)
	}
	got, err := c.App(app).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Active != r1.ID {
		t.Errorf("active release = %q, want %q", got.Active, r1.ID)
	}
}

func digest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestADeployOnMotosECSIsNeverReportedHealthy deploys through ECR and ECS
// on moto, which accepts services but never runs their tasks: the deploy
// must end at its time limit with a *DeployError, never with a healthy
// release.
func TestADeployOnMotosECSIsNeverReportedHealthy(t *testing.T) {
	cfg := awstest.EmulatorOf(t, awstest.Moto).Config()
	app := awstest.Name(t, "shop")
	data := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(data.Close)
	target, _ := url.Parse(data.URL)
	ecrAPI := ecr.NewFromConfig(cfg)
	reg := ecrregistry.New(ecrAPI, &ecrregistry.Options{Transport: reroute{target}})
	subnets, sg := awstest.Subnets(t, cfg)
	sch := ecsscheduler.New(ecs.NewFromConfig(cfg), &ecsscheduler.Options{Cluster: app, Subnets: subnets, SecurityGroups: []string{sg}})

	others := fake.New(nil)
	c, err := convox.New(convox.Rack{Registry: reg, Scheduler: sch, Balancer: others.Balancer(), Logs: others.Logs(), Store: others.Store()},
		&convox.Options{PollInterval: 20 * time.Millisecond, MaxPollInterval: 200 * time.Millisecond, Timeout: 3 * time.Second, CompensateTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := reg.EnsureRepository(ctx, app); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(data.Listener.Addr().String() + "/" + app + ":v1")
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	manifest, _ := img.RawManifest()
	if _, err := ecrAPI.PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String(app), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String("v1"), ImageDigest: aws.String(digest(t, img))}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(ctx, app, nil); err != nil {
		t.Fatal(err)
	}

	_, err = c.App(app).Deploy(ctx, convox.ReleaseSpec{Image: app + ":v1", Processes: []convox.Process{{Name: "worker", Count: 1, Command: []string{"/app/worker"}}}}, nil)
	var de *convox.DeployError
	if !errors.As(err, &de) || !de.Changed {
		t.Fatalf("deploy on an ECS that runs no task = %v, want a *DeployError after it changed the rack", err)
	}
	// The deploy fails at its time limit: in the wait for running tasks,
	// or earlier on a loaded machine; never with a healthy release.
	if de.Step != convox.StepWait && de.Step != convox.StepApply {
		t.Errorf("deploy failed at %q (%s), want the apply or the wait to reach the time limit", de.Step, de.Reason)
	}
	got, err := c.App(app).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Active != "" {
		t.Errorf("active release = %q after a deploy whose tasks never ran, want none", got.Active)
	}
	// The failed first release is compensated by stopping its processes:
	// no service of the app is left on ECS.
	if _, err := sch.Status(ctx, app); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Status after the failed first deploy = %v, want ErrNotFound", err)
	}
}
