package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/convox-go/convox/internal/awstest"
)

// stackRack is the AWS account the stack mode test runs the CLI against:
// moto for every service, with two stand-ins in front of it (ecsStartsTasks
// and driftDetection) for what moto does not do, which also adapt moto's
// departures in one-off tasks (awstest.MotoFargateRequest and
// MotoFargateResponse), and an in-process registry for the ECR data path,
// which moto does not serve.
type stackRack struct {
	cfg      aws.Config
	ecs      *ecs.Client
	cfn      *cloudformation.Client
	ecr      *ecr.Client
	logs     *cloudwatchlogs.Client
	data     *httptest.Server
	cluster  string
	env      []string
	listener string
}

// newStackRack makes the account's network and shared load balancer,
// which the stack mode expects to exist, and the CLI's environment.
func newStackRack(t *testing.T) *stackRack {
	t.Helper()
	moto := awstest.EmulatorOf(t, awstest.Moto) // skips without moto
	cfg := moto.Config()
	r := &stackRack{cfg: cfg, ecs: ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.APIOptions = append(o.APIOptions, awstest.MotoRunsFargateTasks) }),
		cfn: cloudformation.NewFromConfig(cfg), ecr: ecr.NewFromConfig(cfg), logs: cloudwatchlogs.NewFromConfig(cfg), cluster: awstest.Name(t, "cluster")}

	subnets, sg := awstest.Subnets(t, cfg)
	vpc, listener := awstest.StackNetwork(t, cfg, subnets, sg, "alb")
	r.listener = listener

	r.data = httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(r.data.Close)
	ecsProxy := httptest.NewServer(ecsStartsTasks(t, moto.Endpoint))
	t.Cleanup(ecsProxy.Close)
	cfnProxy := httptest.NewServer(&driftDetection{next: proxyTo(t, moto.Endpoint), cfn: r.cfn, ecs: r.ecs, results: map[string]driftResult{}})
	t.Cleanup(cfnProxy.Close)
	r.env = []string{
		"CONVOX_RACK=aws",
		"AWS_ENDPOINT_URL=" + moto.Endpoint,
		"AWS_ENDPOINT_URL_ECS=" + ecsProxy.URL,
		"AWS_ENDPOINT_URL_CLOUDFORMATION=" + cfnProxy.URL,
		"AWS_REGION=" + awstest.Region,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		"CONVOX_AWS_MODE=stack",
		"CONVOX_AWS_CLUSTER=" + r.cluster,
		"CONVOX_AWS_TABLE=" + r.cluster,
		"CONVOX_AWS_SUBNETS=" + strings.Join(subnets, ","),
		"CONVOX_AWS_SECURITY_GROUPS=" + sg,
		"CONVOX_AWS_VPC=" + vpc,
		"CONVOX_AWS_HTTP_LISTENER=" + r.listener,
		"CONVOX_AWS_EXECUTION_ROLE=arn:aws:iam::123456789012:role/exec",
		"CONVOX_AWS_REGISTRY_ENDPOINT=" + r.data.URL,
	}
	return r
}

// push puts a new image in ECR (PutImage) and in the data path as
// repo:tag and returns its digest.
func (r *stackRack) push(t *testing.T, repo, tag string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/app/server"}}); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(r.data.Listener.Addr().String() + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// imageDigest is "The image digest of the image manifest corresponding
	// to the image" (PutImage); moto computes another digest without it.
	if _, err := r.ecr.PutImage(t.Context(), &ecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(string(manifest)), ImageTag: aws.String(tag), ImageDigest: aws.String(d.String())}); err != nil {
		t.Fatalf("PutImage: %v", err)
	}
	return d.String()
}

// serviceState is what ECS says of one of the app's services.
type serviceState struct {
	Status  string
	Desired int
	Digest  string
	Env     map[string]string
}

