package cfnstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox"
	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cfnstack"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/fake"
)

// logGroupExistsRollsBack stands in front of moto's CloudFormation for
// the creation of a stack declaring a log group that exists. moto refuses
// the CreateStack call itself (HTTP 400, ResourceAlreadyExistsException
// "The specified log group already exists") and leaves the stack in
// CREATE_IN_PROGRESS for good. AWS creates the stack, fails its LogGroup
// resource ("Resource of type 'AWS::Logs::LogGroup' with identifier
// '<group>' already exists.", HandlerErrorCode AlreadyExists) and rolls
// the creation back: the stack stays in ROLLBACK_COMPLETE until it is
// deleted. This transport plays AWS's answer: CreateStack succeeds, and
// until DeleteStack DescribeStacks says ROLLBACK_COMPLETE and
// DescribeStackEvents lists the events that led there. Nothing else
// changes.
type logGroupExistsRollsBack struct {
	next http.RoundTripper

	mu      sync.Mutex
	refused map[string]refusal // by stack name
}

// refusal is one creation moto refused.
type refusal struct {
	crt, group string
	at         time.Time
}

func (l *logGroupExistsRollsBack) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	name := form.Get("StackName")
	if _, rest, ok := strings.Cut(name, ":stack/"); ok {
		name, _, _ = strings.Cut(rest, "/")
	}
	l.mu.Lock()
	ref, refused := l.refused[name]
	l.mu.Unlock()
	switch form.Get("Action") {
	case "CreateStack":
		resp, err := l.next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			return resp, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if !bytes.Contains(b, []byte("ResourceAlreadyExistsException")) {
			resp.Body = io.NopCloser(bytes.NewReader(b))
			return resp, nil
		}
		var t struct {
			Resources map[string]struct {
				Type       string
				Properties struct{ LogGroupName string }
			}
		}
		json.Unmarshal([]byte(form.Get("TemplateBody")), &t)
		l.mu.Lock()
		if l.refused == nil {
			l.refused = map[string]refusal{}
		}
		l.refused[name] = refusal{crt: form.Get("ClientRequestToken"), group: t.Resources["LogGroup"].Properties.LogGroupName, at: time.Now().UTC().Truncate(time.Millisecond)}
		l.mu.Unlock()
		return reply(req, `<CreateStackResponse><CreateStackResult><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/`+name+`/refused</StackId></CreateStackResult></CreateStackResponse>`), nil
	case "DeleteStack":
		l.mu.Lock()
		delete(l.refused, name)
		l.mu.Unlock()
	case "DescribeStacks":
		if !refused {
			break
		}
		resp, err := l.next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			return resp, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		b = statusElem.ReplaceAll(b, []byte("<StackStatus>ROLLBACK_COMPLETE</StackStatus><StackStatusReason>The following resource(s) failed to create: [LogGroup]. Rollback requested by user.</StackStatusReason>"))
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return resp, nil
	case "DescribeStackEvents":
		if refused {
			return reply(req, ref.eventsXML(name)), nil
		}
	}
	return l.next.RoundTrip(req)
}

// eventsXML renders the events of the refused creation, newest first, as
// AWS's DescribeStackEvents answer.
func (r refusal) eventsXML(stack string) string {
	type member struct {
		StackId, EventId, StackName, LogicalResourceId, ResourceType, Timestamp, ResourceStatus string
		ResourceStatusReason                                                                    string `xml:",omitempty"`
		ClientRequestToken                                                                      string `xml:",omitempty"`
	}
	var out struct {
		XMLName xml.Name `xml:"DescribeStackEventsResponse"`
		Members []member `xml:"DescribeStackEventsResult>StackEvents>member"`
	}
	for i, e := range []event{
		{"", "CREATE_IN_PROGRESS", "User Initiated"},
		{"LogGroup", "CREATE_IN_PROGRESS", ""},
		{"LogGroup", "CREATE_FAILED", `Resource handler returned message: "Resource of type 'AWS::Logs::LogGroup' with identifier '` + r.group + `' already exists." (HandlerErrorCode: AlreadyExists)`},
		{"", "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [LogGroup]. Rollback requested by user."},
		{"LogGroup", "DELETE_COMPLETE", ""},
		{"", "ROLLBACK_COMPLETE", ""},
	} {
		m := member{StackId: stack, EventId: fmt.Sprint(i), StackName: stack, LogicalResourceId: e.resource, ResourceType: "AWS::Logs::LogGroup",
			Timestamp: r.at.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z"), ResourceStatus: e.status, ResourceStatusReason: e.reason, ClientRequestToken: r.crt}
		if e.resource == "" {
			m.LogicalResourceId, m.ResourceType = stack, "AWS::CloudFormation::Stack"
		}
		out.Members = append(out.Members, m)
	}
	slices.Reverse(out.Members)
	b, _ := xml.Marshal(out)
	return string(b)
}

// logGroupExists reports whether the log group exists on moto.
func (r *rack) logGroupExists(t *testing.T, group string) bool {
	t.Helper()
	out, err := r.logs.DescribeLogGroups(t.Context(), &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(group)})
	if err != nil {
		t.Fatalf("DescribeLogGroups: %v", err)
	}
	return slices.ContainsFunc(out.LogGroups, func(g cwtypes.LogGroup) bool { return aws.ToString(g.LogGroupName) == group })
}

