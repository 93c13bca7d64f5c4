package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
	"github.com/convox-go/convox/internal/elbtest"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/awsiam"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/fake"
)

func TestSettingsFromFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{
		"CONVOX_APP": "shop", "CONVOX_IMAGE": "shop:v1", "CONVOX_AWS_SUBNETS": "subnet-a, subnet-b",
		"CONVOX_AWS_CLUSTER": "from-env", "CONVOX_AWS_PUBLIC_IP": "true",
		"CONVOX_AWS_REGISTRY_ENDPOINT": "http://127.0.0.1:5000",
	}
	s, err := parseSettings([]string{"-cluster", "from-flag", "-path", "/shop", "-env", "A=1", "-env", "B=x=y"},
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Mode                         mode
		App, Image, Cluster, Process string
		Subnets                      []string
		PublicIP                     bool
		Env                          map[string]string
		Table, LoadBalancer          string
		Count, Port                  int
		Path, HealthPath             string
		RegistryEndpoint             string
		Timeout, PollInterval        time.Duration
	}
	got := view{s.mode, s.app, s.image, s.cluster, s.process, s.subnets, s.publicIP, s.env, s.table, s.loadBalancer,
		s.count, s.port, s.path, s.healthPath, s.registryEndpoint, s.timeout, s.pollPeriod}
	want := view{modeDeploy, "shop", "shop:v1", "from-flag", "web", []string{"subnet-a", "subnet-b"}, true,
		map[string]string{"A": "1", "B": "x=y"}, "convox", "convox", 2, 8080, "/shop", "/", "http://127.0.0.1:5000",
		10 * time.Minute, time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestUsageErrorsExitTwoBeforeAnyCall(t *testing.T) {
	base := map[string]string{"CONVOX_APP": "shop", "CONVOX_IMAGE": "shop:v1", "CONVOX_AWS_SUBNETS": "subnet-a"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no app", []string{"-path", "/x"}, map[string]string{"CONVOX_APP": ""}, "no app"},
		{"bad app name", []string{"-app", "Shop_1", "-path", "/x"}, nil, "-app:"},
		{"no image", []string{"-path", "/x"}, map[string]string{"CONVOX_IMAGE": ""}, "no image"},
		{"no subnets", []string{"-path", "/x"}, map[string]string{"CONVOX_AWS_SUBNETS": ""}, "no subnets"},
		{"no route", nil, nil, "no route: give -domain"},
		{"relative path", []string{"-path", "shop"}, nil, `-path "shop"`},
		{"bad port", []string{"-path", "/x", "-port", "0"}, nil, "-port 0"},
		{"two modes", []string{"-status", "-delete"}, nil, "exclude each other"},
		{"setup and another mode", []string{"-setup", "-rollback"}, nil, "exclude each other"},
		{"malformed environment value", []string{"-path", "/x"}, map[string]string{"CONVOX_AWS_PUBLIC_IP": "sometimes"}, `CONVOX_AWS_PUBLIC_IP="sometimes"`},
		{"registry endpoint with a path", []string{"-path", "/x", "-registry-endpoint", "http://127.0.0.1:5000/v2"}, nil, "want http(s)://HOST[:PORT]"},
		{"positional argument", []string{"deploy"}, nil, `unexpected argument "deploy"`},
		{"malformed env flag", []string{"-path", "/x", "-env", "NOVALUE"}, nil, "want KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if v, ok := tt.env[k]; ok {
					return v
				}
				return base[k]
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, getenv, &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit code %d, stderr %q; want %d and a message containing %q", code, stderr.String(), exitUsage, tt.want)
			}
		})
	}
}

// harness is the AWS test harness the program runs against: the emulator
// for ECR, ELBv2, CloudWatch Logs and DynamoDB, the in-process ECS server,
// and an in-process registry for the ECR data path.
type harness struct {
	bin      string
	endpoint string
	ecs      *ecstest.Server
	data     *httptest.Server
	ecr      *ecr.Client
	elbv2    *elbv2.Client
	att      *elbtest.Attacher
	name     string // of the app and of every resource of this run
	env      []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	endpoint := awstest.Endpoint(t) // skips without the emulator
	return newHarnessAt(t, endpoint, awstest.ConfigFor(endpoint))
}

