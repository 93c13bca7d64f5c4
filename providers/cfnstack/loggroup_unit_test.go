package cfnstack_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cfnstack"
)

// oneStack is a CloudFormation account holding at most one stack, kept as
// the template it was last given: each create or update completes at
// once. Change sets are made from a template and report no change.
type oneStack struct {
	cfnstack.CloudFormationAPI

	mu   sync.Mutex
	body string // the stack's template; "" while there is no stack
	sent []string
}

func (o *oneStack) put(body string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.body = body
	o.sent = append(o.sent, body)
}

// last returns the last template sent (CreateStack, UpdateStack or
// CreateChangeSet).
func (o *oneStack) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sent) == 0 {
		return ""
	}
	return o.sent[len(o.sent)-1]
}

func (o *oneStack) DescribeStacks(context.Context, *cloudformation.DescribeStacksInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.body == "" {
		return nil, validationError("Stack with id prod-shop does not exist")
	}
	return &cloudformation.DescribeStacksOutput{Stacks: []cfntypes.Stack{{StackId: aws.String("arn:stack/prod-shop/1"), StackStatus: cfntypes.StackStatusUpdateComplete,
		Outputs: []cfntypes.Output{{OutputKey: aws.String("TargetGroupOfweb"), OutputValue: aws.String("arn:tg/web")}}}}}, nil
}

func (o *oneStack) GetTemplate(context.Context, *cloudformation.GetTemplateInput, ...func(*cloudformation.Options)) (*cloudformation.GetTemplateOutput, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return &cloudformation.GetTemplateOutput{TemplateBody: aws.String(o.body)}, nil
}

func (o *oneStack) CreateStack(_ context.Context, in *cloudformation.CreateStackInput, _ ...func(*cloudformation.Options)) (*cloudformation.CreateStackOutput, error) {
	o.put(aws.ToString(in.TemplateBody))
	return &cloudformation.CreateStackOutput{}, nil
}

func (o *oneStack) UpdateStack(_ context.Context, in *cloudformation.UpdateStackInput, _ ...func(*cloudformation.Options)) (*cloudformation.UpdateStackOutput, error) {
	o.put(aws.ToString(in.TemplateBody))
	return &cloudformation.UpdateStackOutput{}, nil
}

func (o *oneStack) CreateChangeSet(_ context.Context, in *cloudformation.CreateChangeSetInput, _ ...func(*cloudformation.Options)) (*cloudformation.CreateChangeSetOutput, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent = append(o.sent, aws.ToString(in.TemplateBody))
	return &cloudformation.CreateChangeSetOutput{}, nil
}

func (o *oneStack) DescribeChangeSet(context.Context, *cloudformation.DescribeChangeSetInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeChangeSetOutput, error) {
	return &cloudformation.DescribeChangeSetOutput{Status: cfntypes.ChangeSetStatusCreateComplete}, nil
}

func (o *oneStack) DeleteChangeSet(context.Context, *cloudformation.DeleteChangeSetInput, ...func(*cloudformation.Options)) (*cloudformation.DeleteChangeSetOutput, error) {
	return &cloudformation.DeleteChangeSetOutput{}, nil
}

// DescribeStackResource finds the logical ID in the stack's template; its
// physical ID is "arn:stack-resource/<ID>".
func (o *oneStack) DescribeStackResource(_ context.Context, in *cloudformation.DescribeStackResourceInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStackResourceOutput, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := aws.ToString(in.LogicalResourceId)
	if !strings.Contains(o.body, `"`+id+`":`) {
		return nil, validationError("Resource " + id + " does not exist for stack prod-shop")
	}
	return &cloudformation.DescribeStackResourceOutput{StackResourceDetail: &cfntypes.StackResourceDetail{
		PhysicalResourceId: aws.String("arn:stack-resource/" + id), ResourceStatus: cfntypes.ResourceStatusCreateComplete}}, nil
}

// oneOffECS runs one-offs, registering task definitions outside the stack
// (none exists before), and records them.
type oneOffECS struct {
	stubECS

	mu         sync.Mutex
	registered []map[string]string // awslogs options
	ran        []string            // task definitions
}

func (e *oneOffECS) DescribeTaskDefinition(context.Context, *ecs.DescribeTaskDefinitionInput, ...func(*ecs.Options)) (*ecs.DescribeTaskDefinitionOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "ClientException", Message: "Unable to describe task definition."}
}

