package awsmigration_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/ociregistry"
)

// releaseImages returns each release's registry and pinned image, by ID.
func releaseImages(t *testing.T, c *convox.Client, app string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for r, err := range c.App(app).Releases(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		m[r.ID] = r.Registry + " " + r.Image.Repository + "@" + r.Image.Digest
	}
	return m
}

// ecrDigests lists the digests ECR's API holds for a repository.
func ecrDigests(t *testing.T, reg *ecrregistry.Registry, repo string) []string {
	t.Helper()
	imgs, err := reg.ListImages(t.Context(), repo)
	if err != nil && !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("ListImages(%s): %v", repo, err)
	}
	var ds []string
	for _, img := range imgs {
		ds = append(ds, img.Digest)
	}
	return ds
}

// TestRegistryMigrationDockerToECR moves an ECS app's images from a
// self-hosted Docker registry (an in-process OCI distribution registry)
// to ECR on the emulator, whose data path is a second in-process registry
// reached through the ECR provider's Options.Transport and the migration's
// MigrateOptions.Transport. The migration is interrupted after its first
// image, resumed by a new client as after a crash, and then the Docker
// registry is shut down before a rollback, which must deploy the old
// release from ECR.
func TestRegistryMigrationDockerToECR(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	app := awstest.Name(t, "web")

	docker := newRegistryServer(t, nil)
	dockerHost := docker.Listener.Addr().String()
	ecrAPI := ecr.NewFromConfig(h.cfg)
	dataPath := &ecrDataPath{api: ecrAPI}
	data := newRegistryServer(t, func(next http.Handler) http.Handler { dataPath.next = next; return dataPath })
	target, err := url.Parse(data.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The ECR registry host, as the emulator's authorization data names it.
	creds, err := ecrregistry.New(ecrAPI, nil).Credentials(ctx, "")
	if err != nil {
		t.Fatalf("ECR credentials: %v", err)
	}
	redirect := hostRedirect{host: creds.Registry, target: target}
	ecrRepo := creds.Registry + "/" + app

	// Two releases' images in the Docker registry, two layers each.
	digests := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		img, err := random.Image(32<<10, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(dockerHost + "/" + app + ":" + v)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[v] = d.String()
	}

	fr := fake.New(nil)
	// rack returns new registry providers: "docker" and "ecr".
	rack := func() (convox.Rack, *ecrregistry.Registry) {
		dr, err := ociregistry.New(dockerHost, &ociregistry.Options{Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		er := ecrregistry.New(ecr.NewFromConfig(h.cfg), &ecrregistry.Options{Transport: redirect})
		return convox.Rack{Registries: []convox.Named[providers.Registry]{{Name: "docker", Provider: dr}, {Name: "ecr", Provider: er}}, Logs: fr.Logs()}, er
	}
	migrate := &convox.MigrateOptions{Concurrency: 1, Transport: redirect}

	rk, ecrReg := rack()
	c := h.client(rk, nil)
	if _, err := c.CreateApp(ctx, app, &convox.AppSpec{Registry: "docker"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		spec := convox.ReleaseSpec{Image: app + ":" + v}
		if v == "v1" {
			spec.Processes = []convox.Process{{Name: "worker", Count: 2, Command: []string{"/app/worker"}}}
		}
		if _, err := c.App(app).Deploy(ctx, spec, nil); err != nil {
			t.Fatalf("deploy %s from the Docker registry: %v", v, err)
		}
	}
	inDocker := map[string]string{
		"R1": "docker " + dockerHost + "/" + app + "@" + digests["v1"],
		"R2": "docker " + dockerHost + "/" + app + "@" + digests["v2"],
	}
	if diff := cmp.Diff(inDocker, releaseImages(t, c, app)); diff != "" {
		t.Fatalf("releases before the migration (-want +got):\n%s", diff)
	}

	t.Run("interrupted after the first image, nothing is rewritten", func(t *testing.T) {
		ictx, cancel := context.WithCancel(ctx)
		defer cancel()
		rk, _ := rack()
		c := h.client(rk, nil, func(e convox.Event) {
			if e.Type == convox.EventMigration {
				cancel()
			}
		})
		rep, err := c.App(app).MigrateRegistry(ictx, "ecr", migrate)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted migration = %v, want context.Canceled", err)
		}
		if rep != nil {
			t.Logf("interrupted: %d of %d images copied, %d blob bytes", rep.Copied, rep.Images, rep.BlobBytes)
		}
		got, err := c.App(app).Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Providers.Registry != "docker" {
			t.Errorf("the interrupted migration moved the app to registry %q", got.Providers.Registry)
		}
		if diff := cmp.Diff(inDocker, releaseImages(t, c, app)); diff != "" {
			t.Errorf("releases after the interruption (-want +got):\n%s", diff)
		}
		if got := ecrDigests(t, ecrReg, app); len(got) != 1 {
			t.Errorf("ECR holds %v after the interruption, want the first image", got)
		}
	})

	// A new client, as after a crash, resumes.
	var progress []convox.Transfer
	rk, _ = rack()
	c = h.client(rk, nil, func(e convox.Event) {
		if e.Type == convox.EventMigration {
			progress = append(progress, *e.Transfer)
		}
	})
	rep, err := c.App(app).MigrateRegistry(ctx, "ecr", migrate)
	if err != nil {
		t.Fatalf("resumed migration: %v", err)
	}
	t.Logf("resumed: %d images, %d copied, %d present, %d blob bytes, %d releases rewritten; progress %+v", rep.Images, rep.Copied, rep.Present, rep.BlobBytes, rep.Releases, progress)
	got := *rep
	got.BlobBytes = 0
	if diff := cmp.Diff(convox.RegistryMigration{From: "docker", To: "ecr", Images: 2, Copied: 1, Present: 1, Releases: 2}, got); diff != "" {
		t.Errorf("resumed migration (-want +got):\n%s", diff)
	}
	// The image copied before the interruption is present: no bytes are sent for it.
	if diff := cmp.Diff([]convox.Transfer{{Images: 2, ImagesDone: 1}, {Images: 2, ImagesDone: 2, BlobBytes: rep.BlobBytes}}, progress); diff != "" || rep.BlobBytes == 0 {
		t.Errorf("progress of the resumed migration, %d bytes (-want +got):\n%s", rep.BlobBytes, diff)
	}
	inECR := map[string]string{
		"R1": "ecr " + ecrRepo + "@" + digests["v1"],
		"R2": "ecr " + ecrRepo + "@" + digests["v2"],
	}
	if diff := cmp.Diff(inECR, releaseImages(t, c, app)); diff != "" {
		t.Errorf("releases after the migration (-want +got):\n%s", diff)
	}
	want := []string{digests["v1"], digests["v2"]}
	slices.Sort(want)
	if diff := cmp.Diff(want, ecrDigests(t, ecrReg, app)); diff != "" {
		t.Errorf("images in ECR (-want +got):\n%s", diff)
	}
	again, err := c.App(app).MigrateRegistry(ctx, "ecr", migrate)
	if err != nil || again.Images != 0 || again.BlobBytes != 0 {
		t.Errorf("the finished migration run again = %+v, %v; want nothing to do", again, err)
	}
	dataPath.mu.Lock()
	puts, failed := dataPath.puts, dataPath.failed
	dataPath.mu.Unlock()
	t.Logf("ECR data path: %d manifests pushed and registered with the ECR API", puts)
	if puts != 2 || len(failed) > 0 {
		t.Errorf("ECR data path: %d manifests pushed, failures %v; want each image pushed once", puts, failed)
	}

	// The Docker registry goes away; a rollback deploys R1's image from ECR.
	docker.Close()
	rb, err := c.App(app).Rollback(ctx, convox.Previous(), nil)
	if err != nil {
		t.Fatalf("rollback with the Docker registry shut down: %v", err)
	}
	a, err := c.App(app).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct{ Parent, Active, Registry, Image, TaskImage string }
	wantOut := outcome{"R1", rb.ID, "ecr", ecrRepo + "@" + digests["v1"], ecrRepo + "@" + digests["v1"]}
	if diff := cmp.Diff(wantOut, outcome{rb.Parent, a.Active, rb.Registry, rb.Image.Repository + "@" + rb.Image.Digest, taskImage(t, h, app, "worker")}); diff != "" {
		t.Errorf("rollback after the migration (-want +got):\n%s", diff)
	}
}

// taskImage returns the container image of the task definition an app's
// ECS service of process runs.
func taskImage(t *testing.T, h *harness, app, process string) string {
	t.Helper()
	client := h.ecsClient()
	out, err := client.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{app + "_" + process}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("DescribeServices(%s-%s) = %v, %v", app, process, out, err)
	}
	td, err := client.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: out.Services[0].TaskDefinition})
	if err != nil {
		t.Fatal(err)
	}
	var imgs []string
	for _, cd := range td.TaskDefinition.ContainerDefinitions {
		imgs = append(imgs, aws.ToString(cd.Image))
	}
	return strings.Join(imgs, ",")
}
