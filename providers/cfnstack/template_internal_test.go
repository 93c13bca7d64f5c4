package cfnstack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
)

func testStack() *Stack {
	return New(nil, nil, nil, &Options{Cluster: "prod", Region: "us-east-1", Subnets: []string{"subnet-1"}, HTTPListener: "arn:listener", VPC: "vpc-1"})
}

// rendered renders d over a template holding the web route and returns
// the JSON of the resources, by logical ID.
func rendered(t *testing.T, d providers.Desired) map[string]map[string]any {
	t.Helper()
	s := testStack()
	tpl := s.newTemplate(d.App)
	s.setRoute(tpl, d.App, "web", route{Port: 8080, Protocol: providers.HTTP, Host: "web.example.com", Priority: 9})
	if err := s.setProcesses(tpl, d, map[string]string{"TargetGroupOfweb": "arn:own-tg"}); err != nil {
		t.Fatal(err)
	}
	body, err := tpl.body()
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Resources map[string]map[string]any
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out.Resources
}

func TestTemplateRendersBindingsAsReferencesToTheStacksOwnTargetGroup(t *testing.T) {
	for _, tc := range []struct {
		name      string
		target    string
		wantArn   any
		wantDepOn any
	}{
		{"the stack's own target group is a reference the service depends on", "arn:own-tg", map[string]any{"Ref": "TargetGroupOfweb"}, []any{"ListenerRuleOfweb"}},
		{"another target group stays its ARN", "arn:other-tg", "arn:other-tg", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := providers.Desired{App: "shop", Release: "R1", Token: "t1", Image: providers.Image{Repository: "r", Digest: "sha256:1"},
				Processes: []providers.Process{{Name: "web", Count: 2, Port: 8080}},
				Bindings:  map[string][]providers.Binding{"web": {{Kind: providers.BindingTargetGroup, Target: tc.target, Port: 8080}}}}
			svc := rendered(t, d)["ServiceOfweb"]
			lbs := svc["Properties"].(map[string]any)["LoadBalancers"].([]any)
			got := []any{lbs[0].(map[string]any)["TargetGroupArn"], svc["DependsOn"]}
			if diff := cmp.Diff([]any{tc.wantArn, tc.wantDepOn}, got); diff != "" {
				t.Errorf("target group and DependsOn of the service (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTaskDefinitionsAreNamedByTheirContent(t *testing.T) {
	d := providers.Desired{App: "shop", Release: "R1", Token: "t1", Image: providers.Image{Repository: "r", Digest: "sha256:1"},
		Env: map[string]string{"B": "2", "A": "1"}, Processes: []providers.Process{{Name: "web", Count: 1, Port: 8080}}}
	ids := func(d providers.Desired) []string {
		var out []string
		for id := range rendered(t, d) {
			if strings.HasPrefix(id, "TaskOf") {
				out = append(out, id)
			}
		}
		return out
	}
	first := ids(d)
	d.Release, d.Token = "R2", "t2"
	sameContent := ids(d)
	d.Image.Digest = "sha256:2"
	newImage := ids(d)
	if len(first) != 1 || cmp.Diff(first, sameContent) != "" || cmp.Diff(first, newImage) == "" {
		t.Errorf("task definition IDs: first %v, same content %v, new image %v; want one ID, kept for the same content and changed by the image", first, sameContent, newImage)
	}
	td := rendered(t, d)[newImage[0]]["Properties"].(map[string]any)["ContainerDefinitions"].([]any)[0].(map[string]any)
	if diff := cmp.Diff([]any{
		map[string]any{"Name": "A", "Value": "1"}, map[string]any{"Name": "B", "Value": "2"}, map[string]any{"Name": "PORT", "Value": "8080"},
	}, td["Environment"]); diff != "" {
		t.Errorf("environment, sorted, with PORT (-want +got):\n%s", diff)
	}
}

func TestRequestTokensRoundTrip(t *testing.T) {
	for _, tc := range []struct{ release, token string }{
		{"R1", "0123456789abcdef"},
		{"r12", "r12-t1"},
	} {
		crt := requestToken(tc.release, tc.token)
		rel, tok, ok := parseRequestToken(crt)
		if !ok || rel != tc.release || tok != tc.token || len(crt) > 128 {
			t.Errorf("requestToken(%q, %q) = %q, parsed back as %q %q %v", tc.release, tc.token, crt, rel, tok, ok)
		}
	}
	for _, other := range []string{"", "Console-abc", "x-not-hex", "x" + strings.Repeat("ab", 3)} {
		if _, _, ok := parseRequestToken(other); ok {
			t.Errorf("parseRequestToken(%q) accepted a token of no rollout", other)
		}
	}
}
