package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/providers"
)

// TestPlanCommand plans a first deploy and a change of port on the local
// rack, whose scheduler plans no resources, and checks that nothing is
// created.
func TestPlanCommand(t *testing.T) {
	e := newCLIEnv(t)
	e.ok("apps", "create", "web")
	e.ok("build", appDir(t), "--tag", "v1", "--app", "web")

	r := e.ok("plan", "web:v1", "-a", "web")
	for _, want := range []string{"- → web:v1: image ", "; web added\n", "  web  added\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan of a first deploy lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "resource") {
		t.Errorf("plan on a scheduler that plans nothing lists resources:\n%s", r.stdout)
	}
	var plan planJSON
	e.jsonOut(&plan, "plan", "web:v1", "-a", "web", "--port", "9090")
	if plan.From != "" || plan.Empty || len(plan.Processes) != 1 || plan.Processes[0].Change != "added" || len(plan.Resources) != 0 {
		t.Errorf("plan --json of a first deploy = %+v", plan)
	}
	if r := e.ok("releases", "list", "-a", "web"); strings.Contains(r.stdout, "R1") {
		t.Errorf("plan created a release:\n%s", r.stdout)
	}

	e.ok("deploy", "web:v1", "-a", "web")
	r = e.ok("plan", "web:v1", "-a", "web", "--port", "9090")
	if want := "R1 → web:v1: web port 8080 → 9090\n  web  port 8080 → 9090\n"; r.stdout != want {
		t.Errorf("plan of a port change (-want +got):\n%s", cmp.Diff(want, r.stdout))
	}
	if r := e.run("plan", "-a", "web"); r.code != 2 || !strings.Contains(r.stderr, "convox plan: needs one image reference") {
		t.Errorf("plan without an image: %v", r)
	}
}

// TestPrintPlanShowsResources checks the lines of the platform's resource
// changes, which only a scheduler that plans its own changes reports.
func TestPrintPlanShowsResources(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change providers.ResourceChange
		want   string
	}{
		{"an added resource", providers.ResourceChange{Resource: "TaskOfwebV2", Type: "AWS::ECS::TaskDefinition", Action: providers.ChangeAdd},
			"  resource  add TaskOfwebV2 (AWS::ECS::TaskDefinition)\n"},
		{"a modified resource shows its scopes", providers.ResourceChange{Resource: "ServiceOfweb", Type: "AWS::ECS::Service", Action: providers.ChangeModify, Replacement: providers.ReplacementNo, Scopes: []string{"Properties", "Tags"}},
			"  resource  modify ServiceOfweb (AWS::ECS::Service): Properties, Tags\n"},
		{"a replaced resource says so", providers.ResourceChange{Resource: "TargetGroupOfweb", Type: "AWS::ElasticLoadBalancingV2::TargetGroup", Action: providers.ChangeModify, Replacement: providers.ReplacementYes},
			"  resource  modify TargetGroupOfweb (AWS::ElasticLoadBalancingV2::TargetGroup), replaced\n"},
		{"a conditional replacement says possibly", providers.ResourceChange{Resource: "RuleOfweb", Type: "AWS::ElasticLoadBalancingV2::ListenerRule", Action: providers.ChangeModify, Replacement: providers.ReplacementConditional},
			"  resource  modify RuleOfweb (AWS::ElasticLoadBalancingV2::ListenerRule), possibly replaced\n"},
		{"a removed resource", providers.ResourceChange{Resource: "TaskOfwebV1", Type: "AWS::ECS::TaskDefinition", Action: providers.ChangeRemove},
			"  resource  remove TaskOfwebV1 (AWS::ECS::TaskDefinition)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			p := &convox.Plan{App: "web", From: "R1", Resources: []providers.ResourceChange{tc.change}}
			printPlan(&b, "R1 → web:v2", p)
			want := "R1 → web:v2: " + p.String() + "\n" + tc.want
			if diff := cmp.Diff(want, b.String()); diff != "" {
				t.Errorf("printed plan (-want +got):\n%s", diff)
			}
			if j := toPlanJSON(p); len(j.Resources) != 1 || j.Resources[0].Resource != tc.change.Resource || j.Resources[0].Action != string(tc.change.Action) {
				t.Errorf("plan JSON resources = %+v", j.Resources)
			}
		})
	}
}