// service describes an app's process's service through moto's ECS API.
func (r *stackRack) service(t *testing.T, app, process string) serviceState {
	t.Helper()
	out, err := r.ecs.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(r.cluster), Services: []string{app + "-" + process}})
	if err != nil {
		t.Fatalf("DescribeServices: %v", err)
	}
	if len(out.Services) != 1 {
		return serviceState{}
	}
	s := out.Services[0]
	st := serviceState{Status: aws.ToString(s.Status), Desired: int(s.DesiredCount), Env: map[string]string{}}
	td, err := r.ecs.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: s.TaskDefinition})
	if err != nil {
		t.Fatalf("DescribeTaskDefinition: %v", err)
	}
	for _, c := range td.TaskDefinition.ContainerDefinitions {
		_, st.Digest, _ = strings.Cut(aws.ToString(c.Image), "@")
		for _, kv := range c.Environment {
			st.Env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		}
	}
	return st
}

// serviceTaskDefinition returns the task definition an app's process's
// service runs.
func (r *stackRack) serviceTaskDefinition(t *testing.T, app, process string) *string {
	t.Helper()
	out, err := r.ecs.DescribeServices(t.Context(), &ecs.DescribeServicesInput{Cluster: aws.String(r.cluster), Services: []string{app + "-" + process}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("DescribeServices: %v %v", out, err)
	}
	return out.Services[0].TaskDefinition
}

// proxyTo returns a reverse proxy to the emulator.
func proxyTo(t *testing.T, endpoint string) *httputil.ReverseProxy {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ErrorLog = log.New(io.Discard, "", 0)
	return p
}

// ecsStartsTasks stands in front of moto's ECS for the CLI: ECS starts a
// service's tasks and reports them running (DescribeServices runningCount
// reaches desiredCount once they started), which moto never does since it
// runs no task. It also adapts moto's departures in one-off tasks
// (awstest.MotoFargateRequest, MotoFargateResponse). Nothing else changes.
func ecsStartsTasks(t *testing.T, endpoint string) http.Handler {
	p := proxyTo(t, endpoint)
	p.ModifyResponse = func(resp *http.Response) error {
		_, op, _ := strings.Cut(resp.Request.Header.Get("X-Amz-Target"), ".")
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		changed := awstest.MotoFargateResponse(op, b)
		if op == "DescribeServices" {
			if changed, err = servicesRunning(b); err != nil {
				return err
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(changed))
		if !bytes.Equal(changed, b) {
			resp.ContentLength = int64(len(changed))
			resp.Header.Set("Content-Length", strconv.Itoa(len(changed)))
			resp.Header.Del("X-Amz-Crc32")
		}
		return nil
	}
	// Requests: a task definition's containers get their task's memory.
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, op, _ := strings.Cut(req.Header.Get("X-Amz-Target"), ".")
		body, err := io.ReadAll(io.LimitReader(req.Body, 10<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = awstest.MotoFargateRequest(op, body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		p.ServeHTTP(w, req)
	})
}

// servicesRunning returns a DescribeServices answer with each service's
// tasks running.
func servicesRunning(b []byte) ([]byte, error) {
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	services, _ := out["services"].([]any)
	for _, s := range services {
		if m, ok := s.(map[string]any); ok {
			m["runningCount"], m["pendingCount"] = m["desiredCount"], 0
		}
	}
	return json.Marshal(out)
}

// driftDetection stands in front of moto's CloudFormation for the CLI and
// answers the three drift detection calls, which moto does not implement
// (it answers them 500 Internal Server Error); every other call goes to
// moto. AWS documents DetectStackDrift as: "Detects whether a stack's
// actual configuration differs, or has drifted, from its expected
// configuration, as defined in the stack template and any values
// specified as template parameters. For each resource in the stack that
// supports drift detection, CloudFormation compares the actual
// configuration of the resource with its expected template
// configuration." This stand-in does so for one property, the one the
// test changes by hand: the DesiredCount of the stack's ECS services,
// read from the stack's template (GetTemplate) and from ECS
// (DescribeServices) on moto. A service ECS no longer has is DELETED; a
// differing count is MODIFIED with a NOT_EQUAL property difference
// "/DesiredCount"; other resources are not reported.
type driftDetection struct {
	next http.Handler
	cfn  *cloudformation.Client
	ecs  *ecs.Client

	mu      sync.Mutex
	results map[string]driftResult // by detection ID
	n       int
}

// driftResult is one completed detection.
type driftResult struct {
	stackID string
	drifts  []xmlResourceDrift
}

type xmlResourceDrift struct {
	StackId                  string
	LogicalResourceId        string
	PhysicalResourceId       string
	ResourceType             string
	PropertyDifferences      []xmlPropertyDifference `xml:"PropertyDifferences>member"`
	StackResourceDriftStatus string
	Timestamp                string
}

type xmlPropertyDifference struct {
	PropertyPath, ExpectedValue, ActualValue, DifferenceType string
}

func (d *driftDetection) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, _ := url.ParseQuery(string(body))
	action := form.Get("Action")
	switch action {
	case "DetectStackDrift":
		res, err := d.detect(req, form.Get("StackName"))
		if err != nil {
			queryError(w, err)
			return
		}
		d.mu.Lock()
		d.n++
		id := fmt.Sprintf("detection-%d", d.n)
		d.results[id] = res
		d.mu.Unlock()
		queryResult(w, action, struct {
			XMLName               xml.Name `xml:"DetectStackDriftResult"`
			StackDriftDetectionId string
		}{StackDriftDetectionId: id})
	case "DescribeStackDriftDetectionStatus":
		d.mu.Lock()
		res, ok := d.results[form.Get("StackDriftDetectionId")]
		d.mu.Unlock()
		if !ok {
			queryError(w, fmt.Errorf("no drift detection %s", form.Get("StackDriftDetectionId")))
			return
		}
		status := "IN_SYNC"
		if len(res.drifts) > 0 {
			status = "DRIFTED"
		}
		queryResult(w, action, struct {
			XMLName                                                           xml.Name `xml:"DescribeStackDriftDetectionStatusResult"`
			StackId, StackDriftDetectionId, StackDriftStatus, DetectionStatus string
			DriftedStackResourceCount                                         int
			Timestamp                                                         string
		}{StackId: res.stackID, StackDriftDetectionId: form.Get("StackDriftDetectionId"), StackDriftStatus: status, DetectionStatus: "DETECTION_COMPLETE",
			DriftedStackResourceCount: len(res.drifts), Timestamp: time.Now().UTC().Format(time.RFC3339)})
	case "DescribeStackResourceDrifts":
		// The latest detection of the stack, filtered by status as asked.
		d.mu.Lock()
		var res driftResult
		for i := d.n; i > 0; i-- {
			if r, ok := d.results[fmt.Sprintf("detection-%d", i)]; ok && (stackNameOf(r.stackID) == form.Get("StackName") || r.stackID == form.Get("StackName")) {
				res = r
				break
			}
		}
		d.mu.Unlock()
		var filters []string
		for i := 1; form.Has(fmt.Sprintf("StackResourceDriftStatusFilters.member.%d", i)); i++ {
			filters = append(filters, form.Get(fmt.Sprintf("StackResourceDriftStatusFilters.member.%d", i)))
		}
		var out []xmlResourceDrift
		for _, r := range res.drifts {
			if len(filters) == 0 || slices.Contains(filters, r.StackResourceDriftStatus) {
				out = append(out, r)
			}
		}
		queryResult(w, action, struct {
			XMLName             xml.Name           `xml:"DescribeStackResourceDriftsResult"`
			StackResourceDrifts []xmlResourceDrift `xml:"StackResourceDrifts>member"`
		}{StackResourceDrifts: out})
	default:
		// A stack's task definitions' containers get their task's
		// memory, for moto's one-off tasks.
		body = awstest.MotoFargateRequest(action, body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		d.next.ServeHTTP(w, req)
	}
}

// stackNameOf returns the name in a stack ID,
// arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID.
func stackNameOf(id string) string {
	parts := strings.Split(id, "/")
	if len(parts) < 3 {
		return id
	}
	return parts[1]
}

// detect compares the DesiredCount of the stack's services in its
// template with ECS's.
func (d *driftDetection) detect(req *http.Request, stack string) (driftResult, error) {
	ctx := req.Context()
	st, err := d.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
	if err != nil {
		return driftResult{}, err
	}
	res := driftResult{stackID: aws.ToString(st.Stacks[0].StackId)}
	tpl, err := d.cfn.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: aws.String(stack)})
	if err != nil {
		return driftResult{}, err
	}
	var body struct {
		Resources map[string]struct {
			Type       string
			Properties struct {
				ServiceName  string
				Cluster      string
				DesiredCount int
			}
		}
	}
	if err := json.Unmarshal([]byte(aws.ToString(tpl.TemplateBody)), &body); err != nil {
		return driftResult{}, err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for _, id := range slices.Sorted(maps.Keys(body.Resources)) {
		r := body.Resources[id]
		if r.Type != "AWS::ECS::Service" {
			continue
		}
		out, err := d.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(r.Properties.Cluster), Services: []string{r.Properties.ServiceName}})
		if err != nil {
			return driftResult{}, err
		}
		drift := xmlResourceDrift{StackId: res.stackID, LogicalResourceId: id, PhysicalResourceId: r.Properties.ServiceName, ResourceType: r.Type, StackResourceDriftStatus: "IN_SYNC", Timestamp: now}
		switch {
		case len(out.Services) == 0 || aws.ToString(out.Services[0].Status) != "ACTIVE":
			drift.StackResourceDriftStatus = "DELETED"
		case int(out.Services[0].DesiredCount) != r.Properties.DesiredCount:
			drift.StackResourceDriftStatus = "MODIFIED"
			drift.PropertyDifferences = []xmlPropertyDifference{{PropertyPath: "/DesiredCount", ExpectedValue: strconv.Itoa(r.Properties.DesiredCount),
				ActualValue: strconv.Itoa(int(out.Services[0].DesiredCount)), DifferenceType: "NOT_EQUAL"}}
		}
		res.drifts = append(res.drifts, drift)
	}
	return res, nil
}

