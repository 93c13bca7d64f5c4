package cfnstack_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// runCFN is stubCFN with the stack resource RunTask looks up.
type runCFN struct {
	*stubCFN
	resource func(*cloudformation.DescribeStackResourceInput) (*cloudformation.DescribeStackResourceOutput, error)
}

func (s runCFN) DescribeStackResource(_ context.Context, in *cloudformation.DescribeStackResourceInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStackResourceOutput, error) {
	return s.resource(in)
}

// runECS answers the ECS calls of RunTask and records which it got.
type runECS struct {
	stubECS
	calls    *[]string
	current  func() (*ecs.DescribeTaskDefinitionOutput, error)
	runTask  func(*ecs.RunTaskInput) (*ecs.RunTaskOutput, error)
	register string // the ARN RegisterTaskDefinition returns
}

func (e runECS) DescribeTaskDefinition(_ context.Context, in *ecs.DescribeTaskDefinitionInput, _ ...func(*ecs.Options)) (*ecs.DescribeTaskDefinitionOutput, error) {
	*e.calls = append(*e.calls, "DescribeTaskDefinition")
	return e.current()
}

func (e runECS) RegisterTaskDefinition(_ context.Context, in *ecs.RegisterTaskDefinitionInput, _ ...func(*ecs.Options)) (*ecs.RegisterTaskDefinitionOutput, error) {
	*e.calls = append(*e.calls, "RegisterTaskDefinition "+aws.ToString(in.Family))
	return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &ecstypes.TaskDefinition{TaskDefinitionArn: aws.String(e.register)}}, nil
}

func (e runECS) RunTask(_ context.Context, in *ecs.RunTaskInput, _ ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	*e.calls = append(*e.calls, "RunTask "+aws.ToString(in.TaskDefinition))
	return e.runTask(in)
}

