package main

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/internal/ecstest"
)

// TestAWSRack drives the CLI with --rack aws against the test harness: the
// AWS emulator for DynamoDB, ECR, ELBv2 and CloudWatch Logs, and the
// in-process ECS endpoint, both reached through the standard
// AWS_ENDPOINT_URL variables. The emulator has no ECR data path, so no
// image is deployed here; the test covers building the rack from the
// configuration chain and the commands around deploys.
func TestAWSRack(t *testing.T) {
	endpoint := awstest.Endpoint(t) // skips without the emulator
	ecsSrv := ecstest.New(t, &ecstest.Options{AutoStep: true})
	e := newCLIEnv(t)
	app := awstest.Name(t, "cli")
	e.extraEnv = []string{
		"CONVOX_RACK=aws",
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_ENDPOINT_URL_ECS=" + ecsSrv.URL,
		"AWS_REGION=" + awstest.Region,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"CONVOX_AWS_TABLE=" + app, "CONVOX_AWS_CLUSTER=" + app, "CONVOX_AWS_SUBNETS=subnet-1",
	}

	e.ok("apps", "create", app)
	var apps []appJSON
	e.jsonOut(&apps, "apps", "list")
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
	}
	if diff := cmp.Diff([]string{app}, names); diff != "" {
		t.Errorf("apps list --json (-want +got):\n%s", diff)
	}
	var rels []releaseJSON
	e.jsonOut(&rels, "releases", "list", "-a", app)
	if len(rels) != 0 {
		t.Errorf("releases of a new app: %+v", rels)
	}
	r := e.run("drift", app)
	if r.code != 1 || !strings.Contains(r.stderr, "CONVOX_AWS_MODE=stack") {
		t.Errorf("drift in the direct mode, whose scheduler detects no drift: %v", r)
	}
	r = e.run("deploy", app+":v1", "-a", app)
	if r.code != 1 || !strings.Contains(r.stderr, "push the image first") {
		t.Errorf("deploy of an image ECR does not have: %v", r)
	}
	r = e.run("build", appDir(t), "-a", app)
	if r.code != 1 || !strings.Contains(r.stderr, "convox build: pushes to the local rack's registry only") {
		t.Errorf("build on AWS: %v", r)
	}
	e.ok("apps", "delete", app, "--yes")
	e.jsonOut(&apps, "apps", "list")
	if len(apps) != 0 {
		t.Errorf("apps after delete: %+v", apps)
	}
	if _, err := os.Stat(e.dir + "/.convox"); err == nil {
		t.Errorf("--rack aws created a local rack directory")
	}
}