// queryResult writes a CloudFormation (AWS query protocol) response
// whose result element is result, an XML document named ACTIONResult.
func queryResult(w http.ResponseWriter, action string, result any) {
	inner, err := xml.Marshal(result)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">%s<ResponseMetadata><RequestId>drift</RequestId></ResponseMetadata></%sResponse>`, action, inner, action)
}

// queryError writes a CloudFormation ValidationError.
func queryError(w http.ResponseWriter, err error) {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(err.Error()))
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>%s</Message></Error><RequestId>drift</RequestId></ErrorResponse>`, b.String())
}

// resourceLines summarizes a plan's resource changes as "action type
// resource" lines, sorted, with the hash of a task definition's logical ID
// left out (TaskOfwebV<hash>: a new definition is a new resource).
func resourceLines(rs []resourceChangeJSON) []string {
	out := []string{}
	for _, r := range rs {
		id := r.Resource
		if i := strings.Index(id, "V"); strings.HasPrefix(id, "TaskOf") && i > 0 {
			id = id[:i+1] + "…"
		}
		line := r.Action + " " + r.Type + " " + id
		if r.Replacement != "" {
			line += " replacement=" + r.Replacement
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

// TestStackModeOnMoto drives the CLI in the stack mode
// (CONVOX_AWS_MODE=stack) through an app's life on moto, which provisions
// the stack's ECS and Logs resources in its own backends, and checks each
// step through the ECS and CloudFormation APIs: plans list the stack's
// resource changes, deploy, scale, env and rollback change the service as
// the releases say, drift reports a service scaled by hand, the
// platform's lines are kept from the first deploy on (the app's log group
// is CloudWatch Logs', not the stack's), one-off processes run beside the
// stack, and deleting the app deletes its stack, its log group and the
// one-offs' task definitions. The app's process has no port: moto
// registers no target, so no route could ever become healthy. moto runs
// no command: a one-off's task stops by itself, with exit code 0.
func TestStackModeOnMoto(t *testing.T) {
	r := newStackRack(t)
	ctx := t.Context()
	app := awstest.Name(t, "stack")
	if _, err := r.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(app)}); err != nil {
		t.Fatalf("CreateRepository: %v", err)
	}
	v1, v2 := r.push(t, app, "v1"), r.push(t, app, "v2")
	e := newCLIEnv(t)
	e.extraEnv, e.app = r.env, app
	stack := r.cluster + "-" + app
	t.Cleanup(func() {
		// A failed test leaves no stack behind.
		r.cfn.DeleteStack(context.WithoutCancel(ctx), &cloudformation.DeleteStackInput{StackName: aws.String(stack)})
	})
	stackExists := func() bool {
		_, err := r.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
		return err == nil
	}

	e.ok("apps", "create", app)
	var plan planJSON
	e.jsonOut(&plan, "plan", app+":v1", "--port", "0")
	// No log group: the stack leaves it to CloudWatch Logs.
	if diff := cmp.Diff([]string{
		"add AWS::ECS::Service ServiceOfweb",
		"add AWS::ECS::TaskDefinition TaskOfwebV…",
	}, resourceLines(plan.Resources)); diff != "" {
		t.Errorf("plan of the first deploy: resources (-want +got):\n%s", diff)
	}
	if stackExists() {
		t.Errorf("plan created the stack %s", stack)
	}

	// Each step is one command; ECS then runs what its release says.
	type step struct {
		name string
		args []string
		want serviceState
	}
	run := func(steps []step) {
		t.Helper()
		for _, s := range steps {
			e.ok(s.args...)
			if diff := cmp.Diff(s.want, r.service(t, app, "web")); diff != "" {
				t.Errorf("%s: the service after convox %s (-want +got):\n%s", s.name, strings.Join(s.args, " "), diff)
			}
		}
	}
	run([]step{
		{"the first deploy creates the stack", []string{"deploy", app + ":v1", "--port", "0"}, serviceState{"ACTIVE", 1, v1, map[string]string{}}},
		{"scale changes the service's count", []string{"scale", "web=2"}, serviceState{"ACTIVE", 2, v1, map[string]string{}}},
		{"env set changes the task definition", []string{"env", "set", "GREETING=hello"}, serviceState{"ACTIVE", 2, v1, map[string]string{"GREETING": "hello"}}},
	})

	e.jsonOut(&plan, "plan", app+":v2")
	// moto's change set leaves the modified service's Replacement empty.
	// AWS says "False" (a service's TaskDefinition "Update requires: No
	// interruption", AWS CloudFormation User Guide, AWS::ECS::Service),
	// which the plan shows as replacement=no.
	if diff := cmp.Diff([]string{
		"add AWS::ECS::TaskDefinition TaskOfwebV…",
		"modify AWS::ECS::Service ServiceOfweb",
		"remove AWS::ECS::TaskDefinition TaskOfwebV…",
	}, resourceLines(plan.Resources)); diff != "" {
		t.Errorf("plan of a new image: resources (-want +got):\n%s", diff)
	}
	out := e.ok("plan", app+":v2").stdout
	must(t, "plan of a new image", out, "  image  ", "  resource  modify ServiceOfweb (AWS::ECS::Service)")
	sets, err := r.cfn.ListChangeSets(ctx, &cloudformation.ListChangeSetsInput{StackName: aws.String(stack)})
	if err != nil {
		t.Fatalf("ListChangeSets: %v", err)
	}
	if len(sets.Summaries) != 0 {
		t.Errorf("plan left %d change sets on the stack", len(sets.Summaries))
	}

	run([]step{
		{"a deploy of another image keeps count and env", []string{"deploy", app + ":v2"}, serviceState{"ACTIVE", 2, v2, map[string]string{"GREETING": "hello"}}},
	})

	// Drift: none after a deploy, then the service scaled by hand.
	var drift driftJSON
	e.jsonOut(&drift, "drift")
	if diff := cmp.Diff(driftJSON{App: app, Resources: []resourceDriftJSON{}}, drift); diff != "" {
		t.Errorf("drift after a deploy (-want +got):\n%s", diff)
	}
	must(t, "drift after a deploy", e.ok("drift").stdout, app+": no drift")
	if _, err := r.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(r.cluster), Service: aws.String(app + "-web"), DesiredCount: aws.Int32(5)}); err != nil {
		t.Fatalf("UpdateService: %v", err)
	}
	e.jsonOut(&drift, "drift", app)
	if diff := cmp.Diff(driftJSON{App: app, Drifted: true, Resources: []resourceDriftJSON{
		{Resource: "ServiceOfweb", Type: "AWS::ECS::Service", Status: "MODIFIED", Properties: []string{"/DesiredCount NOT_EQUAL"}},
	}}, drift); diff != "" {
		t.Errorf("drift after scaling the service by hand (-want +got):\n%s", diff)
	}
	out = e.ok("drift").stdout
	must(t, "drift table", out, "RESOURCE      TYPE               STATUS    PROPERTIES\nServiceOfweb  AWS::ECS::Service  MODIFIED  /DesiredCount NOT_EQUAL\n")

	// A rollback is one stack update back to R1's image, env and count,
	// which also undoes the change made by hand.
	run([]step{
		{"a rollback restores the first release", []string{"rollback", "R1"}, serviceState{"ACTIVE", 1, v1, map[string]string{}}},
	})
	e.jsonOut(&drift, "drift")
	if drift.Drifted {
		t.Errorf("drift after the rollback = %+v, want none", drift)
	}
	var rels []releaseJSON
	e.jsonOut(&rels, "releases", "list")
	var ids []string
	for _, rel := range rels {
		ids = append(ids, rel.ID+" "+rel.Status)
	}
	if len(ids) == 0 || !strings.HasPrefix(ids[0], "R5 ") {
		t.Errorf("releases after the rollback: %v, want R5 first (a copy of R1)", ids)
	}
	// The platform's lines, the stack's events among them, are in the
	// app's log group from the first deploy's first line on, written
	// before the deploy created the stack.
	out = e.ok("logs").stdout
	must(t, "logs", out, " R1 convox promoting R1", " R1 convox "+stack+" CREATE_COMPLETE\n", " R1 convox R1 is active and healthy\n",
		" R5 convox promoting R5 (active: R4)\n", " R5 convox "+stack+" UPDATE_COMPLETE\n")

	// One-off processes: of the active release (R5, R1's copy) with the
	// stack's own task definition; of R3 (GREETING set) with one
	// registered beside the stack. Both log to the app's group, which
	// they would create if it were missing.
	taskDefinitionOf := func(id string) string {
		t.Helper()
		out, err := r.ecs.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(r.cluster), Tasks: []string{id}})
		if err != nil || len(out.Tasks) != 1 {
			t.Fatalf("DescribeTasks %s: %v %v", id, out, err)
		}
		return aws.ToString(out.Tasks[0].TaskDefinitionArn)
	}
	var active, other runJSON
	// --json before "--": what follows is the command.
	if err := json.Unmarshal([]byte(e.ok("run", "web", "--json", "--", "server", "migrate").stdout), &active); err != nil {
		t.Fatalf("run --json: %v", err)
	}
	e.jsonOut(&other, "run", "web", "--release", "R3")
	if diff := cmp.Diff([]runJSON{
		{App: app, Process: "web", Release: "R5", Task: active.Task, Output: []string{}},
		{App: app, Process: "web", Release: "R3", Task: other.Task, Output: []string{}},
	}, []runJSON{active, other}, cmpopts.IgnoreFields(runJSON{}, "Reason")); diff != "" || active.Task == "" || other.Task == "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	if got, want := taskDefinitionOf(active.Task), aws.ToString(r.serviceTaskDefinition(t, app, "web")); got != want {
		t.Errorf("the run of the active release ran %s, want the service's %s", got, want)
	}
	outside := taskDefinitionOf(other.Task)
	td, err := r.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(outside)})
	if err != nil {
		t.Fatalf("DescribeTaskDefinition: %v", err)
	}
	if diff := cmp.Diff(map[string]string{"awslogs-group": "/convox/" + app, "awslogs-create-group": "true", "awslogs-region": awstest.Region, "awslogs-stream-prefix": "web"},
		td.TaskDefinition.ContainerDefinitions[0].LogConfiguration.Options); diff != "" {
		t.Errorf("the awslogs options of R3's one-off (-want +got):\n%s", diff)
	}
	// Without --json, run exits with the task's exit code: 0.
	e.ok("run", "web")

	e.ok("apps", "delete", app, "--yes")
	if stackExists() {
		t.Errorf("the stack %s is still there after apps delete", stack)
	}
	groups, err := r.logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/convox/" + app)})
	if err != nil {
		t.Fatalf("DescribeLogGroups: %v", err)
	}
	if len(groups.LogGroups) != 0 {
		t.Errorf("log groups after apps delete: %v", groups.LogGroups)
	}
	if td, err := r.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(outside)}); err != nil || td.TaskDefinition.Status != "INACTIVE" {
		t.Errorf("R3's one-off task definition after apps delete: %v %v, want INACTIVE", td, err)
	}
	var apps []appJSON
	e.jsonOut(&apps, "apps", "list")
	if len(apps) != 0 {
		t.Errorf("apps after apps delete: %+v", apps)
	}
}
