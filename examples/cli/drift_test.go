package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

// TestPrintDrift checks the table and the JSON document of drift.
func TestPrintDrift(t *testing.T) {
	for _, tc := range []struct {
		name     string
		drifts   []providers.ResourceDrift
		wantText string
		wantJSON driftJSON
	}{
		{"nothing drifted says so", nil,
			"web: no drift: every resource is as the last deploy left it\n",
			driftJSON{App: "web", Resources: []resourceDriftJSON{}}},
		{"a modified resource lists its properties, a deleted one a dash",
			[]providers.ResourceDrift{
				{Resource: "ServiceOfweb", Type: "AWS::ECS::Service", Status: "MODIFIED", Properties: []string{"/DesiredCount NOT_EQUAL", "/Tags REMOVE"}},
				{Resource: "RuleOfweb", Type: "AWS::ElasticLoadBalancingV2::ListenerRule", Status: "DELETED"},
			},
			"RESOURCE      TYPE                                       STATUS    PROPERTIES\n" +
				"ServiceOfweb  AWS::ECS::Service                          MODIFIED  /DesiredCount NOT_EQUAL, /Tags REMOVE\n" +
				"RuleOfweb     AWS::ElasticLoadBalancingV2::ListenerRule  DELETED   -\n",
			driftJSON{App: "web", Drifted: true, Resources: []resourceDriftJSON{
				{Resource: "ServiceOfweb", Type: "AWS::ECS::Service", Status: "MODIFIED", Properties: []string{"/DesiredCount NOT_EQUAL", "/Tags REMOVE"}},
				{Resource: "RuleOfweb", Type: "AWS::ElasticLoadBalancingV2::ListenerRule", Status: "DELETED", Properties: []string{}},
			}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := toDriftJSON("web", tc.drifts)
			if diff := cmp.Diff(tc.wantJSON, j); diff != "" {
				t.Errorf("drift JSON (-want +got):\n%s", diff)
			}
			var b strings.Builder
			printDrift(&b, j)
			if diff := cmp.Diff(tc.wantText, b.String()); diff != "" {
				t.Errorf("drift table (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDriftOnARackWithoutDriftDetection runs drift on the local rack,
// whose scheduler detects no drift: it fails with exit code 1, the
// "unimplemented" error code and a hint naming the stack mode; its
// argument errors are usage errors.
func TestDriftOnARackWithoutDriftDetection(t *testing.T) {
	e := newCLIEnv(t)
	e.ok("apps", "create", "web")
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stderr   []string
		jsonCode string
	}{
		{"the local rack cannot detect drift", []string{"drift", "-a", "web"}, exitFailed,
			[]string{"convox drift: app web: ", "unimplemented", "drift detection needs apps kept as CloudFormation stacks: --rack aws with CONVOX_AWS_MODE=stack"}, "unimplemented"},
		{"the app may be an argument", []string{"drift", "web"}, exitFailed,
			[]string{"convox drift: app web: ", "CONVOX_AWS_MODE=stack"}, "unimplemented"},
		{"a missing app is not found", []string{"drift", "nope"}, exitFailed,
			[]string{`convox drift: app "nope" not found`, "create it with: convox apps create nope"}, "not_found"},
		{"no app is a usage error", []string{"drift"}, exitUsage,
			[]string{"convox drift: no app given: use --app NAME"}, "usage"},
		{"two apps are a usage error", []string{"drift", "web", "api"}, exitUsage,
			[]string{"convox drift: takes one app name, got 2 arguments"}, "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			if r.code != tc.code {
				t.Errorf("convox %s: exit %d, want %d\n%v", strings.Join(tc.args, " "), r.code, tc.code, r)
			}
			must(t, "stderr", r.stderr, tc.stderr...)
			r = e.run(append(tc.args, "--json")...)
			var doc errorDoc
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatalf("--json: %v\n%v", err, r)
			}
			if doc.Error.Code != tc.jsonCode {
				t.Errorf("--json error code = %q, want %q", doc.Error.Code, tc.jsonCode)
			}
		})
	}
}
