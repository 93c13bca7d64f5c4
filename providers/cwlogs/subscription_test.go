package cwlogs_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/kinesislogs"
)

// kinesisStream creates a Kinesis stream on the emulator and returns its ARN.
func kinesisStream(t *testing.T, cfg aws.Config, prefix string) string {
	t.Helper()
	client := kinesis.NewFromConfig(cfg)
	name := awstest.Name(t, prefix)
	if err := kinesislogs.EnsureStream(t.Context(), client, name, &kinesislogs.StreamOptions{Shards: 1}); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	out, err := client.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.DeleteStream(context.WithoutCancel(t.Context()), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
	return aws.ToString(out.StreamDescriptionSummary.StreamARN)
}

func TestSubscriptionsOnMoto(t *testing.T) {
	cfg := awstest.EmulatorOf(t, awstest.Moto).Config()
	ctx := t.Context()
	iamc := iam.NewFromConfig(cfg)
	l := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), &cwlogs.Options{IAM: iamc})
	app, other := awstest.Name(t, "sub"), awstest.Name(t, "sub")
	errorsTo, allTo, thirdTo := kinesisStream(t, cfg, "suberr"), kinesisStream(t, cfg, "suball"), kinesisStream(t, cfg, "sub3")
	t.Cleanup(func() {
		l.Delete(context.WithoutCancel(ctx), app)
		l.Delete(context.WithoutCancel(ctx), other)
	})

	list := func(t *testing.T, app string) []providers.Subscription {
		t.Helper()
		got, err := l.Subscriptions(ctx, app)
		if err != nil {
			t.Fatalf("Subscriptions: %v", err)
		}
		return got
	}
	roleOf := func(dest string) string {
		return "arn:aws:iam::123456789012:role" + cwlogs.RolePath + cwlogs.DestinationRoleName(dest)
	}

	t.Run("an app without logs has no subscriptions", func(t *testing.T) {
		if diff := cmp.Diff([]providers.Subscription(nil), list(t, app)); diff != "" {
			t.Errorf("subscriptions (-want +got):\n%s", diff)
		}
	})

	t.Run("a Kinesis subscription gets a role of its own, created with its policies", func(t *testing.T) {
		got, err := l.Subscribe(ctx, app, providers.Subscription{Name: "errors", Destination: errorsTo, Pattern: "ERROR"})
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		want := providers.Subscription{Name: "errors", Destination: errorsTo, Pattern: "ERROR", RoleARN: roleOf(errorsTo)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Subscribe (-want +got):\n%s", diff)
		}
		role, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(cwlogs.DestinationRoleName(errorsTo))})
		if err != nil {
			t.Fatalf("GetRole: %v", err)
		}
		trust, access, _ := cwlogs.RolePolicies(errorsTo)
		doc, _ := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
		if diff := cmp.Diff(decodeJSON(t, string(trust)), decodeJSON(t, doc)); diff != "" {
			t.Errorf("trust policy (-want +got):\n%s", diff)
		}
		pol, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(cwlogs.DestinationRoleName(errorsTo)), PolicyName: aws.String(cwlogs.RolePolicyName)})
		if err != nil {
			t.Fatalf("GetRolePolicy: %v", err)
		}
		doc, _ = url.QueryUnescape(aws.ToString(pol.PolicyDocument))
		if diff := cmp.Diff(decodeJSON(t, string(access)), decodeJSON(t, doc)); diff != "" {
			t.Errorf("access policy (-want +got):\n%s", diff)
		}
	})

	// Replacing is checked while the group has one filter: moto 5.2.1
	// answers LimitExceededException to a replacement when the group has
	// two, where AWS's PutSubscriptionFilter documentation says "If you
	// are updating an existing filter, you must specify the correct name
	// in filterName" and counts the limit of two per log group.
	t.Run("subscribing again under a name replaces that subscription", func(t *testing.T) {
		if _, err := l.Subscribe(ctx, app, providers.Subscription{Name: "errors", Destination: errorsTo, Pattern: "panic"}); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		want := []providers.Subscription{{Name: "errors", Destination: errorsTo, Pattern: "panic", RoleARN: roleOf(errorsTo)}}
		if diff := cmp.Diff(want, list(t, app)); diff != "" {
			t.Errorf("subscriptions (-want +got):\n%s", diff)
		}
	})

	t.Run("another app forwarding to the same destination shares the role", func(t *testing.T) {
		got, err := l.Subscribe(ctx, other, providers.Subscription{Name: "errors", Destination: errorsTo})
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		if diff := cmp.Diff(roleOf(errorsTo), got.RoleARN); diff != "" {
			t.Errorf("role (-want +got):\n%s", diff)
		}
	})

	t.Run("a given role is used as is and subscriptions list by name", func(t *testing.T) {
		given := "arn:aws:iam::123456789012:role/mine"
		if _, err := l.Subscribe(ctx, app, providers.Subscription{Name: "all", Destination: allTo, RoleARN: given}); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		want := []providers.Subscription{
			{Name: "all", Destination: allTo, RoleARN: given},
			{Name: "errors", Destination: errorsTo, Pattern: "panic", RoleARN: roleOf(errorsTo)},
		}
		if diff := cmp.Diff(want, list(t, app)); diff != "" {
			t.Errorf("subscriptions (-want +got):\n%s", diff)
		}
	})

	t.Run("a third subscription of a group is a conflict", func(t *testing.T) {
		_, err := l.Subscribe(ctx, app, providers.Subscription{Name: "third", Destination: thirdTo})
		if !errors.Is(err, providers.ErrConflict) {
			t.Errorf("Subscribe = %v, want ErrConflict", err)
		}
	})

	t.Run("unsubscribing removes one; a missing one is not an error", func(t *testing.T) {
		for _, name := range []string{"all", "all", "never"} {
			if err := l.Unsubscribe(ctx, app, name); err != nil {
				t.Fatalf("Unsubscribe %s: %v", name, err)
			}
		}
		got := list(t, app)
		if len(got) != 1 || got[0].Name != "errors" {
			t.Errorf("subscriptions = %+v, want errors alone", got)
		}
	})

	t.Run("deleting the app's logs removes its subscriptions", func(t *testing.T) {
		if err := l.Delete(ctx, app); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if diff := cmp.Diff([]providers.Subscription(nil), list(t, app)); diff != "" {
			t.Errorf("subscriptions (-want +got):\n%s", diff)
		}
	})
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// TestSubscribeRefusesBadInputBeforeAnyCall runs against an endpoint that
// counts requests: none may arrive.
func TestSubscribeRefusesBadInputBeforeAnyCall(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	cfg := awstest.ConfigFor(srv.URL)
	const stream = "arn:aws:kinesis:us-east-1:123456789012:stream/logs"
	const fn = "arn:aws:lambda:us-east-1:123456789012:function:forward"
	tests := []struct {
		name string
		iam  bool
		app  string
		s    providers.Subscription
		want string
	}{
		{"an app is required", true, "", providers.Subscription{Name: "a", Destination: stream}, "no app"},
		{"a name is required", true, "web", providers.Subscription{Destination: stream}, "subscription name"},
		{"a name cannot hold a colon", true, "web", providers.Subscription{Name: "a:b", Destination: stream}, "without ':'"},
		{"a destination must be a Lambda, Kinesis or Firehose ARN", true, "web", providers.Subscription{Name: "a", Destination: "arn:aws:sqs:us-east-1:123456789012:queue"}, "is not the ARN"},
		{"a Kinesis ARN must name a stream", true, "web", providers.Subscription{Name: "a", Destination: "arn:aws:kinesis:us-east-1:123456789012:function:x"}, "is not the ARN"},
		{"a pattern is at most 1024 bytes", true, "web", providers.Subscription{Name: "a", Destination: stream, Pattern: strings.Repeat("x", 1025)}, "at most 1024 bytes"},
		{"a role must be an IAM role ARN", true, "web", providers.Subscription{Name: "a", Destination: stream, RoleARN: "admin"}, "not an IAM role ARN"},
		{"a Lambda destination takes no role", true, "web", providers.Subscription{Name: "a", Destination: fn, RoleARN: "arn:aws:iam::123456789012:role/x"}, "takes no role"},
		{"a Kinesis destination needs a role or an IAM client", false, "web", providers.Subscription{Name: "a", Destination: stream}, "needs a RoleARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := &cwlogs.Options{}
			if tt.iam {
				opts.IAM = iam.NewFromConfig(cfg)
			}
			l := cwlogs.New(cloudwatchlogs.NewFromConfig(cfg), opts)
			_, err := l.Subscribe(t.Context(), tt.app, tt.s)
			if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Subscribe = %v, want ErrInvalid saying %q", err, tt.want)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d requests were sent", n)
			}
		})
	}
}

func TestDestinationKind(t *testing.T) {
	tests := []struct {
		name, arn, want string
	}{
		{"a Lambda function", "arn:aws:lambda:eu-west-1:123456789012:function:fwd", providers.DestinationLambda},
		{"a Lambda alias", "arn:aws:lambda:eu-west-1:123456789012:function:fwd:live", providers.DestinationLambda},
		{"a Kinesis stream", "arn:aws:kinesis:eu-west-1:123456789012:stream/logs", providers.DestinationKinesis},
		{"a Firehose stream", "arn:aws:firehose:eu-west-1:123456789012:deliverystream/logs", providers.DestinationFirehose},
		{"another partition", "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/logs", providers.DestinationKinesis},
		{"a stream ARN of the wrong service", "arn:aws:firehose:eu-west-1:123456789012:stream/logs", ""},
		{"a short account", "arn:aws:kinesis:eu-west-1:1234:stream/logs", ""},
		{"trailing text", "arn:aws:kinesis:eu-west-1:123456789012:stream/logs extra", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, providers.DestinationKind(tt.arn)); diff != "" {
				t.Errorf("DestinationKind(%q) (-want +got):\n%s", tt.arn, diff)
			}
		})
	}
}