// newHarnessAt returns a harness whose AWS services but ECS are at
// endpoint; the test makes its own calls there with cfg.
func newHarnessAt(t *testing.T, endpoint string, cfg aws.Config) *harness {
	t.Helper()
	h := &harness{endpoint: endpoint, name: awstest.Name(t, "awsex")}
	h.bin = filepath.Join(t.TempDir(), "aws")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", h.bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	h.ecs = ecstest.New(t, &ecstest.Options{AutoStep: true})
	h.data = httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(h.data.Close)
	h.ecr = ecr.NewFromConfig(cfg)
	h.elbv2 = elbv2.NewFromConfig(cfg)
	h.att = &elbtest.Attacher{ECS: ecs.NewFromConfig(awstest.ConfigFor(h.ecs.URL)), Cluster: h.name, ELBv2: h.elbv2}
	if _, err := h.ecr.CreateRepository(t.Context(), &ecr.CreateRepositoryInput{RepositoryName: aws.String(h.name)}); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "CONVOX_") {
			h.env = append(h.env, kv)
		}
	}
	h.env = append(h.env,
		"AWS_ENDPOINT_URL="+endpoint,
		"AWS_ENDPOINT_URL_ECS="+h.ecs.URL,
		"AWS_REGION="+awstest.Region,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
		"CONVOX_APP="+h.name,
		"CONVOX_AWS_CLUSTER="+h.name,
		"CONVOX_AWS_SUBNETS=subnet-a,subnet-b",
		"CONVOX_AWS_SECURITY_GROUPS=sg-1",
		"CONVOX_AWS_EXECUTION_ROLE=arn:aws:iam::"+ecstest.Account+":role/exec",
		"CONVOX_AWS_LOAD_BALANCER="+h.name,
		"CONVOX_AWS_TABLE="+h.name,
		"CONVOX_AWS_REGISTRY_ENDPOINT="+h.data.URL,
	)
	return h
}

// push puts a new small image in the registry's data path and in ECR as
// the run's repository and tag, and returns its digest.
func (h *harness) push(t *testing.T, tag string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/app/server"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(h.data.Listener.Addr().String() + "/" + h.name + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// imageDigest is "The image digest of the image manifest corresponding
	// to the image" (PutImage); moto computes another digest without it.
	if _, err := h.ecr.PutImage(t.Context(), &ecr.PutImageInput{RepositoryName: aws.String(h.name), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String(tag), ImageDigest: aws.String(d.String())}); err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// hangBound is how long one run of the program may take before the test
// ends it with SIGQUIT, whose goroutine dump then shows where it hung. A
// run takes about a second; the bound only keeps a hang from lasting until
// the test binary's own timeout.
const hangBound = 2 * time.Minute

// command prepares one run of the program with the harness's environment;
// ctx ends when the run exceeds hangBound.
func (h *harness) command(t *testing.T, args ...string) (cmd *exec.Cmd, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangBound)
	t.Cleanup(cancel)
	cmd = exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	return cmd, ctx
}

