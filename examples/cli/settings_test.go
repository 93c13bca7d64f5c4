package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// listenerARN is a well-formed listener ARN of us-east-1.
const listenerARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2"

// stackEnv are complete stack mode settings.
var stackEnv = map[string]string{
	"CONVOX_AWS_MODE": "stack", "CONVOX_AWS_SUBNETS": "subnet-a, subnet-b", "CONVOX_AWS_SECURITY_GROUPS": "sg-1",
	"CONVOX_AWS_VPC": "vpc-1", "CONVOX_AWS_HTTP_LISTENER": listenerARN, "CONVOX_AWS_CLUSTER": "prod",
}

// with returns base with the changes; an empty value unsets a variable.
func with(base map[string]string, changes ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(changes); i += 2 {
		out[changes[i]] = changes[i+1]
	}
	return out
}

// settingsView is what a test compares of awsSettings.
type settingsView struct {
	Mode, Cluster, Table, VPC, HTTP, HTTPS, LoadBalancer, Registry string
	Subnets                                                        []string
	PublicIP                                                       bool
}

func viewOf(s awsSettings) settingsView {
	v := settingsView{Mode: s.mode, Cluster: s.cluster, Table: s.table, VPC: s.vpc, HTTP: s.httpListener, HTTPS: s.httpsListener,
		LoadBalancer: s.loadBalancer, Subnets: s.subnets, PublicIP: s.publicIP}
	if s.registryEndpoint != nil {
		v.Registry = s.registryEndpoint.String()
	}
	return v
}

