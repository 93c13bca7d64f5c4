package cwlogs

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// SubscriptionAPI is the part of the CloudWatch Logs client that
// subscriptions use; *cloudwatchlogs.Client implements it. The API given
// to New must implement it too for Logs to offer subscriptions.
type SubscriptionAPI interface {
	PutSubscriptionFilter(context.Context, *cloudwatchlogs.PutSubscriptionFilterInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutSubscriptionFilterOutput, error)
	DescribeSubscriptionFilters(context.Context, *cloudwatchlogs.DescribeSubscriptionFiltersInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeSubscriptionFiltersOutput, error)
	DeleteSubscriptionFilter(context.Context, *cloudwatchlogs.DeleteSubscriptionFilterInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DeleteSubscriptionFilterOutput, error)
}

// IAMAPI is the part of the IAM client Subscribe uses to create the role
// of a Kinesis or Firehose destination; *iam.Client implements it.
type IAMAPI interface {
	CreateRole(context.Context, *iam.CreateRoleInput, ...func(*iam.Options)) (*iam.CreateRoleOutput, error)
	GetRole(context.Context, *iam.GetRoleInput, ...func(*iam.Options)) (*iam.GetRoleOutput, error)
	PutRolePolicy(context.Context, *iam.PutRolePolicyInput, ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
}

// RolePath is the IAM path of the roles Subscribe creates.
const RolePath = "/convox/"

// RolePolicyName is the name of the inline policy of those roles.
const RolePolicyName = "convox-logs-destination"

// rolePropagation bounds how long Subscribe retries a subscription whose
// new role CloudWatch Logs cannot assume yet (IAM is eventually
// consistent; AWS answers InvalidParameterException meanwhile).
const rolePropagation = 2 * time.Minute

var _ providers.LogSubscriber = (*Logs)(nil)

// DestinationRoleName returns the name of the role Subscribe creates for a
// Kinesis or Firehose destination: "convox-logs-" and 16 hexadecimal
// digits of the SHA-256 of the destination's ARN. Every app forwarding to
// the same destination shares it.
func DestinationRoleName(destination string) string {
	sum := sha256.Sum256([]byte(destination))
	return "convox-logs-" + hex.EncodeToString(sum[:8])
}

// Subscribe implements providers.LogSubscriber with a subscription filter
// named s.Name on the app's log group, created first when missing. Events
// reach the destination as CloudWatch Logs subscription payloads (gzip,
// JSON; package logforward decodes them); a Kinesis destination gets
// them distributed by log stream, so a task's lines stay in order.
//
// A Lambda destination must already allow logs.amazonaws.com to invoke it
// (lambda:AddPermission with the log group's ARN as source). A Kinesis or
// Firehose destination needs a role CloudWatch Logs assumes to write to
// it: s.RoleARN, or when it is empty and Options.IAM is set, the role
// DestinationRoleName(s.Destination) under RolePath, created (or found) by
// Subscribe with a trust policy for logs.amazonaws.com limited to the
// destination's account and region and the inline policy RolePolicyName
// allowing kinesis:PutRecord (or firehose:PutRecord and
// firehose:PutRecordBatch) on that destination only. The role is shared
// by the apps forwarding to that destination and is not deleted with a
// subscription. While a new role is not yet visible to CloudWatch Logs,
// Subscribe retries for up to two minutes.
//
// A log group takes two subscription filters; a third returns ErrConflict.
// Deleting the app's logs (Delete) deletes its subscription filters with
// the group.
func (l *Logs) Subscribe(ctx context.Context, app string, s providers.Subscription) (providers.Subscription, error) {
	if app == "" {
		return providers.Subscription{}, providers.Invalidf("cwlogs: subscribe: no app")
	}
	if err := s.Validate(); err != nil {
		return providers.Subscription{}, fmt.Errorf("cwlogs: subscribe %s: %w", app, err)
	}
	api, err := l.subscriptionAPI()
	if err != nil {
		return providers.Subscription{}, err
	}
	kind := providers.DestinationKind(s.Destination)
	if kind != providers.DestinationLambda && s.RoleARN == "" && l.opts.IAM == nil {
		return providers.Subscription{}, providers.Invalidf("cwlogs: subscribe %s to %s: a %s destination needs a RoleARN, or Options.IAM to create one", app, s.Destination, kind)
	}
	group := l.Group(app)
	created := false
	if kind != providers.DestinationLambda && s.RoleARN == "" {
		if s.RoleARN, created, err = l.ensureRole(ctx, s.Destination, kind); err != nil {
			return providers.Subscription{}, err
		}
	}
	if err := l.ensureGroup(ctx, group); err != nil {
		return providers.Subscription{}, err
	}
	in := &cloudwatchlogs.PutSubscriptionFilterInput{
		LogGroupName:   aws.String(group),
		FilterName:     aws.String(s.Name),
		FilterPattern:  aws.String(s.Pattern),
		DestinationArn: aws.String(s.Destination),
	}
	if s.RoleARN != "" {
		in.RoleArn = aws.String(s.RoleARN)
	}
	if kind == providers.DestinationKinesis {
		in.Distribution = types.DistributionByLogStream
	}
	what := fmt.Sprintf("cwlogs: put subscription filter %s on %s", s.Name, group)
	wait := poll.Backoff{Initial: time.Second, Max: 15 * time.Second}
	deadline := time.Now().Add(rolePropagation)
	for {
		_, err = api.PutSubscriptionFilter(ctx, in)
		code := awserr.Code(err)
		switch {
		case err == nil:
			return s, nil
		case code == "LimitExceededException":
			return providers.Subscription{}, fmt.Errorf("%s: %w: the group has the most subscription filters CloudWatch Logs allows; remove one first: %w", what, providers.ErrConflict, err)
		case code == "InvalidParameterException" && created && time.Now().Before(deadline):
			// The new role may not be assumable yet.
			if werr := wait.Wait(ctx); werr != nil {
				return providers.Subscription{}, awserr.Wrap(what, err)
			}
		default:
			return providers.Subscription{}, awserr.Wrap(what, err)
		}
	}
}

// Subscriptions implements providers.LogSubscriber: the subscription
// filters of the app's log group, by name. A missing group has none.
func (l *Logs) Subscriptions(ctx context.Context, app string) ([]providers.Subscription, error) {
	if app == "" {
		return nil, providers.Invalidf("cwlogs: subscriptions: no app")
	}
	api, err := l.subscriptionAPI()
	if err != nil {
		return nil, err
	}
	group := l.Group(app)
	var out []providers.Subscription
	in := &cloudwatchlogs.DescribeSubscriptionFiltersInput{LogGroupName: aws.String(group)}
	for page := 0; ; page++ {
		// A group holds two filters; the bound only stops an endpoint that
		// keeps answering with a next token.
		if page == 100 {
			return nil, fmt.Errorf("cwlogs: describe subscription filters of %s: %w: more than 100 pages", group, providers.ErrUnavailable)
		}
		resp, err := api.DescribeSubscriptionFilters(ctx, in)
		if awserr.Code(err) == "ResourceNotFoundException" {
			return nil, nil
		}
		if err != nil {
			return nil, awserr.Wrap("cwlogs: describe subscription filters of "+group, err)
		}
		for _, f := range resp.SubscriptionFilters {
			out = append(out, providers.Subscription{
				Name:        aws.ToString(f.FilterName),
				Destination: aws.ToString(f.DestinationArn),
				Pattern:     aws.ToString(f.FilterPattern),
				RoleARN:     aws.ToString(f.RoleArn),
			})
		}
		if aws.ToString(resp.NextToken) == "" {
			break
		}
		in.NextToken = resp.NextToken
	}
	slices.SortFunc(out, func(a, b providers.Subscription) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Unsubscribe implements providers.LogSubscriber: it deletes the
// subscription filter; a missing filter or group is not an error. The role
// Subscribe may have created stays (other apps may use it).
func (l *Logs) Unsubscribe(ctx context.Context, app, name string) error {
	if app == "" || name == "" {
		return providers.Invalidf("cwlogs: unsubscribe: no app or no subscription name")
	}
	api, err := l.subscriptionAPI()
	if err != nil {
		return err
	}
	group := l.Group(app)
	_, err = api.DeleteSubscriptionFilter(ctx, &cloudwatchlogs.DeleteSubscriptionFilterInput{LogGroupName: aws.String(group), FilterName: aws.String(name)})
	if err != nil && awserr.Code(err) != "ResourceNotFoundException" {
		return awserr.Wrap(fmt.Sprintf("cwlogs: delete subscription filter %s of %s", name, group), err)
	}
	return nil
}

func (l *Logs) subscriptionAPI() (SubscriptionAPI, error) {
	api, ok := l.api.(SubscriptionAPI)
	if !ok {
		return nil, fmt.Errorf("cwlogs: %w: the API client does not implement SubscriptionAPI", providers.ErrUnimplemented)
	}
	return api, nil
}

type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Effect    string                       `json:"Effect"`
	Principal map[string]string            `json:"Principal,omitempty"`
	Action    []string                     `json:"Action"`
	Resource  string                       `json:"Resource,omitempty"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// RolePolicies returns the trust policy and the inline policy of the role
// Subscribe creates for a Kinesis or Firehose destination, as JSON.
func RolePolicies(destination string) (trust, access []byte, err error) {
	kind := providers.DestinationKind(destination)
	if kind != providers.DestinationKinesis && kind != providers.DestinationFirehose {
		return nil, nil, providers.Invalidf("cwlogs: %q is not the ARN of a Kinesis or Firehose stream", destination)
	}
	// arn:<partition>:<service>:<region>:<account>:<resource>
	parts := strings.SplitN(destination, ":", 6)
	source := fmt.Sprintf("arn:%s:logs:%s:%s:*", parts[1], parts[3], parts[4])
	actions := []string{"kinesis:PutRecord"}
	if kind == providers.DestinationFirehose {
		actions = []string{"firehose:PutRecord", "firehose:PutRecordBatch"}
	}
	trust, _ = json.Marshal(policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Effect: "Allow", Principal: map[string]string{"Service": "logs.amazonaws.com"}, Action: []string{"sts:AssumeRole"},
		Condition: map[string]map[string]string{"StringLike": {"aws:SourceArn": source}},
	}}})
	access, _ = json.Marshal(policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Effect: "Allow", Action: actions, Resource: destination,
	}}})
	return trust, access, nil
}

// ensureRole creates the destination's role, or finds it, and sets its
// inline policy. created is true when this call created the role.
func (l *Logs) ensureRole(ctx context.Context, destination, kind string) (arn string, created bool, err error) {
	trust, access, err := RolePolicies(destination)
	if err != nil {
		return "", false, err
	}
	name := DestinationRoleName(destination)
	out, err := l.opts.IAM.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(name),
		Path:                     aws.String(RolePath),
		AssumeRolePolicyDocument: aws.String(string(trust)),
		Description:              aws.String("Lets CloudWatch Logs write subscription data to " + kind + " " + destination),
	})
	switch {
	case err == nil:
		arn, created = aws.ToString(out.Role.Arn), true
	case awserr.Code(err) == "EntityAlreadyExists":
		got, gerr := l.opts.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
		if gerr != nil {
			return "", false, awserr.Wrap("cwlogs: get role "+name, gerr)
		}
		arn = aws.ToString(got.Role.Arn)
	default:
		return "", false, awserr.Wrap("cwlogs: create role "+name, err)
	}
	if arn == "" {
		return "", false, fmt.Errorf("cwlogs: role %s: %w: the response has no ARN", name, providers.ErrUnavailable)
	}
	if _, err := l.opts.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(RolePolicyName), PolicyDocument: aws.String(string(access))}); err != nil {
		return "", false, awserr.Wrap("cwlogs: put the policy of role "+name, err)
	}
	return arn, created, nil
}

// SubscriptionEntry maps one event of a subscription payload (a
// CloudWatch Logs "DATA_MESSAGE" for the log stream logStream of the
// app's group) back to the entry Write stored, as Read would return it:
// the process and stream from the stream name (ParseStreamName), and the
// ID, release and message from the envelope; an event without one (a line
// the awslogs driver wrote) gets the ID "<log stream>:<event ID>", no
// release, and its message as it is.
func SubscriptionEntry(app, logStream, eventID string, timestamp int64, message string) providers.LogEntry {
	e, _ := entryOf(app, logStream, timestamp, message, rawID(logStream, eventID))
	return e
}