// result is one run of the program.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs the program to its end. With attach, the test plays ECS's part
// meanwhile: it registers the running tasks with their target groups, again
// and again, as ECS would.
func (h *harness) run(t *testing.T, attach bool, args ...string) result {
	t.Helper()
	cmd, ctx := h.command(t, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() error { return nil }
	if attach {
		stop = h.attach()
	}
	err := cmd.Wait()
	syncErr := stop()
	r := result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("run %v hung for %v and was ended with SIGQUIT:\n%v", args, hangBound, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %v: %v\n%v", args, err, r)
	}
	if syncErr != nil {
		t.Logf("last error registering tasks with the load balancer: %v", syncErr)
	}
	return r
}

// attach syncs the cluster's tasks to their target groups until the
// returned function is called, which returns the last error of a sync (the
// cluster does not exist before the program's first deploy creates it).
func (h *harness) attach() func() error {
	ctx, cancel := context.WithCancel(context.Background())
	var last error
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			last = h.att.Sync(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() error {
		cancel()
		<-done
		if errors.Is(last, context.Canceled) {
			return nil
		}
		return last
	}
}

// releaseLine matches a release of the -status output: ID and status.
var releaseLine = regexp.MustCompile(`(?m)^  (R\d+)\s+(\S+)\s`)

// statuses runs the program in -status mode and returns each release's
// status, newest first.
func (h *harness) statuses(t *testing.T) []string {
	t.Helper()
	r := h.run(t, false, "-status")
	if r.code != exitOK {
		t.Fatalf("-status: %v", r)
	}
	var got []string
	for _, m := range releaseLine.FindAllStringSubmatch(r.stdout, -1) {
		got = append(got, m[1]+" "+m[2])
	}
	return got
}

// TestDeployOnTheHarness builds the program and runs it as a subprocess
// against the AWS test harness through the standard AWS_ENDPOINT_URL
// variables: a deploy, a crash-looping deploy that is rolled back, a
// second deploy and a rollback, an interrupted deploy, and a delete, each
// checked through the program's output and the store in DynamoDB.
func TestDeployOnTheHarness(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	deployArgs := func(tag string) []string {
		return []string{"-image", h.name + ":" + tag, "-path", "/shop", "-health-path", "/health", "-poll-interval", "20ms", "-timeout", "30s"}
	}

	h.push(t, "v1")
	// Deploys need the table, which only -setup creates.
	if r := h.run(t, false, deployArgs("v1")...); r.code != exitFailed || !strings.Contains(r.stderr, "-setup") {
		t.Fatalf("deploy before -setup: want exit %d naming -setup, got %v", exitFailed, r)
	}
	for range 2 { // idempotent
		if r := h.run(t, false, "-setup"); r.code != exitOK || r.stdout != "table "+h.name+" ready\n" {
			t.Fatalf("-setup: %v", r)
		}
	}
	r := h.run(t, true, deployArgs("v1")...)
	if r.code != exitOK {
		t.Fatalf("deploy v1: %v", r)
	}
	lbs, err := h.elbv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{Names: []string{h.name}})
	if err != nil || len(lbs.LoadBalancers) != 1 {
		t.Fatalf("the load balancer %s: %v, %v", h.name, lbs, err)
	}
	dns := aws.ToString(lbs.LoadBalancers[0].DNSName)
	for _, want := range []string{
		"\ndeployed " + h.name + " R1 (sha256:",
		"\nendpoint: http://" + dns + "/shop/\n",
		"\nload balancer: " + dns + "\n",
		"deploy.succeeded " + h.name + " R1",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("deploy v1 output lacks %q:\n%v", want, r)
		}
	}
	if diff := cmp.Diff([]string{"R1 active"}, h.statuses(t)); diff != "" {
		t.Errorf("releases after deploy v1 (-want +got):\n%s", diff)
	}

	h.ecs.CrashImage(h.push(t, "v2"), 3)
	r = h.run(t, true, deployArgs("v2")...)
	if r.code != exitFailed {
		t.Fatalf("deploy of the crash-looping v2: %v; want exit code %d", r, exitFailed)
	}
	for _, want := range []string{
		"deploy failed: " + h.name + " R2\n",
		"\nstep: wait\n",
		"\nrolled back: R1 is active again\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("deploy v2 error lacks %q:\n%v", want, r)
		}
	}
	if m := regexp.MustCompile(`(?m)^reason: (.+)$`).FindStringSubmatch(r.stderr); m == nil {
		t.Errorf("deploy v2 error prints no reason:\n%v", r)
	}
	if diff := cmp.Diff([]string{"R2 failed", "R1 active"}, h.statuses(t)); diff != "" {
		t.Errorf("releases after the failed deploy (-want +got):\n%s", diff)
	}

	h.push(t, "v3")
	if r := h.run(t, true, deployArgs("v3")...); r.code != exitOK {
		t.Fatalf("deploy v3: %v", r)
	}
	r = h.run(t, true, "-rollback", "-poll-interval", "20ms", "-timeout", "30s")
	if r.code != exitOK || !strings.Contains(r.stdout, "\nrolled back to R1 as "+h.name+" R4 (sha256:") {
		t.Fatalf("rollback: %v", r)
	}
	if diff := cmp.Diff([]string{"R4 active", "R3 superseded", "R2 failed", "R1 superseded"}, h.statuses(t)); diff != "" {
		t.Errorf("releases after the rollback (-want +got):\n%s", diff)
	}

	t.Run("an interrupted deploy is canceled and the previous release restored", func(t *testing.T) {
		h.push(t, "v5")
		// Without the test registering tasks as targets, the deploy waits
		// for healthy targets until the interrupt.
		code, stderr := h.interruptWhileWaiting(t, deployArgs("v5")...)
		if code != exitFailed || !strings.Contains(stderr, "interrupted: canceling the deploy of R5") || !strings.Contains(stderr, "rolled back: R4 is active again") {
			t.Errorf("interrupted deploy: exit code %d, stderr:\n%s", code, stderr)
		}
		if diff := cmp.Diff([]string{"R5 canceled", "R4 active", "R3 superseded", "R2 failed", "R1 superseded"}, h.statuses(t)); diff != "" {
			t.Errorf("releases after the interrupted deploy (-want +got):\n%s", diff)
		}
	})

	t.Run("the store in DynamoDB holds exactly one active release", func(t *testing.T) {
		store := dynamostore.New(dynamodb.NewFromConfig(awstest.ConfigFor(h.endpoint)), h.name, nil)
		others := fake.New(nil)
		c, err := convox.New(convox.Rack{Registry: others.Registry(), Scheduler: others.Scheduler(), Logs: others.Logs(), Store: store}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var active []string
		for rel, err := range c.App(h.name).Releases(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			if rel.Status == convox.StatusActive {
				active = append(active, rel.ID)
			}
		}
		if diff := cmp.Diff([]string{"R4"}, active); diff != "" {
			t.Errorf("active releases in the store (-want +got):\n%s", diff)
		}
	})

	if r := h.run(t, false, "-delete"); r.code != exitOK || !strings.Contains(r.stdout, "deleted "+h.name) {
		t.Fatalf("delete: %v", r)
	}
	if r := h.run(t, false, "-status"); r.code != exitFailed || !strings.Contains(r.stderr, "not found") {
		t.Errorf("status of the deleted app: %v", r)
	}
}