// TestAWSSettingsChooseTheMode checks how the CONVOX_AWS_ variables are
// read in each mode.
func TestAWSSettingsChooseTheMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want settingsView
	}{
		{"no mode is the direct mode, with its defaults",
			map[string]string{"CONVOX_AWS_SUBNETS": "subnet-a", "CONVOX_AWS_LOAD_BALANCER": "shared"},
			settingsView{Mode: "direct", Cluster: "convox", Table: "convox", LoadBalancer: "shared", Subnets: []string{"subnet-a"}}},
		{"the direct mode by name",
			map[string]string{"CONVOX_AWS_MODE": "direct", "CONVOX_AWS_SUBNETS": "subnet-a"},
			settingsView{Mode: "direct", Cluster: "convox", Table: "convox", Subnets: []string{"subnet-a"}}},
		{"the stack mode takes its listeners and VPC",
			with(stackEnv, "CONVOX_AWS_HTTPS_LISTENER", strings.Replace(listenerARN, "f2f7", "aaaa", 1), "CONVOX_AWS_PUBLIC_IP", "true"),
			settingsView{Mode: "stack", Cluster: "prod", Table: "convox", VPC: "vpc-1", HTTP: listenerARN, HTTPS: strings.Replace(listenerARN, "f2f7", "aaaa", 1),
				Subnets: []string{"subnet-a", "subnet-b"}, PublicIP: true}},
		{"the mode's case and spaces do not matter",
			with(stackEnv, "CONVOX_AWS_MODE", " Stack "),
			settingsView{Mode: "stack", Cluster: "prod", Table: "convox", VPC: "vpc-1", HTTP: listenerARN, Subnets: []string{"subnet-a", "subnet-b"}}},
		{"a registry endpoint in either mode",
			with(stackEnv, "CONVOX_AWS_REGISTRY_ENDPOINT", "http://127.0.0.1:5000"),
			settingsView{Mode: "stack", Cluster: "prod", Table: "convox", VPC: "vpc-1", HTTP: listenerARN, Subnets: []string{"subnet-a", "subnet-b"}, Registry: "http://127.0.0.1:5000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := awsSettingsFrom(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, viewOf(s)); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

// badAWSSettings are settings the CLI refuses, each with what its message
// says.
var badAWSSettings = []struct {
	name string
	env  map[string]string
	want string
}{
	{"an unknown mode", with(stackEnv, "CONVOX_AWS_MODE", "cloudformation"), `CONVOX_AWS_MODE="cloudformation": use direct or stack`},
	{"the stack mode without a listener", with(stackEnv, "CONVOX_AWS_HTTP_LISTENER", ""), "CONVOX_AWS_MODE=stack needs CONVOX_AWS_HTTP_LISTENER (see convox help aws)"},
	{"the stack mode without anything it needs", map[string]string{"CONVOX_AWS_MODE": "stack"}, "CONVOX_AWS_MODE=stack needs CONVOX_AWS_SUBNETS, CONVOX_AWS_VPC, CONVOX_AWS_HTTP_LISTENER"},
	{"a listener that is not a listener's ARN", with(stackEnv, "CONVOX_AWS_HTTP_LISTENER", "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shared/50dc6c495c0c9188"),
		"CONVOX_AWS_HTTP_LISTENER=\"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shared/50dc6c495c0c9188\": want an application load balancer listener's ARN"},
	{"a listener name instead of an ARN", with(stackEnv, "CONVOX_AWS_HTTPS_LISTENER", "https"), `CONVOX_AWS_HTTPS_LISTENER="https": want an application load balancer listener's ARN`},
	{"a VPC that is not a VPC ID", with(stackEnv, "CONVOX_AWS_VPC", "default"), `CONVOX_AWS_VPC="default": want a VPC ID, vpc-...`},
	{"the direct mode's load balancer in the stack mode", with(stackEnv, "CONVOX_AWS_LOAD_BALANCER", "shared", "CONVOX_AWS_CERTIFICATE", "arn:aws:acm:us-east-1:123456789012:certificate/1"),
		"CONVOX_AWS_LOAD_BALANCER, CONVOX_AWS_CERTIFICATE: direct mode settings, and CONVOX_AWS_MODE is stack"},
	{"the stack mode's listener in the direct mode", with(stackEnv, "CONVOX_AWS_MODE", ""), "CONVOX_AWS_VPC, CONVOX_AWS_HTTP_LISTENER: stack mode settings, and CONVOX_AWS_MODE is direct: set CONVOX_AWS_MODE=stack, or unset them"},
	{"a registry endpoint with a path", with(stackEnv, "CONVOX_AWS_REGISTRY_ENDPOINT", "http://127.0.0.1:5000/v2"), `CONVOX_AWS_REGISTRY_ENDPOINT="http://127.0.0.1:5000/v2": want http(s)://HOST[:PORT]`},
	{"a registry endpoint without a scheme", with(stackEnv, "CONVOX_AWS_REGISTRY_ENDPOINT", "127.0.0.1:5000"), `CONVOX_AWS_REGISTRY_ENDPOINT="127.0.0.1:5000": want http(s)://HOST[:PORT]`},
}

// TestBadAWSSettingsAreUsageErrors checks the refused settings through
// the parser.
func TestBadAWSSettingsAreUsageErrors(t *testing.T) {
	for _, tc := range badAWSSettings {
		t.Run(tc.name, func(t *testing.T) {
			_, err := awsSettingsFrom(func(k string) string { return tc.env[k] })
			ue, ok := err.(*usageError)
			if !ok || !strings.Contains(ue.msg, tc.want) {
				t.Errorf("error = %#v, want a usage error containing %q", err, tc.want)
			}
		})
	}
}

// TestBadAWSSettingsFailBeforeAnyAWSCall runs the CLI with each refused
// setting against an endpoint that counts the requests it receives: the
// command exits 2 with the setting's message, and no request was sent.
// It needs no emulator.
func TestBadAWSSettingsFailBeforeAnyAWSCall(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no call was expected", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	cases := append([]struct {
		name string
		env  map[string]string
		want string
	}{}, badAWSSettings...)
	cases = append(cases, struct {
		name string
		env  map[string]string
		want string
	}{"a listener of another region", with(stackEnv, "CONVOX_AWS_HTTP_LISTENER", strings.Replace(listenerARN, "us-east-1", "eu-west-1", 1)),
		"CONVOX_AWS_HTTP_LISTENER is in region eu-west-1, and the AWS region is us-east-1"})
	e := newCLIEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requests.Store(0)
			e.extraEnv = []string{"AWS_ENDPOINT_URL=" + srv.URL, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
				"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"}
			for k, v := range tc.env {
				e.extraEnv = append(e.extraEnv, k+"="+v)
			}
			for _, args := range [][]string{{"apps", "list", "--rack", "aws"}, {"drift", "web", "--rack", "aws"}, {"deploy", "web:v1", "-a", "web", "--rack", "aws"}} {
				r := e.run(args...)
				if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("convox %s: exit %d, want %d with %q\n%v", strings.Join(args, " "), r.code, exitUsage, tc.want, r)
				}
			}
			if n := requests.Load(); n != 0 {
				t.Errorf("%d requests reached AWS, want none", n)
			}
		})
	}
	t.Run("a good setting does reach AWS", func(t *testing.T) {
		// Proof that the endpoint above sees the CLI's calls.
		requests.Store(0)
		e.extraEnv = []string{"AWS_ENDPOINT_URL=" + srv.URL, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1"}
		for k, v := range stackEnv {
			e.extraEnv = append(e.extraEnv, k+"="+v)
		}
		if r := e.run("apps", "list", "--rack", "aws"); r.code == exitOK {
			t.Errorf("apps list against an endpoint refusing every call succeeded\n%v", r)
		}
		if requests.Load() == 0 {
			t.Error("no request reached the endpoint: the test above cannot tell a refused setting from a silent one")
		}
	})
}
