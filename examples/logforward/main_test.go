package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

func TestUsageErrors(t *testing.T) {
	role := "arn:aws:iam::123456789012:role/fwd"
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"an app is required", []string{"-role", role, "-slack-url", "https://h"}, nil, "-app"},
		{"a role ARN is required", []string{"-app", "shop", "-role", "fwd", "-slack-url", "https://h"}, nil, "-role must be an IAM role ARN"},
		{"a destination for alerts is required", []string{"-app", "shop", "-role", role}, nil, "-webhook-url or -slack-url"},
		{"a webhook needs its secret", []string{"-app", "shop", "-role", role, "-webhook-url", "https://h"}, nil, "LOGFORWARD_WEBHOOK_SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("run = %d, %q; want 2 and a message saying %q", code, stderr.String(), tt.want)
			}
		})
	}
}

// TestDeployOnMoto deploys twice (create, then update) on moto, which
// creates Lambda functions but cannot invoke them without Docker; the
// handler's behaviour under invocation is tested in ./handler.
func TestDeployOnMoto(t *testing.T) {
	cfg := awstest.EmulatorOf(t, awstest.Moto).Config()
	ctx := t.Context()
	role, err := iam.NewFromConfig(cfg).CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(awstest.Name(t, "fwdrole")),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := settings{app: awstest.Name(t, "fwd"), function: awstest.Name(t, "fwd"), role: aws.ToString(role.Role.Arn), pattern: "?panic ?FATAL", slackURL: "https://hooks.example.com/T/B/x"}
	lc := lambda.NewFromConfig(cfg)
	logs := cloudwatchlogs.NewFromConfig(cfg)
	t.Cleanup(func() {
		cwlogs.New(logs, nil).Delete(context.WithoutCancel(ctx), s.app)
		lc.DeleteFunction(context.WithoutCancel(ctx), &lambda.DeleteFunctionInput{FunctionName: aws.String(s.function)})
	})
	for i, pattern := range []string{"?panic ?FATAL", "panic"} {
		s.pattern = pattern
		var out bytes.Buffer
		if err := deploy(ctx, s, lc, logs, &out); err != nil {
			t.Fatalf("deploy %d: %v", i+1, err)
		}
		if !strings.Contains(out.String(), "function arn:aws:lambda:us-east-1:123456789012:function:"+s.function+" is ready") {
			t.Errorf("deploy %d printed:\n%s", i+1, out.String())
		}
	}
	fn, err := lc.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(s.function)})
	if err != nil {
		t.Fatal(err)
	}
	c := fn.Configuration
	got := []string{string(c.Runtime), aws.ToString(c.Handler), string(c.Architectures[0]), c.Environment.Variables["LOGFORWARD_PATTERN"], c.Environment.Variables["LOGFORWARD_SLACK_URL"]}
	want := []string{string(types.RuntimeProvidedal2023), "bootstrap", "arm64", "panic", s.slackURL}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("function (-want +got):\n%s", diff)
	}
	subs, err := cwlogs.New(logs, nil).Subscriptions(ctx, s.app)
	if err != nil {
		t.Fatal(err)
	}
	wantSubs := []providers.Subscription{{Name: "logforward", Destination: aws.ToString(c.FunctionArn), Pattern: "panic"}}
	if diff := cmp.Diff(wantSubs, subs); diff != "" {
		t.Errorf("subscriptions (-want +got):\n%s", diff)
	}
}
