package cfnstack_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cfnstack"
)

// stubCFN answers the CloudFormation calls a case sets; any other call
// panics on the nil embedded interface, failing the case.
type stubCFN struct {
	cfnstack.CloudFormationAPI
	describeStacks func(*cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error)
	getTemplate    func(*cloudformation.GetTemplateInput) (*cloudformation.GetTemplateOutput, error)
	updateStack    func(*cloudformation.UpdateStackInput) (*cloudformation.UpdateStackOutput, error)
	createStack    func(*cloudformation.CreateStackInput) (*cloudformation.CreateStackOutput, error)
	detect         func(*cloudformation.DetectStackDriftInput) (*cloudformation.DetectStackDriftOutput, error)
	detectStatus   func(*cloudformation.DescribeStackDriftDetectionStatusInput) (*cloudformation.DescribeStackDriftDetectionStatusOutput, error)
	drifts         func(*cloudformation.DescribeStackResourceDriftsInput) (*cloudformation.DescribeStackResourceDriftsOutput, error)
}

func (s *stubCFN) DescribeStacks(_ context.Context, in *cloudformation.DescribeStacksInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	return s.describeStacks(in)
}

func (s *stubCFN) GetTemplate(_ context.Context, in *cloudformation.GetTemplateInput, _ ...func(*cloudformation.Options)) (*cloudformation.GetTemplateOutput, error) {
	return s.getTemplate(in)
}

func (s *stubCFN) UpdateStack(_ context.Context, in *cloudformation.UpdateStackInput, _ ...func(*cloudformation.Options)) (*cloudformation.UpdateStackOutput, error) {
	return s.updateStack(in)
}

func (s *stubCFN) CreateStack(_ context.Context, in *cloudformation.CreateStackInput, _ ...func(*cloudformation.Options)) (*cloudformation.CreateStackOutput, error) {
	return s.createStack(in)
}

func (s *stubCFN) DetectStackDrift(_ context.Context, in *cloudformation.DetectStackDriftInput, _ ...func(*cloudformation.Options)) (*cloudformation.DetectStackDriftOutput, error) {
	return s.detect(in)
}

func (s *stubCFN) DescribeStackDriftDetectionStatus(_ context.Context, in *cloudformation.DescribeStackDriftDetectionStatusInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStackDriftDetectionStatusOutput, error) {
	return s.detectStatus(in)
}

func (s *stubCFN) DescribeStackResourceDrifts(_ context.Context, in *cloudformation.DescribeStackResourceDriftsInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStackResourceDriftsOutput, error) {
	return s.drifts(in)
}

// stubECS creates clusters and nothing else.
type stubECS struct{ cfnstack.ECSAPI }

func (stubECS) CreateCluster(context.Context, *ecs.CreateClusterInput, ...func(*ecs.Options)) (*ecs.CreateClusterOutput, error) {
	return &ecs.CreateClusterOutput{}, nil
}

func newStub(cfn cfnstack.CloudFormationAPI) *cfnstack.Stack {
	return cfnstack.New(cfn, stubECS{}, nil, &cfnstack.Options{Cluster: "prod", Region: "us-east-1", Subnets: []string{"subnet-1"}, HTTPListener: "arn:listener", PollInterval: 1})
}

func validationError(msg string) error {
	return &smithy.GenericAPIError{Code: "ValidationError", Message: msg}
}

func desired() providers.Desired {
	return providers.Desired{App: "shop", Release: "R2", Token: "tok2", Image: imageV1,
		Processes: []providers.Process{{Name: "web", Count: 1, Port: 8080}}}
}

