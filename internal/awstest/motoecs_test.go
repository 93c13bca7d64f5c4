package awstest

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMotoFargateBodies(t *testing.T) {
	stackForm := func(template string) string {
		return url.Values{"Action": {"CreateStack"}, "TemplateBody": {template}}.Encode()
	}
	for _, tc := range []struct {
		name, op  string
		response  bool
		body      string
		want      string // JSON compared as values; "" for the body unchanged
		wantStack string // for a stack request: the template, as JSON
	}{
		{"a registered container without memory gets its task's", "RegisterTaskDefinition", false,
			`{"memory":"512","containerDefinitions":[{"name":"web"},{"name":"log","memory":64}]}`,
			`{"memory":"512","containerDefinitions":[{"name":"web","memory":512},{"name":"log","memory":64}]}`, ""},
		{"a stack's task definition containers get their task's memory", "CreateStack", false,
			stackForm(`{"Resources":{"T":{"Type":"AWS::ECS::TaskDefinition","Properties":{"Memory":"1024","ContainerDefinitions":[{"Name":"web"}]}},"L":{"Type":"AWS::Logs::LogGroup","Properties":{}}}}`),
			"", `{"Resources":{"T":{"Type":"AWS::ECS::TaskDefinition","Properties":{"Memory":"1024","ContainerDefinitions":[{"Name":"web","Memory":1024}]}},"L":{"Type":"AWS::Logs::LogGroup","Properties":{}}}}`},
		{"a task's container cpu and memory become strings", "DescribeTasks", true,
			`{"tasks":[{"containers":[{"cpu":256,"memory":512,"name":"web"}]}]}`,
			`{"tasks":[{"containers":[{"cpu":"256","memory":"512","name":"web"}]}]}`, ""},
		{"RunTask's too", "RunTask", true,
			`{"tasks":[{"containers":[{"memoryReservation":128}]}]}`,
			`{"tasks":[{"containers":[{"memoryReservation":"128"}]}]}`, ""},
		{"another operation's request is unchanged", "CreateService", false, `{"memory":"512","containerDefinitions":[{"name":"web"}]}`, "", ""},
		{"another operation's response is unchanged", "DescribeServices", true, `{"services":[{"containers":[{"cpu":256}]}]}`, "", ""},
		{"a body that is not JSON is unchanged", "RegisterTaskDefinition", false, `not json`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			if tc.response {
				got = MotoFargateResponse(tc.op, []byte(tc.body))
			} else {
				got = MotoFargateRequest(tc.op, []byte(tc.body))
			}
			switch {
			case tc.wantStack != "":
				form, err := url.ParseQuery(string(got))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(decode(t, tc.wantStack), decode(t, form.Get("TemplateBody"))); diff != "" {
					t.Errorf("template (-want +got):\n%s", diff)
				}
			case tc.want == "":
				if diff := cmp.Diff(tc.body, string(got)); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			default:
				if diff := cmp.Diff(decode(t, tc.want), decode(t, string(got))); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}