// stackResourceTypes returns the types of the app's stack's resources,
// by logical ID.
func (r *rack) stackResourceTypes(t *testing.T, app string) map[string]string {
	t.Helper()
	out, err := r.cfn.DescribeStackResources(t.Context(), &cloudformation.DescribeStackResourcesInput{StackName: aws.String(r.stack.StackName(app))})
	if err != nil {
		t.Fatalf("DescribeStackResources: %v", err)
	}
	types := map[string]string{}
	for _, res := range out.StackResources {
		id := aws.ToString(res.LogicalResourceId)
		if strings.HasPrefix(id, "TaskOf") {
			id = "TaskOf…"
		}
		types[id] = aws.ToString(res.ResourceType)
	}
	return types
}

// logOptions returns the awslogs options of the task definition a
// service or task runs.
func (r *rack) logOptions(t *testing.T, taskDefinition string) map[string]string {
	t.Helper()
	td, err := r.ecs.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(taskDefinition)})
	if err != nil {
		t.Fatalf("DescribeTaskDefinition %s: %v", taskDefinition, err)
	}
	return td.TaskDefinition.ContainerDefinitions[0].LogConfiguration.Options
}

// TestCWLogsBeforeTheFirstDeployOnMoto runs the root client on a rack of
// the stack mode and cwlogs, on moto, where the root writes a first
// deploy's platform lines ("promoting R1") through cwlogs before the
// deploy creates the app's stack, and cwlogs creates the app's log group
// for them. A stack declaring that group fails to create, as on AWS
// ("ResourceAlreadyExistsException"); with Options.ExternalLogGroup the
// stack leaves the group to cwlogs, the first deploy succeeds, its lines
// are kept, the containers log to the group by name (creating it when
// missing), a one-off of an app without a stack makes no stack, and
// deleting the app leaves no log group.
func TestCWLogsBeforeTheFirstDeployOnMoto(t *testing.T) {
	for _, tc := range []struct {
		name     string
		external bool
	}{
		{"a stack declaring the log group cwlogs made fails to create", false},
		{"a stack leaving the log group to cwlogs deploys and keeps the first lines", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			motoTasks := func(c *aws.Config) { c.APIOptions = append(c.APIOptions, awstest.MotoRunsFargateTasks) }
			var logs *cwlogs.Logs
			r := newRackOf(t,
				func(c *aws.Config) {
					c.HTTPClient = &http.Client{Transport: &logGroupExistsRollsBack{next: http.DefaultTransport}}
					motoTasks(c)
				},
				func(c *aws.Config) {
					c.HTTPClient = &http.Client{Transport: ecsStartsTasks{http.DefaultTransport}}
					motoTasks(c)
				},
				func(o *cfnstack.Options) {
					logs = cwlogs.New(cloudwatchlogs.NewFromConfig(awstest.EmulatorOf(t, awstest.Moto).Config()), nil)
					o.LogGroup, o.ExternalLogGroup = logs.Group, tc.external
				})
			app := "logs" + strings.TrimPrefix(r.cluster, "cluster")
			group := logs.Group(app)
			others := fake.New(nil)
			others.Push(app, "v1", &fake.ImageConfig{Entrypoint: []string{"/app/worker"}})
			c, err := convox.New(convox.Rack{Registry: others.Registry(), Scheduler: r.stack, Balancer: r.stack, Logs: logs, Store: others.Store()},
				&convox.Options{PollInterval: 10 * time.Millisecond, MaxPollInterval: 100 * time.Millisecond, Timeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			t.Cleanup(func() {
				cctx := context.WithoutCancel(ctx)
				r.stack.Delete(cctx, app)
				logs.Delete(cctx, app)
			})
			if _, err := c.CreateApp(ctx, app, nil); err != nil {
				t.Fatal(err)
			}
			_, err = c.App(app).Deploy(ctx, convox.ReleaseSpec{Image: app + ":v1", Processes: []convox.Process{{Name: "worker", Count: 1}}}, nil)
			if !tc.external {
				var de *convox.DeployError
				if !errors.As(err, &de) || !strings.Contains(de.Reason, "LogGroup: Resource handler returned message: \"Resource of type 'AWS::Logs::LogGroup' with identifier '"+group+"' already exists.\"") {
					t.Fatalf("first deploy = %v, want a DeployError whose reason is the LogGroup's creation failure", err)
				}
				// The root's compensation deleted the failed stack.
				if _, err := r.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(r.stack.StackName(app))}); err == nil {
					t.Errorf("the stack whose creation failed is still there after the deploy")
				}
				return
			}
			if err != nil {
				t.Fatalf("first deploy: %v", err)
			}

			t.Run("the first deploy's platform lines are kept", func(t *testing.T) {
				page, err := logs.Read(ctx, providers.LogQuery{App: app}, "")
				if err != nil {
					t.Fatal(err)
				}
				var lines []string
				for _, e := range page.Entries {
					lines = append(lines, e.Message)
				}
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "promoting R1") }) {
					t.Errorf("the app's logs hold no \"promoting R1\" line: %q", lines)
				}
			})
			t.Run("the stack does not declare the log group", func(t *testing.T) {
				want := map[string]string{"ServiceOfworker": "AWS::ECS::Service", "TaskOf…": "AWS::ECS::TaskDefinition"}
				if diff := cmp.Diff(want, r.stackResourceTypes(t, app)); diff != "" {
					t.Errorf("the stack's resources (-want +got):\n%s", diff)
				}
			})
			t.Run("the containers log to the group by name, creating it when missing", func(t *testing.T) {
				svc, err := r.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(r.cluster), Services: []string{app + "-worker"}})
				if err != nil || len(svc.Services) != 1 {
					t.Fatalf("DescribeServices: %v %v", svc, err)
				}
				want := map[string]string{"awslogs-group": group, "awslogs-create-group": "true", "awslogs-region": awstest.Region, "awslogs-stream-prefix": "worker"}
				if diff := cmp.Diff(want, r.logOptions(t, aws.ToString(svc.Services[0].TaskDefinition))); diff != "" {
					t.Errorf("the service's awslogs options (-want +got):\n%s", diff)
				}
			})
			t.Run("a one-off of an app without a stack makes no stack", func(t *testing.T) {
				fresh := app + "x"
				t.Cleanup(func() { r.stack.Delete(context.WithoutCancel(ctx), fresh) })
				r.calls.Reset()
				tk, err := r.stack.RunTask(ctx, providers.RunSpec{App: fresh, Release: "R1", Token: "run1", Image: imageV1, Process: providers.Process{Name: "worker", Count: 1}})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(map[string]int{"RegisterTaskDefinition": 1, "RunTask": 1}, r.allWrites()); diff != "" {
					t.Errorf("mutating CloudFormation and ECS calls (-want +got):\n%s", diff)
				}
				want := map[string]string{"awslogs-group": logs.Group(fresh), "awslogs-create-group": "true", "awslogs-region": awstest.Region, "awslogs-stream-prefix": "worker"}
				if diff := cmp.Diff(want, r.logOptions(t, aws.ToString(r.describeTask(t, tk.ID).TaskDefinitionArn))); diff != "" {
					t.Errorf("the one-off's awslogs options (-want +got):\n%s", diff)
				}
			})
			t.Run("deleting the app leaves no log group", func(t *testing.T) {
				if !r.logGroupExists(t, group) {
					t.Fatalf("log group %s is missing before the delete", group)
				}
				if err := c.DeleteApp(ctx, app); err != nil {
					t.Fatal(err)
				}
				if _, err := r.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(r.stack.StackName(app))}); err == nil {
					t.Errorf("the stack %s is still there after DeleteApp", r.stack.StackName(app))
				}
				if r.logGroupExists(t, group) {
					t.Errorf("log group %s is still there after DeleteApp", group)
				}
			})
		})
	}
}