// interruptWhileWaiting starts a deploy, sends it an interrupt once it
// reports waiting for its tasks, and returns its exit code and stderr.
func (h *harness) interruptWhileWaiting(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd, ctx := h.command(t, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	signaled := false
	for sc.Scan() {
		if !signaled && strings.HasPrefix(sc.Text(), string(convox.EventWaiting)+" ") {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			signaled = true
		}
	}
	err = cmd.Wait()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("the interrupted deploy hung for %v and was ended with SIGQUIT; stderr:\n%s", hangBound, stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	if !signaled {
		t.Fatalf("the deploy never reported waiting; stderr:\n%s", stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// setEnv replaces (or adds) variables of the harness's environment.
func (h *harness) setEnv(kv ...string) {
	for _, v := range kv {
		key, _, _ := strings.Cut(v, "=")
		h.env = slices.DeleteFunc(h.env, func(e string) bool { return strings.HasPrefix(e, key+"=") })
		h.env = append(h.env, v)
	}
}

// TestDeployWithTheCombinedPolicyUnderIAMEnforcement runs the program on
// moto with IAM enforced: -setup as an administrator, then a deploy, a
// status and a delete as a user holding exactly the policy providers/awsiam
// prints for the program's five providers. ECS stays on the ecstest server,
// which runs tasks (the ECS actions are enforced by the awsiam tests).
func TestDeployWithTheCombinedPolicyUnderIAMEnforcement(t *testing.T) {
	admin := awstest.MotoIAM(t)
	policy, err := awsiam.Policy(ecrregistry.Permissions(), ecsscheduler.Permissions(), albbalancer.Permissions(), cwlogs.Permissions(), dynamostore.Permissions())
	if err != nil {
		t.Fatal(err)
	}
	user := awstest.NewIAMUser(t, admin, awstest.Name(t, "deployer"), policy)
	h := newHarnessAt(t, aws.ToString(admin.BaseEndpoint), admin)
	subnets, sg := awstest.Subnets(t, admin)
	h.setEnv("CONVOX_AWS_SUBNETS="+strings.Join(subnets, ","), "CONVOX_AWS_SECURITY_GROUPS="+sg)
	keys := func(cfg aws.Config) []string {
		c, err := cfg.Credentials.Retrieve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return []string{"AWS_ACCESS_KEY_ID=" + c.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + c.SecretAccessKey}
	}

	h.setEnv(keys(admin)...)
	if r := h.run(t, false, "-setup"); r.code != exitOK {
		t.Fatalf("-setup as the administrator: %v", r)
	}
	h.setEnv(keys(user)...)
	h.push(t, "v1")
	for _, step := range []struct {
		name   string
		attach bool
		args   []string
	}{
		{"deploy", true, []string{"-image", h.name + ":v1", "-path", "/shop", "-health-path", "/health", "-poll-interval", "20ms", "-timeout", "30s"}},
		{"status", false, []string{"-status"}},
		{"delete", false, []string{"-delete"}},
	} {
		r := h.run(t, step.attach, step.args...)
		if r.code != exitOK {
			t.Fatalf("%s as the user holding the combined policy: %v", step.name, r)
		}
		for _, denial := range []string{"AccessDenied", "StatusCode: 403"} {
			if strings.Contains(r.stderr, denial) {
				t.Errorf("%s: a call was denied:\n%s", step.name, r.stderr)
			}
		}
	}
	// The user holds nothing else: creating a table is refused.
	h.setEnv("CONVOX_AWS_TABLE=" + h.name + "-other")
	if r := h.run(t, false, "-setup"); r.code != exitFailed || !strings.Contains(r.stderr, "403") {
		t.Errorf("-setup as the user: want exit %d with a 403 denial, got %v", exitFailed, r)
	}
}