func (e *oneOffECS) RegisterTaskDefinition(_ context.Context, in *ecs.RegisterTaskDefinitionInput, _ ...func(*ecs.Options)) (*ecs.RegisterTaskDefinitionOutput, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.registered = append(e.registered, in.ContainerDefinitions[0].LogConfiguration.Options)
	return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &ecstypes.TaskDefinition{TaskDefinitionArn: aws.String("arn:registered/" + aws.ToString(in.Family))}}, nil
}

func (e *oneOffECS) RunTask(_ context.Context, in *ecs.RunTaskInput, _ ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ran = append(e.ran, aws.ToString(in.TaskDefinition))
	return &ecs.RunTaskOutput{Tasks: []ecstypes.Task{{TaskArn: aws.String("arn:task/prod/abc"), LastStatus: aws.String("PROVISIONING")}}}, nil
}

// logging is what a template says of the app's log group: the type of
// its LogGroup resource ("" without one), the external group its metadata
// records, and the awslogs options of its task definitions.
type logging struct {
	LogGroupResource string
	Recorded         string
	Awslogs          []map[string]any
}

func loggingOf(t *testing.T, body string) logging {
	t.Helper()
	var tpl struct {
		Metadata struct {
			Convox struct{ ExternalLogGroup string }
		}
		Resources map[string]struct {
			Type       string
			Properties struct {
				ContainerDefinitions []struct {
					LogConfiguration struct{ Options map[string]any }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &tpl); err != nil {
		t.Fatalf("template %q: %v", body, err)
	}
	l := logging{LogGroupResource: tpl.Resources["LogGroup"].Type, Recorded: tpl.Metadata.Convox.ExternalLogGroup}
	for _, r := range tpl.Resources {
		if r.Type == "AWS::ECS::TaskDefinition" {
			l.Awslogs = append(l.Awslogs, r.Properties.ContainerDefinitions[0].LogConfiguration.Options)
		}
	}
	return l
}

// The two choices, as a template renders them for app shop's process web.
var (
	stackOwned = logging{LogGroupResource: "AWS::Logs::LogGroup", Awslogs: []map[string]any{
		{"awslogs-group": map[string]any{"Ref": "LogGroup"}, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web"},
	}}
	external = logging{Recorded: "/convox/shop", Awslogs: []map[string]any{
		{"awslogs-group": "/convox/shop", "awslogs-create-group": "true", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web"},
	}}
)

// TestAStackKeepsItsLogGroupChoice checks that a new stack declares the
// app's log group, or with Options.ExternalLogGroup leaves it out and
// records the group, and that every later template of that stack (a
// deploy, a rollback, a route, a plan) and every one-off keeps the
// stack's choice when the option says the other: dropping the LogGroup
// resource would delete the group and its logs, adding it would fail.
func TestAStackKeepsItsLogGroupChoice(t *testing.T) {
	for _, tc := range []struct {
		name              string
		createdExternal   bool
		want              logging
		wantRegisteredLog map[string]string
	}{
		{"a stack declaring its log group keeps it when the option is set later", false, stackOwned,
			map[string]string{"awslogs-group": "/convox/shop", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web"}},
		{"a stack with an external log group keeps it when the option is unset later", true, external,
			map[string]string{"awslogs-group": "/convox/shop", "awslogs-create-group": "true", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			cfn := &oneStack{}
			newStack := func(externalLogGroup bool, ecsAPI cfnstack.ECSAPI) *cfnstack.Stack {
				return cfnstack.New(cfn, ecsAPI, stubELB{}, &cfnstack.Options{Cluster: "prod", Region: "us-east-1", Subnets: []string{"subnet-1"},
					HTTPListener: "arn:listener", VPC: "vpc-1", Domain: "example.com", ExternalLogGroup: externalLogGroup, PollInterval: 1})
			}
			r1 := desired()
			r1.Release, r1.Token = "R1", "tok1"
			if _, err := newStack(tc.createdExternal, stubECS{}).Apply(ctx, r1); err != nil {
				t.Fatalf("first Apply: %v", err)
			}
			if diff := cmp.Diff(tc.want, loggingOf(t, cfn.last())); diff != "" {
				t.Fatalf("the new stack's template (-want +got):\n%s", diff)
			}

			ecsAPI := &oneOffECS{}
			later := newStack(!tc.createdExternal, ecsAPI)
			r2 := desired()
			r2.Image = imageV2
			steps := []struct {
				name string
				do   func() error
			}{
				{"a deploy", func() error { _, err := later.Apply(ctx, r2); return err }},
				{"a rollback", func() error {
					back := r1
					back.Token = "tok3"
					_, err := later.Apply(ctx, back)
					return err
				}},
				{"a route", func() error {
					_, err := later.EnsureRoute(ctx, providers.RouteSpec{App: "shop", Process: "web", Port: 8080})
					return err
				}},
				{"a plan", func() error { _, err := later.Changes(ctx, r2); return err }},
			}
			for _, s := range steps {
				if err := s.do(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				if diff := cmp.Diff(tc.want, loggingOf(t, cfn.last())); diff != "" {
					t.Errorf("the template of %s (-want +got):\n%s", s.name, diff)
				}
			}

			// A one-off of the deployed release (R1, after the rollback)
			// finds the stack's own task definition, named by its content,
			// logging included; one of another release registers a
			// definition logging as the stack's do.
			run := func(img providers.Image, token string) {
				t.Helper()
				if _, err := later.RunTask(ctx, providers.RunSpec{App: "shop", Release: "R", Token: token, Image: img, Process: r1.Processes[0]}); err != nil {
					t.Fatalf("RunTask: %v", err)
				}
			}
			run(imageV1, "run1")
			run(imageV2, "run2")
			if len(ecsAPI.ran) != 2 || !strings.HasPrefix(ecsAPI.ran[0], "arn:stack-resource/TaskOfwebV") || !strings.HasPrefix(ecsAPI.ran[1], "arn:registered/prod-shop_web_") {
				t.Errorf("one-offs ran %q, want the stack's task definition, then one registered outside it", ecsAPI.ran)
			}
			if diff := cmp.Diff([]map[string]string{tc.wantRegisteredLog}, ecsAPI.registered); diff != "" {
				t.Errorf("awslogs options of the registered task definition (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAStackWithNothingButAnExternalLogGroupHoldsAPlaceholder checks that
// a template with no resource, which CloudFormation refuses, never leaves
// the provider: a stack with an external log group and no process holds
// a placeholder, which goes once a process is there.
func TestAStackWithNothingButAnExternalLogGroupHoldsAPlaceholder(t *testing.T) {
	ctx := t.Context()
	cfn := &oneStack{}
	s := cfnstack.New(cfn, stubECS{}, stubELB{}, &cfnstack.Options{Cluster: "prod", Region: "us-east-1", Subnets: []string{"subnet-1"},
		HTTPListener: "arn:listener", ExternalLogGroup: true, PollInterval: 1})
	types := func() map[string]string {
		var tpl struct {
			Resources map[string]struct{ Type string }
		}
		if err := json.Unmarshal([]byte(cfn.last()), &tpl); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for id, r := range tpl.Resources {
			if strings.HasPrefix(id, "TaskOf") {
				id = "TaskOf…"
			}
			out[id] = r.Type
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		processes []providers.Process
		want      map[string]string
	}{
		{"no process: a placeholder", nil, map[string]string{"Placeholder": "AWS::CloudFormation::WaitConditionHandle"}},
		{"a process: no placeholder", desired().Processes, map[string]string{"ServiceOfweb": "AWS::ECS::Service", "TaskOf…": "AWS::ECS::TaskDefinition"}},
		{"no process again: the placeholder back", nil, map[string]string{"Placeholder": "AWS::CloudFormation::WaitConditionHandle"}},
	} {
		d := desired()
		d.Token, d.Processes = d.Token+tc.name[:1]+strconv.Itoa(len(tc.processes)), tc.processes
		if _, err := s.Apply(ctx, d); err != nil {
			t.Fatalf("%s: Apply: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, types()); diff != "" {
			t.Errorf("%s: the stack's resources (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestNewRefusesARetentionForAnExternalLogGroup checks that a retention,
// which only a group the stack declares takes, cannot be set with
// ExternalLogGroup.
func TestNewRefusesARetentionForAnExternalLogGroup(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "LogRetentionDays") {
			t.Errorf("New with ExternalLogGroup and LogRetentionDays: recovered %v, want a panic naming LogRetentionDays", r)
		}
	}()
	cfnstack.New(&oneStack{}, stubECS{}, stubELB{}, &cfnstack.Options{Cluster: "prod", Region: "us-east-1", Subnets: []string{"subnet-1"},
		HTTPListener: "arn:listener", ExternalLogGroup: true, LogRetentionDays: 7})
}
