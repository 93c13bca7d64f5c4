package awsiam_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/awsiam"
	"github.com/convox-go/convox/providers/cfnstack"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/elbbalancer"
	"github.com/convox-go/convox/providers/fake"
	"github.com/convox-go/convox/providers/kinesislogs"
	"github.com/convox-go/convox/providers/providertest"
)

// enforced is one provider's suite run on moto with IAM enforced, as a
// user holding exactly awsiam.Policy(permissions).
type enforced struct {
	name        string
	permissions []string // the provider's Permissions()
	// run runs the provider's suite with the user's configuration; admin
	// may call every action, for set-up the provider leaves to others.
	run func(t *testing.T, user, admin aws.Config)
	// denied is an action outside the policy that the user calls once, to
	// show that enforcement is on: it must be refused.
	denied func(ctx context.Context, user aws.Config) error
	// unused are the actions of the policy that the suite does not call,
	// each with the reason it stays in the policy.
	unused map[string]string
}

func TestEveryProviderSuitePassesWithExactlyItsPolicyUnderIAMEnforcement(t *testing.T) {
	admin := awstest.MotoIAM(t)
	for _, tc := range []enforced{
		{
			name: "dynamostore", permissions: dynamostore.Permissions(),
			run: func(t *testing.T, user, admin aws.Config) {
				table := awstest.Name(t, "iamtable")
				// Creating the table is set-up for an administrator
				// (examples/aws -setup), not the store's to do.
				if err := dynamostore.EnsureTable(t.Context(), dynamodb.NewFromConfig(admin), table); err != nil {
					t.Fatalf("EnsureTable as the administrator: %v", err)
				}
				s := awstest.AtomicWrites(dynamostore.New(dynamodb.NewFromConfig(user), table, &dynamostore.Options{Namespace: awstest.Name(t, "ns")}))
				providertest.TestStore(t, func(*testing.T) providers.Store { return s })
			},
			denied: func(ctx context.Context, user aws.Config) error {
				_, err := dynamodb.NewFromConfig(user).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("any")})
				return err
			},
		},
		{
			name: "cwlogs", permissions: cwlogs.Permissions(),
			run: func(t *testing.T, user, _ aws.Config) {
				l := cwlogs.New(cloudwatchlogs.NewFromConfig(user), &cwlogs.Options{TailLookback: 2 * time.Hour, TailPollInterval: 100 * time.Millisecond, IAM: iam.NewFromConfig(user)})
				providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return l }, Timeout: 30 * time.Second})
				t.Run("subscriptions", func(t *testing.T) {
					// The destination stream is the administrator's to make.
					stream := awstest.Name(t, "iamsub")
					kc := kinesis.NewFromConfig(admin)
					if err := kinesislogs.EnsureStream(t.Context(), kc, stream, &kinesislogs.StreamOptions{Shards: 1}); err != nil {
						t.Fatalf("EnsureStream as the administrator: %v", err)
					}
					sum, err := kc.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
					if err != nil {
						t.Fatal(err)
					}
					dest := aws.ToString(sum.StreamDescriptionSummary.StreamARN)
					// Two apps: the first creates the destination's role, the second finds it.
					for _, app := range []string{awstest.Name(t, "iamsub"), awstest.Name(t, "iamsub")} {
						if _, err := l.Subscribe(t.Context(), app, providers.Subscription{Name: "all", Destination: dest}); err != nil {
							t.Fatalf("Subscribe: %v", err)
						}
						if got, err := l.Subscriptions(t.Context(), app); err != nil || len(got) != 1 {
							t.Fatalf("Subscriptions = %v, %v; want the one subscription", got, err)
						}
						if err := l.Unsubscribe(t.Context(), app, "all"); err != nil {
							t.Fatalf("Unsubscribe: %v", err)
						}
						if err := l.Delete(t.Context(), app); err != nil {
							t.Fatalf("Delete: %v", err)
						}
					}
				})
			},
			denied: func(ctx context.Context, user aws.Config) error {
				_, err := cloudwatchlogs.NewFromConfig(user).DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("any")})
				return err
			},
			unused: map[string]string{
				"iam:PassRole": "authorization only: PutSubscriptionFilter passes the destination's role to CloudWatch Logs; moto does not check it",
			},
		},
		{
			name: "kinesislogs", permissions: kinesislogs.Permissions(),
			run: func(t *testing.T, user, _ aws.Config) {
				user.APIOptions = append(user.APIOptions, awstest.OneAtATime("PutRecords"))
				client := kinesis.NewFromConfig(user)
				stream := awstest.Name(t, "iamlogs")
				if err := kinesislogs.EnsureStream(t.Context(), client, stream, &kinesislogs.StreamOptions{Shards: 2}); err != nil {
					t.Fatalf("EnsureStream: %v", err)
				}
				l := kinesislogs.New(client, stream, nil)
				providertest.TestLogs(t, providertest.LogsHarness{New: func(*testing.T) providers.Logs { return l }, Timeout: 30 * time.Second})
			},
			denied: func(ctx context.Context, user aws.Config) error {
				_, err := kinesis.NewFromConfig(user).ListStreams(ctx, &kinesis.ListStreamsInput{})
				return err
			},
		},
		{
			name: "albbalancer", permissions: albbalancer.Permissions(),
			run: func(t *testing.T, user, admin aws.Config) {
				subnets, sg := awstest.Subnets(t, admin) // the network is the account's, not the balancer's
				b := albbalancer.New(elbv2.NewFromConfig(user), &albbalancer.Options{
					LoadBalancer: awstest.Name(t, "alb"), Subnets: subnets, SecurityGroups: []string{sg}, Domain: "apps.example.com",
				})
				providertest.TestBalancer(t, providertest.BalancerHarness{New: func(*testing.T) providers.Balancer { return b }})
			},
			denied: func(ctx context.Context, user aws.Config) error {
				_, err := elbv2.NewFromConfig(user).DeleteLoadBalancer(ctx, &elbv2.DeleteLoadBalancerInput{LoadBalancerArn: aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/any/0")})
				return err
			},
			unused: map[string]string{
				"elasticloadbalancing:AddListenerCertificates":        "HTTPS routes with a certificate of their own; the suite routes HTTP (TestCertificatesOfHTTPSRoutes calls it)",
				"elasticloadbalancing:AddTags":                        "authorization only when creating tagged resources (CreateLoadBalancer, CreateTargetGroup with Tags), and re-tagging a target group whose port changed",
				"elasticloadbalancing:DescribeLoadBalancerAttributes": "HTTP2 routes only; the suite has none",
				"elasticloadbalancing:ModifyLoadBalancerAttributes":   "HTTP2 routes only; the suite has none",
				"elasticloadbalancing:SetRulePriorities":              "moving rules when a route must take a priority between existing ones; the suite's routes never need it",
			},
		},
		{
			name: "elbbalancer", permissions: elbbalancer.Permissions(),
			run: func(t *testing.T, user, admin aws.Config) {
				subnets, sg := awstest.Subnets(t, admin)
				b := elbbalancer.New(elb.NewFromConfig(user), &elbbalancer.Options{Subnets: subnets, SecurityGroups: []string{sg}})
				providertest.TestBalancer(t, providertest.BalancerHarness{New: func(*testing.T) providers.Balancer { return b }})
			},
			denied: func(ctx context.Context, user aws.Config) error {
				_, err := elb.NewFromConfig(user).DescribeLoadBalancerPolicies(ctx, &elb.DescribeLoadBalancerPoliciesInput{})
				return err
			},
			unused: map[string]string{
				"elasticloadbalancing:AddTags":                     "authorization only when creating a tagged load balancer (CreateLoadBalancer with Tags)",
				"elasticloadbalancing:CreateLoadBalancerListeners": "a route whose listener changes; the suite never changes one (TestEnsureRouteChangesOnlyWhatDiffers calls it)",
				"elasticloadbalancing:DeleteLoadBalancerListeners": "a route whose listener changes; the suite never changes one (TestEnsureRouteChangesOnlyWhatDiffers calls it)",
			},
		},
		{
			name: "ecrregistry", permissions: ecrregistry.Permissions(),
			run: func(t *testing.T, user, admin aws.Config) {
				// Pushing images is for another principal (a CI job's):
				// the administrator pushes.
				images := awstest.NewECRImages(t, ecr.NewFromConfig(admin), awstest.Moto)
				user.APIOptions = append(user.APIOptions, awstest.TokensValidFor12Hours)
				reg := ecrregistry.New(ecr.NewFromConfig(user), &ecrregistry.Options{Transport: images.Transport()})
				providertest.TestRegistry(t, providertest.RegistryHarness{
					New: func(*testing.T) providers.Registry { return reg },
					Push: func(t *testing.T, _ providers.Registry, repo, tag string) string {
						img, err := random.Image(64, 1)
						if err != nil {
							t.Fatal(err)
						}
						return images.Push(t, repo, tag, img)
					},
				})
			},
			denied: func(ctx context.Context, user aws.Config) error {
				_, err := ecr.NewFromConfig(user).PutImage(ctx, &ecr.PutImageInput{RepositoryName: aws.String("any"), ImageManifest: aws.String("{}")})
				return err
			},
			unused: map[string]string{
				"ecr:GetDownloadUrlForLayer": "authorization only: ECR checks it for blob downloads over the registry data path, which moto does not serve (the suite's data path is an in-process registry)",
			},
		},
		{
			// moto runs no ECS task, so the scheduler suite cannot pass
			// there; a deploy through the root client exercises Apply,
			// Status and the compensation, and must end at its time limit
			// (long enough for the apply to finish on a loaded machine, so
			// that the actions called do not depend on the load).
			name: "ecsscheduler", permissions: ecsscheduler.Permissions(),
			run: func(t *testing.T, user, admin aws.Config) {
				subnets, sg := awstest.Subnets(t, admin)
				app := awstest.Name(t, "shop")
				sch := ecsscheduler.New(ecs.NewFromConfig(user), &ecsscheduler.Options{
					Cluster: app, Subnets: subnets, SecurityGroups: []string{sg},
					ExecutionRoleARN: "arn:aws:iam::123456789012:role/exec",
					SSM:              ssm.NewFromConfig(user),
				})
				others := fake.New(nil)
				others.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/worker"}})
				c, err := convox.New(convox.Rack{Registry: others.Registry(), Scheduler: sch, Balancer: others.Balancer(), Logs: others.Logs(), Store: others.Store()},
					&convox.Options{PollInterval: 20 * time.Millisecond, MaxPollInterval: 200 * time.Millisecond, Timeout: 10 * time.Second, CompensateTimeout: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.CreateApp(t.Context(), app, nil); err != nil {
					t.Fatal(err)
				}
				_, err = c.App(app).Deploy(t.Context(), convox.ReleaseSpec{Image: app + ":v1", Secrets: map[string]convox.Secret{"API_KEY": "v1"}, Processes: []convox.Process{{Name: "worker", Count: 1}}}, nil)
				var de *convox.DeployError
				if !errors.As(err, &de) || !de.Changed {
					t.Fatalf("deploy on an ECS that runs no task = %v, want a *DeployError at its time limit", err)
				}
				if err := sch.Delete(t.Context(), app); err != nil {
					t.Errorf("Delete: %v", err)
				}
			},
			denied: func(ctx context.Context, user aws.Config) error {
				_, err := ecs.NewFromConfig(user).ListClusters(ctx, &ecs.ListClustersInput{})
				return err
			},
			unused: map[string]string{
				"ecs:DescribeTasks": "describing tasks (stopped ones of a failed deploy, one-off tasks); moto runs none (the ecstest suites call it)",
				"ecs:RunTask":       "one-off tasks (TaskRunner); moto fails RunTask with task-level Fargate memory, valid on AWS (the ecstest suites call it)",
				"ecs:StopTask":      "stopping one-off tasks (TaskRunner), as RunTask",
				"ecs:TagResource":   "authorization only: ECS requires it to create a service or task definition with tags",
				"ecs:UpdateService": "a second release of a service; this deploy has one release (the ecstest suites call it)",
				"iam:PassRole":      "authorization only: registering a task definition passes the execution role; moto does not check it",
			},
		},
		{
			// The stack mode's suite cannot run whole on moto (see
			// cfnstack's TestBalancerConformance and
			// TestSchedulerConformance); a route, two releases, a status,
			// target health, one-off tasks (of the deployed release, from
			// the stack's task definition, and of another, registered
			// outside it), a route removal and a delete call every action
			// moto's CloudFormation and ECS check. moto's departures in
			// one-off tasks are adapted (awstest.MotoRunsFargateTasks).
			name: "cfnstack", permissions: cfnstack.Permissions(),
			run: func(t *testing.T, user, admin aws.Config) {
				ctx := t.Context()
				subnets, sg := awstest.Subnets(t, admin)
				vpc, listener := cfnNetwork(t, admin, subnets, sg)
				app := awstest.Name(t, "stack")
				user.APIOptions = append(slices.Clone(user.APIOptions), awstest.MotoRunsFargateTasks)
				st := cfnstack.New(cloudformation.NewFromConfig(user), ecs.NewFromConfig(user), elbv2.NewFromConfig(user), &cfnstack.Options{
					Cluster: app, Region: awstest.Region, Subnets: subnets, SecurityGroups: []string{sg}, VPC: vpc,
					HTTPListener: listener, Domain: "apps.example.com", ExecutionRoleARN: "arn:aws:iam::123456789012:role/exec",
					PollInterval: 10 * time.Millisecond,
				})
				img := providers.Image{Repository: "123456789012.dkr.ecr.us-east-1.amazonaws.com/web", Digest: "sha256:" + strings.Repeat("a", 64)}
				rt, err := st.EnsureRoute(ctx, providers.RouteSpec{App: app, Process: "web", Port: 8080, Protocol: providers.HTTP})
				if err != nil {
					t.Fatalf("EnsureRoute: %v", err)
				}
				for i, count := range []int{1, 2} {
					d := providers.Desired{App: app, Release: fmt.Sprintf("R%d", i+1), Token: fmt.Sprintf("t%d", i+1), Image: img,
						Processes: []providers.Process{{Name: "web", Count: count, Port: 8080}, {Name: "worker", Count: 1}},
						Bindings:  map[string][]providers.Binding{"web": {rt.Binding}}}
					if _, err := st.Apply(ctx, d); err != nil {
						t.Fatalf("Apply %s: %v", d.Release, err)
					}
				}
				if _, err := st.Status(ctx, app); err != nil {
					t.Errorf("Status: %v", err)
				}
				if _, err := st.Changes(ctx, providers.Desired{App: app, Release: "R3", Token: "t3", Image: img,
					Processes: []providers.Process{{Name: "worker", Count: 1}}}); err != nil {
					t.Errorf("Changes: %v", err)
				}
				if _, err := st.Events(ctx, app, time.Time{}); err != nil {
					t.Errorf("Events: %v", err)
				}
				if _, err := st.Health(ctx, rt.ID); err != nil {
					t.Errorf("Health: %v", err)
				}
				web := providers.Process{Name: "web", Count: 2, Port: 8080}
				for _, rs := range []providers.RunSpec{
					{App: app, Release: "R2", Token: "run1", Image: img, Process: web, Command: []string{"migrate"}},
					{App: app, Release: "R9", Token: "run2", Image: img, Env: map[string]string{"ONE": "off"}, Process: web},
				} {
					tk, err := st.RunTask(ctx, rs)
					if err != nil {
						t.Fatalf("RunTask of %s: %v", rs.Release, err)
					}
					if _, err := st.GetTask(ctx, app, tk.ID); err != nil {
						t.Errorf("GetTask: %v", err)
					}
					if rs.Release == "R2" {
						if err := st.StopTask(ctx, app, tk.ID); err != nil {
							t.Errorf("StopTask: %v", err)
						}
					}
				}
				if err := st.DeleteRoute(ctx, rt.ID); err != nil {
					t.Errorf("DeleteRoute: %v", err)
				}
				if err := st.Delete(ctx, app); err != nil {
					t.Errorf("Delete: %v", err)
				}
			},
			denied: func(ctx context.Context, user aws.Config) error {
				_, err := cloudformation.NewFromConfig(user).ListStacks(ctx, &cloudformation.ListStacksInput{})
				return err
			},
			unused: map[string]string{
				"cloudformation:CancelUpdateStack":                 "CancelRollout of an update in flight; moto completes updates at once and has no CancelUpdateStack (TestAWSRollbacksAreReportedTruthfully calls it)",
				"cloudformation:ContinueUpdateRollback":            "a stack in UPDATE_ROLLBACK_FAILED; moto never fails a rollback and has no ContinueUpdateRollback (TestAWSRollbacksAreReportedTruthfully calls it)",
				"cloudformation:DetectStackDrift":                  "Drift; moto has no drift detection (cfnstack's TestDriftReportsChangedResources calls it on a stub)",
				"cloudformation:DescribeStackDriftDetectionStatus": "Drift, as DetectStackDrift",
				"cloudformation:DescribeStackResourceDrifts":       "Drift, as DetectStackDrift",
				"ecs:TagResource":                                  "authorization only: RunTask tags its task, and \"if tags are specified in the resource-creating action, AWS performs additional authorization\" with ecs:TagResource (Amazon ECS Developer Guide, Grant permission to tag resources on creation); moto does not check it",
				"ecs:CreateService":                                cfnAuthorizationOnly,
				"ecs:UpdateService":                                cfnAuthorizationOnly,
				"ecs:DeleteService":                                cfnAuthorizationOnly,
				"elasticloadbalancing:DescribeTargetGroups":        cfnAuthorizationOnly,
				"elasticloadbalancing:CreateTargetGroup":           cfnAuthorizationOnly,
				"elasticloadbalancing:ModifyTargetGroup":           cfnAuthorizationOnly,
				"elasticloadbalancing:ModifyTargetGroupAttributes": cfnAuthorizationOnly,
				"elasticloadbalancing:DeleteTargetGroup":           cfnAuthorizationOnly,
				"elasticloadbalancing:CreateRule":                  cfnAuthorizationOnly,
				"elasticloadbalancing:ModifyRule":                  cfnAuthorizationOnly,
				"elasticloadbalancing:DeleteRule":                  cfnAuthorizationOnly,
				"logs:CreateLogGroup":                              cfnAuthorizationOnly,
				"logs:DeleteLogGroup":                              cfnAuthorizationOnly,
				"logs:PutRetentionPolicy":                          cfnAuthorizationOnly,
				"logs:DescribeLogGroups":                           cfnAuthorizationOnly,
				"iam:PassRole":                                     cfnAuthorizationOnly,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy, err := awsiam.Policy(tc.permissions)
			if err != nil {
				t.Fatal(err)
			}
			user := awstest.NewIAMUser(t, admin, awstest.Name(t, tc.name[:min(len(tc.name), 13)]), policy)
			calls, denials := awstest.NewCounter(), &awstest.Denials{}
			user.APIOptions = append(user.APIOptions, calls.AddTo, denials.AddTo)

			t.Run("an action outside the policy is denied", func(t *testing.T) {
				err := tc.denied(t.Context(), user)
				if err == nil || !strings.Contains(err.Error(), "403") {
					t.Fatalf("call outside the policy: err = %v, want an HTTP 403 denial", err)
				}
			})
			refused := denials.Ops()
			calls.Reset()

			t.Run("suite", func(t *testing.T) { tc.run(t, user, admin) })

			if got := denials.Ops(); len(got) > len(refused) {
				t.Errorf("operations denied to the suite: %v", slices.DeleteFunc(got, func(op string) bool { return slices.Contains(refused, op) }))
			}
			called := calls.Counts()
			unused := map[string]bool{}
			for _, a := range tc.permissions {
				// Actions of another service (cwlogs' iam:CreateRole)
				// count by their operation name too.
				_, op, _ := strings.Cut(a, ":")
				if called[op] == 0 {
					unused[a] = true
				}
			}
			want := map[string]bool{}
			for a := range tc.unused {
				want[a] = true
			}
			if diff := cmp.Diff(want, unused); diff != "" {
				t.Errorf("actions of the policy the suite does not call (-documented +got):\n%s", diff)
			}
		})
	}
}

// TestIAMUsersAreCreatedWithTheirPolicy checks the harness itself: a user
// may call what its policy allows and nothing else.
func TestIAMUsersAreCreatedWithTheirPolicy(t *testing.T) {
	admin := awstest.MotoIAM(t)
	policy, err := awsiam.Policy([]string{"iam:GetUser"})
	if err != nil {
		t.Fatal(err)
	}
	name := awstest.Name(t, "iamcheck")
	user := awstest.NewIAMUser(t, admin, name, policy)
	if _, err := awstest.Query(t.Context(), user, "iam", url.Values{"Action": {"GetUser"}, "UserName": {name}}); err != nil {
		t.Errorf("an allowed action: %v", err)
	}
	_, err = awstest.Query(t.Context(), user, "iam", url.Values{"Action": {"ListUsers"}})
	if err == nil || !strings.Contains(err.Error(), "status 403") {
		t.Errorf("an action outside the policy: err = %v, want status 403", err)
	}
	unsigned := admin.Copy()
	unsigned.Credentials = aws.AnonymousCredentials{}
	if _, err := awstest.Query(t.Context(), unsigned, "iam", url.Values{"Action": {"ListUsers"}}); err == nil {
		t.Error("an unsigned call succeeded: enforcement is off")
	} else if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// cfnAuthorizationOnly is why the stack's resource actions stay in
// cfnstack's policy though the suite calls none of them.
const cfnAuthorizationOnly = "authorization only: CloudFormation acts on the stack's resources with the caller's credentials; moto's CloudFormation provisions them without checking"

// cfnNetwork makes, as the administrator, what the stack mode expects to
// exist: the subnets' VPC (returned) and a load balancer with an HTTP
// listener (its ARN returned).
func cfnNetwork(t *testing.T, admin aws.Config, subnets []string, sg string) (vpc, listener string) {
	t.Helper()
	return awstest.StackNetwork(t, admin, subnets, sg, "cfnalb")
}