func TestApplyRefusesBadInputBeforeAnyCall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*providers.Desired)
	}{
		{"an invalid app name", func(d *providers.Desired) { d.App = "Shop" }},
		{"no release", func(d *providers.Desired) { d.Release = "" }},
		{"an image not pinned to a digest", func(d *providers.Desired) { d.Image.Digest = "" }},
		{"release and token too long for a ClientRequestToken", func(d *providers.Desired) { d.Token = strings.Repeat("t", 63) }},
		{"a classic load balancer binding", func(d *providers.Desired) {
			d.Bindings = map[string][]providers.Binding{"web": {{Kind: providers.BindingClassicELB, Target: "lb", Port: 8080}}}
		}},
		{"a secret by reference, which the stack mode does not keep", func(d *providers.Desired) {
			d.Secret, d.SecretRefs = []string{"KEY"}, map[string]string{"KEY": "arn:aws:ssm:us-east-1:123456789012:parameter/k"}
		}},
		{"six target groups for one service", func(d *providers.Desired) {
			b := providers.Binding{Kind: providers.BindingTargetGroup, Target: "arn:tg", Port: 8080}
			d.Bindings = map[string][]providers.Binding{"web": {b, b, b, b, b, b}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := desired()
			tc.change(&d)
			s := newStub(&stubCFN{}) // any call panics
			if _, err := s.Apply(t.Context(), d); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Apply = %v, want ErrInvalid", err)
			}
			if _, err := s.Changes(t.Context(), d); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Changes = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestApplyTreatsNoUpdatesAsSuccessAndDerivesItsRequestToken(t *testing.T) {
	var tokens []string
	cfn := &stubCFN{
		describeStacks: func(*cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error) {
			return &cloudformation.DescribeStacksOutput{Stacks: []cfntypes.Stack{{StackId: aws.String("id"), StackStatus: cfntypes.StackStatusUpdateComplete,
				Outputs: []cfntypes.Output{{OutputKey: aws.String("ConvoxRelease"), OutputValue: aws.String("R1")}, {OutputKey: aws.String("ConvoxToken"), OutputValue: aws.String("tok1")}}}}}, nil
		},
		getTemplate: func(*cloudformation.GetTemplateInput) (*cloudformation.GetTemplateOutput, error) {
			return &cloudformation.GetTemplateOutput{TemplateBody: aws.String(`{"AWSTemplateFormatVersion":"2010-09-09","Metadata":{"Convox":{"App":"shop"}},"Resources":{}}`)}, nil
		},
		updateStack: func(in *cloudformation.UpdateStackInput) (*cloudformation.UpdateStackOutput, error) {
			tokens = append(tokens, aws.ToString(in.ClientRequestToken))
			return nil, validationError("No updates are to be performed.")
		},
	}
	s := newStub(cfn)
	var states []providers.RolloutState
	var ids []string
	for range 2 {
		ro, err := s.Apply(t.Context(), desired())
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		states, ids = append(states, ro.State), append(ids, ro.ID)
	}
	if diff := cmp.Diff([]providers.RolloutState{providers.RolloutCompleted, providers.RolloutCompleted}, states); diff != "" {
		t.Errorf("rollout states (-want +got):\n%s", diff)
	}
	if len(tokens) != 2 || tokens[0] != tokens[1] || tokens[0] != ids[0] || ids[0] != ids[1] {
		t.Errorf("ClientRequestTokens %q and rollout IDs %q, want one token, the rollout's ID, on every retry", tokens, ids)
	}
}

func TestDriftReportsChangedResources(t *testing.T) {
	polls := 0
	cfn := &stubCFN{
		detect: func(in *cloudformation.DetectStackDriftInput) (*cloudformation.DetectStackDriftOutput, error) {
			if aws.ToString(in.StackName) != "prod-shop" {
				return nil, validationError("Stack with id " + aws.ToString(in.StackName) + " does not exist")
			}
			return &cloudformation.DetectStackDriftOutput{StackDriftDetectionId: aws.String("d1")}, nil
		},
		detectStatus: func(*cloudformation.DescribeStackDriftDetectionStatusInput) (*cloudformation.DescribeStackDriftDetectionStatusOutput, error) {
			polls++
			status := cfntypes.StackDriftDetectionStatusDetectionInProgress
			if polls > 1 {
				status = cfntypes.StackDriftDetectionStatusDetectionComplete
			}
			return &cloudformation.DescribeStackDriftDetectionStatusOutput{DetectionStatus: status}, nil
		},
		drifts: func(in *cloudformation.DescribeStackResourceDriftsInput) (*cloudformation.DescribeStackResourceDriftsOutput, error) {
			if in.NextToken == nil {
				return &cloudformation.DescribeStackResourceDriftsOutput{NextToken: aws.String("p2"), StackResourceDrifts: []cfntypes.StackResourceDrift{{
					LogicalResourceId: aws.String("ServiceOfweb"), ResourceType: aws.String("AWS::ECS::Service"), StackResourceDriftStatus: cfntypes.StackResourceDriftStatusModified,
					PropertyDifferences: []cfntypes.PropertyDifference{
						{PropertyPath: aws.String("/DesiredCount"), DifferenceType: cfntypes.DifferenceTypeNotEqual, ExpectedValue: aws.String("2"), ActualValue: aws.String("5")},
						{PropertyPath: aws.String("/TaskDefinition"), DifferenceType: cfntypes.DifferenceTypeNotEqual, ActualValue: aws.String("API_KEY=secret")},
					},
				}}}, nil
			}
			return &cloudformation.DescribeStackResourceDriftsOutput{StackResourceDrifts: []cfntypes.StackResourceDrift{{
				LogicalResourceId: aws.String("LogGroup"), ResourceType: aws.String("AWS::Logs::LogGroup"), StackResourceDriftStatus: cfntypes.StackResourceDriftStatusDeleted,
			}}}, nil
		},
	}
	s := newStub(cfn)
	got, err := s.Drift(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	want := []cfnstack.Drift{
		{Resource: "LogGroup", Type: "AWS::Logs::LogGroup", Status: "DELETED"},
		{Resource: "ServiceOfweb", Type: "AWS::ECS::Service", Status: "MODIFIED", Properties: []string{"/DesiredCount NOT_EQUAL", "/TaskDefinition NOT_EQUAL"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Drift (-want +got):\n%s", diff)
	}
	if polls != 2 {
		t.Errorf("detection status polled %d times, want until complete (2)", polls)
	}
	if _, err := newStub(cfn).Drift(t.Context(), "gone"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Drift of a missing stack = %v, want ErrNotFound", err)
	}
	cfn.detectStatus = func(*cloudformation.DescribeStackDriftDetectionStatusInput) (*cloudformation.DescribeStackDriftDetectionStatusOutput, error) {
		return &cloudformation.DescribeStackDriftDetectionStatusOutput{DetectionStatus: cfntypes.StackDriftDetectionStatusDetectionFailed, DetectionStatusReason: aws.String("Failed to detect drift on resource ServiceOfweb")}, nil
	}
	if _, err := s.Drift(t.Context(), "shop"); !errors.Is(err, providers.ErrUnavailable) || !strings.Contains(err.Error(), "ServiceOfweb") {
		t.Errorf("Drift when detection fails = %v, want ErrUnavailable with CloudFormation's reason", err)
	}
}

func TestARouteChangeMeetingAnotherOperationIsTemporary(t *testing.T) {
	existing := func(*cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error) {
		return &cloudformation.DescribeStacksOutput{Stacks: []cfntypes.Stack{{StackId: aws.String("id"), StackStatus: cfntypes.StackStatusUpdateComplete}}}, nil
	}
	for _, tc := range []struct {
		name string
		cfn  *stubCFN
	}{
		{"an update in flight", &stubCFN{
			describeStacks: existing,
			getTemplate: func(*cloudformation.GetTemplateInput) (*cloudformation.GetTemplateOutput, error) {
				return &cloudformation.GetTemplateOutput{TemplateBody: aws.String(`{"AWSTemplateFormatVersion":"2010-09-09","Metadata":{"Convox":{"App":"shop","Routes":{"web":{"Port":80,"Protocol":"http","Host":"old.example.com","Health":{},"DeregistrationDelay":0,"Priority":7}}}},"Resources":{}}`)}, nil
			},
			updateStack: func(*cloudformation.UpdateStackInput) (*cloudformation.UpdateStackOutput, error) {
				return nil, validationError("Stack:arn:stack/prod-shop is in UPDATE_IN_PROGRESS state and can not be updated.")
			},
		}},
		{"the stack created meanwhile", &stubCFN{
			describeStacks: func(*cloudformation.DescribeStacksInput) (*cloudformation.DescribeStacksOutput, error) {
				return nil, validationError("Stack with id prod-shop does not exist")
			},
			createStack: func(*cloudformation.CreateStackInput) (*cloudformation.CreateStackOutput, error) {
				return nil, &smithy.GenericAPIError{Code: "AlreadyExistsException", Message: "Stack [prod-shop] already exists"}
			},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := cfnstack.New(tc.cfn, stubECS{}, stubELB{}, &cfnstack.Options{Cluster: "prod", Region: "us-east-1", Subnets: []string{"subnet-1"}, HTTPListener: "arn:listener", VPC: "vpc-1", PollInterval: 1})
			_, err := s.EnsureRoute(t.Context(), providers.RouteSpec{App: "shop", Process: "web", Port: 8080, Host: "new.example.com"})
			if !providers.IsTemporary(err) {
				t.Errorf("EnsureRoute = %v, want a temporary error", err)
			}
		})
	}
}

// stubELB lists no rules on the listener.
type stubELB struct{ cfnstack.ELBAPI }

func (stubELB) DescribeRules(context.Context, *elbv2.DescribeRulesInput, ...func(*elbv2.Options)) (*elbv2.DescribeRulesOutput, error) {
	return &elbv2.DescribeRulesOutput{}, nil
}

// TestPermissionsAreTheDocumentedOnes keeps Permissions and
// ExecutionRoleActions equal to the lists under Permissions and Task
// execution role in the package documentation.
func TestPermissionsAreTheDocumentedOnes(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	// section returns the first words of the documented list under
	// heading, with the notes in parentheses after them.
	section := func(heading string) (actions, notes []string) {
		_, list, ok := strings.Cut(string(b), "// # "+heading+"\n")
		if !ok {
			t.Fatalf("doc.go has no %s section", heading)
		}
		list, _, _ = strings.Cut(list, "\n// # ")
		for _, line := range strings.Split(list, "\n") {
			if rest, ok := strings.CutPrefix(line, "//\t"); ok {
				actions = append(actions, strings.Fields(rest)[0])
				notes = append(notes, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), strings.Fields(rest)[0])))
			}
		}
		return actions, notes
	}
	perms, _ := section("Permissions")
	exec, execNotes := section("Task execution role")
	// The execution role's actions noted "(Options.ExternalLogGroup...)"
	// are those of an external log group only.
	var always []string
	for i, a := range exec {
		if !strings.HasPrefix(execNotes[i], "(Options.ExternalLogGroup") {
			always = append(always, a)
		}
	}
	for _, tc := range []struct {
		name             string
		documented, list []string
	}{
		{"Permissions", perms, cfnstack.Permissions()},
		{"ExecutionRoleActions with an external log group", exec, cfnstack.ExecutionRoleActions(true)},
		{"ExecutionRoleActions with the stacks' log groups", always, cfnstack.ExecutionRoleActions(false)},
	} {
		if diff := cmp.Diff(tc.documented, tc.list); diff != "" {
			t.Errorf("%s against the documented list (-documented +returned):\n%s", tc.name, diff)
		}
	}
}

func TestEnsureRouteRefusesBadInputBeforeAnyCall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*providers.RouteSpec)
	}{
		{"a health check interval under the 5s a target group takes", func(r *providers.RouteSpec) {
			r.Health = providers.HealthCheck{Interval: 4 * time.Second, Timeout: 2 * time.Second}
		}},
		{"a health check timeout not shorter than its interval", func(r *providers.RouteSpec) {
			r.Health = providers.HealthCheck{Interval: 5 * time.Second, Timeout: 5 * time.Second}
		}},
		{"a healthy threshold under 2", func(r *providers.RouteSpec) { r.Health.Healthy = 1 }},
		{"a health check path without a leading slash", func(r *providers.RouteSpec) { r.Health.Path = "health" }},
		{"a negative deregistration delay", func(r *providers.RouteSpec) { r.DeregistrationDelay = -time.Second }},
		{"a deregistration delay over an hour", func(r *providers.RouteSpec) { r.DeregistrationDelay = time.Hour + time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := providers.RouteSpec{App: "shop", Process: "web", Port: 8080, Protocol: providers.HTTP}
			tc.change(&spec)
			// Any call of the stub panics.
			s := cfnstack.New(&stubCFN{}, stubECS{}, nil, &cfnstack.Options{Cluster: "prod", Region: "us-east-1", Subnets: []string{"subnet-1"},
				HTTPListener: "arn:listener", VPC: "vpc-1", Domain: "apps.example.com", PollInterval: 1})
			if _, err := s.EnsureRoute(t.Context(), spec); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("EnsureRoute = %v, want ErrInvalid", err)
			}
		})
	}
}