// TestRunTaskChoosesItsTaskDefinitionAndMapsErrors checks, on stubs, which
// task definition RunTask runs and how it reports ECS's refusals.
func TestRunTaskChoosesItsTaskDefinitionAndMapsErrors(t *testing.T) {
	stack := func(*cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error) {
		return &cloudformation.DescribeStacksOutput{Stacks: []cfntypes.Stack{{StackId: aws.String("id"), StackStatus: cfntypes.StackStatusUpdateComplete}}}, nil
	}
	withLogGroup := func(*cloudformation.GetTemplateInput) (*cloudformation.GetTemplateOutput, error) {
		return &cloudformation.GetTemplateOutput{TemplateBody: aws.String(`{"AWSTemplateFormatVersion":"2010-09-09","Metadata":{"Convox":{"App":"shop"}},` +
			`"Resources":{"LogGroup":{"Type":"AWS::Logs::LogGroup","Properties":{"LogGroupName":"/convox/shop"}}}}`)}, nil
	}
	held := func(status cfntypes.ResourceStatus) func(*cloudformation.DescribeStackResourceInput) (*cloudformation.DescribeStackResourceOutput, error) {
		return func(in *cloudformation.DescribeStackResourceInput) (*cloudformation.DescribeStackResourceOutput, error) {
			if !strings.HasPrefix(aws.ToString(in.LogicalResourceId), "TaskOfwebV") {
				return nil, validationError("Resource " + aws.ToString(in.LogicalResourceId) + " does not exist for stack prod-shop")
			}
			return &cloudformation.DescribeStackResourceOutput{StackResourceDetail: &cfntypes.StackResourceDetail{
				PhysicalResourceId: aws.String("arn:td/prod-shop-web:3"), ResourceStatus: status}}, nil
		}
	}
	notHeld := func(in *cloudformation.DescribeStackResourceInput) (*cloudformation.DescribeStackResourceOutput, error) {
		return nil, validationError("Resource " + aws.ToString(in.LogicalResourceId) + " does not exist for stack prod-shop")
	}
	none := func() (*ecs.DescribeTaskDefinitionOutput, error) {
		return nil, &smithy.GenericAPIError{Code: "ClientException", Message: "Unable to describe task definition."}
	}
	active := func() (*ecs.DescribeTaskDefinitionOutput, error) {
		return &ecs.DescribeTaskDefinitionOutput{TaskDefinition: &ecstypes.TaskDefinition{TaskDefinitionArn: aws.String("arn:td/run:1"), Status: ecstypes.TaskDefinitionStatusActive}}, nil
	}
	started := func(*ecs.RunTaskInput) (*ecs.RunTaskOutput, error) {
		return &ecs.RunTaskOutput{Tasks: []ecstypes.Task{{TaskArn: aws.String("arn:task/prod/abc"), LastStatus: aws.String("PROVISIONING")}}}, nil
	}
	for _, tc := range []struct {
		name     string
		resource func(*cloudformation.DescribeStackResourceInput) (*cloudformation.DescribeStackResourceOutput, error)
		current  func() (*ecs.DescribeTaskDefinitionOutput, error)
		runTask  func(*ecs.RunTaskInput) (*ecs.RunTaskOutput, error)
		want     []string // ECS calls; the registered family is cut at its hash
		wantErr  error
		reason   string // in the error
	}{
		{"the stack's task definition when the stack holds it", held(cfntypes.ResourceStatusUpdateComplete), none, started,
			[]string{"RunTask arn:td/prod-shop-web:3"}, nil, ""},
		{"a definition the stack is deleting is not used", held(cfntypes.ResourceStatusDeleteInProgress), none, started,
			[]string{"DescribeTaskDefinition", "RegisterTaskDefinition prod-shop_web_", "RunTask arn:td/new:1"}, nil, ""},
		{"a definition outside the stack is reused", notHeld, active, started,
			[]string{"DescribeTaskDefinition", "RunTask arn:td/run:1"}, nil, ""},
		{"a token ECS saw with other parameters is a conflict", held(cfntypes.ResourceStatusCreateComplete), none,
			func(*ecs.RunTaskInput) (*ecs.RunTaskOutput, error) {
				return nil, &smithy.GenericAPIError{Code: "ConflictException", Message: "client token already used"}
			},
			[]string{"RunTask arn:td/prod-shop-web:3"}, providers.ErrConflict, "run1"},
		{"no task started is unavailable, with ECS's reason", held(cfntypes.ResourceStatusCreateComplete), none,
			func(*ecs.RunTaskInput) (*ecs.RunTaskOutput, error) {
				return &ecs.RunTaskOutput{Failures: []ecstypes.Failure{{Reason: aws.String("RESOURCE:ENI")}}}, nil
			},
			[]string{"RunTask arn:td/prod-shop-web:3"}, providers.ErrUnavailable, "RESOURCE:ENI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			api := runECS{calls: &calls, current: tc.current, runTask: tc.runTask, register: "arn:td/new:1"}
			s := cfnstack.New(runCFN{&stubCFN{describeStacks: stack, getTemplate: withLogGroup}, tc.resource}, api, nil,
				&cfnstack.Options{Cluster: "prod", Region: "us-east-1", Subnets: []string{"subnet-1"}, HTTPListener: "arn:listener", PollInterval: 1})
			tk, err := s.RunTask(t.Context(), providers.RunSpec{App: "shop", Release: "R1", Token: "run1", Image: imageV1,
				Process: providers.Process{Name: "web", Count: 1, Port: 8080}})
			for i, c := range calls {
				if f, ok := strings.CutPrefix(c, "RegisterTaskDefinition prod-shop_web_"); ok && len(f) == 12 {
					calls[i] = "RegisterTaskDefinition prod-shop_web_"
				}
			}
			if diff := cmp.Diff(tc.want, calls); diff != "" {
				t.Errorf("ECS calls (-want +got):\n%s", diff)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(fmt.Sprint(err), tc.reason) {
					t.Errorf("RunTask = %v, want %v naming %q", err, tc.wantErr, tc.reason)
				}
				return
			}
			want := providers.Task{ID: "abc", App: "shop", Process: "web", Release: "R1", State: providers.TaskPending}
			if err != nil || !cmp.Equal(want, tk) {
				t.Errorf("RunTask = %+v, %v; want %+v", tk, err, want)
			}
		})
	}
}
